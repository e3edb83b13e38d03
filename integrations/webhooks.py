"""Incoming CRM webhooks: Kustomer's signed deliveries and its work-session events (status sync).

A delivery carries `X-Kustomer-Webhook-Timestamp` (unix seconds) and
`X-Kustomer-Webhook-Signature: hex(HMAC-SHA256(secret, f"{timestamp}." + raw body))`. Signing the
timestamp with the body is what lets a receiver refuse an old delivery replayed with its
signature. Pure functions: the caller passes the secret, the raw body and the clock.
"""

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

KUSTOMER_EVENT_HEADER = "X-Kustomer-Webhook-Event"
KUSTOMER_TIMESTAMP_HEADER = "X-Kustomer-Webhook-Timestamp"
KUSTOMER_SIGNATURE_HEADER = "X-Kustomer-Webhook-Signature"
WORK_SESSION_CREATE = "kustomer.work-session.create"
WORK_SESSION_UPDATE = "kustomer.work-session.update"
WORK_SESSION_EVENTS = (WORK_SESSION_CREATE, WORK_SESSION_UPDATE)
# A delivery signed longer ago than this (or this far in the future: a wrong clock) is refused.
MAX_DELIVERY_AGE_SECONDS = 300


class WebhookRefused(Exception):
    """The delivery is not accepted; `field` names the header or body key at fault."""

    def __init__(self, status_code: int, message: str, field: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field


def kustomer_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 Kustomer sends for this body at this timestamp."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_kustomer_delivery(
    *, secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> int:
    """Check one delivery's timestamp and signature; return the timestamp, or raise WebhookRefused."""
    if not signature:
        raise WebhookRefused(401, f"{KUSTOMER_SIGNATURE_HEADER} is missing.", KUSTOMER_SIGNATURE_HEADER)
    if not timestamp:
        raise WebhookRefused(400, f"{KUSTOMER_TIMESTAMP_HEADER} is missing.", KUSTOMER_TIMESTAMP_HEADER)
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookRefused(
            400, f"{KUSTOMER_TIMESTAMP_HEADER} must be unix seconds, not {timestamp[:40]!r}.", KUSTOMER_TIMESTAMP_HEADER
        ) from None
    expected = kustomer_signature(secret, timestamp, body)
    # Constant time, so the comparison leaks nothing about how much of a forgery was right.
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise WebhookRefused(401, "The signature does not match the body and timestamp.", KUSTOMER_SIGNATURE_HEADER)
    age = now - sent_at
    if age > MAX_DELIVERY_AGE_SECONDS:
        raise WebhookRefused(
            400,
            f"The delivery was signed {age:.0f}s ago; older than {MAX_DELIVERY_AGE_SECONDS}s is refused.",
            KUSTOMER_TIMESTAMP_HEADER,
        )
    if -age > MAX_DELIVERY_AGE_SECONDS:
        raise WebhookRefused(
            400,
            f"The delivery is dated {-age:.0f}s in the future; check the sender's clock.",
            KUSTOMER_TIMESTAMP_HEADER,
        )
    return sent_at


@dataclass(frozen=True)
class WorkSessionEvent:
    """A Kustomer work-session event: one of a user's CRM instances signed in, changed status or ended."""

    event_id: str
    name: str
    session_id: str
    user_id: str
    status_id: str
    active: bool
    # The work session's updatedAt (when the change happened in Kustomer), if it says.
    updated_at: datetime | None
    # What the envelope's `changes` say about the status; None when there are no changes to read.
    status_changed: bool | None

    @property
    def signed_in(self) -> bool:
        return self.name == WORK_SESSION_CREATE


def parse_kustomer_event(body: bytes) -> tuple[str, str, Mapping[str, Any]]:
    """The envelope's event id and name, and the envelope; WebhookRefused(400) naming the bad key."""
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRefused(400, "The body is not JSON.", "body") from None
    if not isinstance(envelope, dict):
        raise WebhookRefused(400, "The body must be a JSON object (the event envelope).", "body")
    event_id, name = envelope.get("id"), envelope.get("name")
    if not isinstance(event_id, str) or not event_id.strip() or len(event_id) > 200:
        raise WebhookRefused(400, "The event id is missing (a string of at most 200 characters).", "id")
    if not isinstance(name, str) or not name:
        raise WebhookRefused(400, "The event name is missing.", "name")
    return event_id, name, envelope


def parse_work_session_event(event_id: str, name: str, envelope: Mapping[str, Any]) -> WorkSessionEvent:
    """The work-session event of an envelope whose name is one of WORK_SESSION_EVENTS."""
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise WebhookRefused(400, "`data` must be the work-session resource.", "data")
    session_id = _text(data.get("id"), "data.id")
    attributes = data.get("attributes")
    if not isinstance(attributes, dict):
        raise WebhookRefused(400, "`data.attributes` must be an object.", "data.attributes")
    status_id = _text(attributes.get("status"), "data.attributes.status")
    active = attributes.get("active", True)
    if not isinstance(active, bool):
        raise WebhookRefused(400, "`data.attributes.active` must be true or false.", "data.attributes.active")
    relationships = data.get("relationships")
    user = relationships.get("user") if isinstance(relationships, dict) else None
    user = user.get("data") if isinstance(user, dict) else None
    user_id = _text(user.get("id") if isinstance(user, dict) else None, "data.relationships.user.data.id")
    updated_at = _timestamp(attributes.get("updatedAt"), "data.attributes.updatedAt")
    return WorkSessionEvent(
        event_id=event_id,
        name=name,
        session_id=session_id,
        user_id=user_id,
        status_id=status_id,
        active=active,
        updated_at=updated_at,
        status_changed=_status_changed(envelope.get("changes")),
    )


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise WebhookRefused(400, f"`{field}` must be a non-empty id (at most 100 characters).", field)
    return value


def _timestamp(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    raise WebhookRefused(400, f"`{field}` must be an ISO 8601 time with a zone.", field)


def _status_changed(changes: Any) -> bool | None:
    """Kustomer's `changes` diff names the attributes an update changed; null on create events."""
    if not isinstance(changes, dict) or not changes:
        return None
    attributes = changes.get("attributes")
    keys = attributes if isinstance(attributes, dict) else changes
    return "status" in keys
