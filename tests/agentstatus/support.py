"""Helpers for the status-sync tests: Kustomer webhook envelopes and their signatures."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from integrations.webhooks import kustomer_signature

WEBHOOK_SECRET = "whsec-test-secret"
WEBHOOK_PATH = "/api/v1/agentstatus/webhooks/kustomer"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


_event_counter = iter(range(1, 10**9))


def work_session_event(
    *,
    session_id: str = "ws-1",
    user_id: str = "u-ana",
    status: str = "st-available",
    active: bool = True,
    name: str = "kustomer.work-session.update",
    updated_at: datetime | None = None,
    changes: Any = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A Kustomer webhook envelope for a work session (crm-api-shapes.md §2.8 plus the work-session resource)."""
    updated = iso(updated_at or datetime.now(UTC))
    return {
        "id": event_id or f"evt-{next(_event_counter)}-{time.monotonic_ns()}",
        "name": name,
        "org": "org-1",
        "partition": "org-1",
        "data": {
            "type": "work-session",
            "id": session_id,
            "attributes": {
                "status": status,
                "statusType": "available",
                "active": active,
                "signedInAt": updated,
                "signedOutAt": None if active else updated,
                "updatedAt": updated,
            },
            "relationships": {"user": {"data": {"type": "user", "id": user_id}}},
        },
        "changes": changes,
    }


def signed_headers(body: bytes, *, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    """The headers Kustomer sends: the event name and the signature over the raw body, no timestamp."""
    return {
        "X-Kustomer-Webhook-Signature": kustomer_signature(secret, body),
        "X-Kustomer-Webhook-Event": "kustomer.work-session.update",
    }


@dataclass
class Delivered:
    status_code: int
    body: dict[str, Any]


Deliver = Callable[..., Delivered]
