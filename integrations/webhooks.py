"""Incoming CRM webhooks: Kustomer's signed deliveries and its work-session events (status sync).

Kustomer signs every delivery with `X-Kustomer-Webhook-Signature: hex(HMAC-SHA256(token, raw body))`
(lowercase hex; developer.kustomer.com/docs/events/delivery-and-retries) and sends no timestamp, so
a delivery's age is not knowable and never a reason to refuse it: it retries non-2xx answers for
about an hour, and an hour-old retry is as genuine as a fresh one. Replays and late deliveries are
handled by the receiver from the event itself (its id, its `updatedAt`). Pure functions: the caller
passes the secret and the raw body.
"""

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from integrations.storable import unstorable_text

KUSTOMER_EVENT_HEADER = "X-Kustomer-Webhook-Event"
KUSTOMER_SIGNATURE_HEADER = "X-Kustomer-Webhook-Signature"
WORK_SESSION_CREATE = "kustomer.work-session.create"
WORK_SESSION_UPDATE = "kustomer.work-session.update"
WORK_SESSION_EVENTS = (WORK_SESSION_CREATE, WORK_SESSION_UPDATE)


class WebhookRefused(Exception):
    """The delivery is not accepted; `field` names the header or body key at fault."""

    def __init__(self, status_code: int, message: str, field: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field


def kustomer_signature(secret: str, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 Kustomer sends for this raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_kustomer_delivery(*, secret: str, signature: str | None, body: bytes) -> None:
    """Check one delivery's signature over its raw body, or raise WebhookRefused(401)."""
    if not signature:
        raise WebhookRefused(401, f"{KUSTOMER_SIGNATURE_HEADER} is missing.", KUSTOMER_SIGNATURE_HEADER)
    expected = kustomer_signature(secret, body)
    # Constant time, so the comparison leaks nothing about how much of a forgery was right.
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode("ascii", "replace")):
        raise WebhookRefused(401, "The signature does not match the body.", KUSTOMER_SIGNATURE_HEADER)


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
    if found := unstorable_text(envelope):
        where, problem = found
        raise WebhookRefused(400, f"`{where}`: {problem} are not allowed.", where or "body")
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
