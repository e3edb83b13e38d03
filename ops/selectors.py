"""What /metrics reads from the database and the rate limiter's Redis keys when it is scraped."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.db.models import Count, Q
from django.utils import timezone

from agentstatus.models import StatusPush
from integrations.models import CrmConnection
from integrations.ratelimit import KEY_PREFIX, WINDOW_KEY_PREFIX, WINDOW_MS
from records.models import CrmAction

# A row due longer ago than this and still not done means the workers are behind or down.
OVERDUE_AFTER = timedelta(minutes=1)


@dataclass(frozen=True)
class Backlog:
    outbox: str
    pending: int
    overdue: int


@dataclass(frozen=True)
class RateWindow:
    connection: str
    limit_per_minute: int | None
    used_last_minute: int
    gate_closed_seconds: float


def outbox_backlog() -> list[Backlog]:
    late = timezone.now() - OVERDUE_AFTER
    overdue = Q(next_attempt_at__lt=late) | Q(next_attempt_at__isnull=True, created_at__lt=late)
    actions = CrmAction.objects.filter(status=CrmAction.Status.PENDING).aggregate(
        pending=Count("id"), overdue=Count("id", filter=overdue)
    )
    pushes = StatusPush.objects.filter(state=StatusPush.State.PENDING).aggregate(
        pending=Count("id"), overdue=Count("id", filter=overdue)
    )
    return [
        Backlog("crm_actions", actions["pending"], actions["overdue"]),
        Backlog("status_pushes", pushes["pending"], pushes["overdue"]),
    ]


def _limiter_key(base_url: str) -> str:
    # The HTTP client keys its window and gate by its base URL with one trailing slash.
    return base_url.rstrip("/") + "/"


def rate_windows(client: redis.Redis) -> Iterator[RateWindow]:
    seconds, microseconds = client.time()
    now_ms = int(seconds) * 1000 + int(microseconds) // 1000
    for connection in CrmConnection.objects.order_by("id"):
        key = _limiter_key(connection.base_url)
        used = client.zcount(WINDOW_KEY_PREFIX + key, now_ms - WINDOW_MS, "+inf")
        gate_ms = client.pttl(KEY_PREFIX + key)
        yield RateWindow(
            connection=str(connection.pk),
            limit_per_minute=(connection.config or {}).get("rate_limit_per_minute") or None,
            used_last_minute=int(used),
            gate_closed_seconds=gate_ms / 1000 if isinstance(gate_ms, int) and gate_ms > 0 else 0.0,
        )
