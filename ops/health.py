"""`/healthz`: the database, Redis, the Celery broker (Redis or RabbitMQ) and the workers (django-health-check).

Each queue the task routes use (live session work, imports, maintenance) has its own line: whether
some worker consumes it, so a fleet started without `-Q imports` shows which work waits.

A failing check answers 503 (the load balancer's "not now"), never 500. `?format=json` for
machines. `/healthz/web` leaves the workers out: a web host is fine to serve while workers restart.
"""

import dataclasses
import datetime
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis
from celery import Celery
from celery.app import app_or_default
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.contrib.celery import Ping
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView
from kombu import Connection


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker answers: one connection, through kombu, so Redis and RabbitMQ alike."""

    timeout: datetime.timedelta = dataclasses.field(default=datetime.timedelta(seconds=3), repr=False)

    def run(self) -> None:
        try:
            with Connection(settings.CELERY_BROKER_URL, connect_timeout=self.timeout.total_seconds()) as connection:
                connection.ensure_connection(max_retries=1, timeout=int(self.timeout.total_seconds()))
        except Exception as exc:
            raise ServiceUnavailable(f"Celery broker unreachable: {exc.__class__.__name__}") from exc

    def __repr__(self) -> str:
        return f"Broker({Connection(settings.CELERY_BROKER_URL).transport_cls})"


@dataclasses.dataclass
class RateLimiterRedis(HealthCheck):
    """The Redis of the shared rate limiter and 429 gates (`REDIS_URL`), which may not be the broker."""

    timeout: datetime.timedelta = dataclasses.field(default=datetime.timedelta(seconds=2), repr=False)

    def run(self) -> None:
        seconds = self.timeout.total_seconds()
        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=seconds, socket_connect_timeout=seconds).ping()
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"Redis unreachable: {exc.__class__.__name__}") from exc

    def __repr__(self) -> str:
        return "Redis(rate limiter)"


# How long the second round trip, asking the workers that answered which queues they consume,
# may take. Those workers just answered, so it returns as soon as each has replied.
QUEUE_INSPECT_SECONDS = 2.0
# What the queue a task route names is for, as /healthz says it (the default queue is live work).
LIVE_ROLE = "live session work"
OTHER_ROLE = "routed tasks"


def routed_queues(*, default_queue: str, routes: Mapping[str, Any], roles: Mapping[str, str]) -> dict[str, str]:
    """Every queue work is sent to, the default one (live session work) first, each with what it is for.

    `routes` is Celery's `task_routes` (task name to `{"queue": ...}`), `roles` what each routed
    task is (imports, maintenance), by task name. A queue that serves several roles lists them all.
    """
    found: dict[str, list[str]] = {default_queue: [LIVE_ROLE]}
    for task, route in routes.items():
        queue = route.get("queue") if isinstance(route, Mapping) else None
        if not queue:
            continue
        role = roles.get(task, OTHER_ROLE)
        if role not in (kept := found.setdefault(queue, [])):
            kept.append(role)
    return {queue: ", ".join(kept) for queue, kept in found.items()}


def app_routed_queues(app: Celery) -> dict[str, str]:
    """The queues this Celery app routes work to (its live configuration), with what each is for.

    What a task is for comes from the queue settings route it to (IMPORTS_QUEUE, MAINTENANCE_QUEUE),
    wherever the app's live routes send it.
    """
    by_queue = {settings.IMPORTS_QUEUE: "imports", settings.MAINTENANCE_QUEUE: "maintenance"}
    roles = {
        task: by_queue.get(route.get("queue", ""), OTHER_ROLE) for task, route in settings.CELERY_TASK_ROUTES.items()
    }
    routes = app.conf.task_routes if isinstance(app.conf.task_routes, Mapping) else {}
    return routed_queues(default_queue=app.conf.task_default_queue, routes=routes, roles=roles)


def consumed_queues(app: Celery, *, timeout: float, workers: Sequence[str] | None = None) -> set[str]:
    """The queues some worker consumes (of `workers`, or of every worker answering within `timeout`)."""
    destination = list(workers) if workers is not None else None
    answers = app.control.inspect(destination, timeout=timeout).active_queues()
    return {queue.get("name") for queues in (answers or {}).values() for queue in queues}


@dataclasses.dataclass
class Workers(Ping):
    """At least one Celery worker answers a ping, and every routed queue has a worker consuming it.

    The ping waits `HEALTHZ_WORKER_PING_SECONDS` for the answers: all workers' replies are
    collected, since a queue's only consumer may be the slowest to answer. The check's own budget
    is that wait plus the queue inspection, so a slow inspection is not mistaken for a timeout.
    Each queue also has a line of its own (`QueueConsumed`).
    """

    def __post_init__(self) -> None:
        self.ping_seconds = settings.HEALTHZ_WORKER_PING_SECONDS
        self.timeout = datetime.timedelta(seconds=self.ping_seconds + QUEUE_INSPECT_SECONDS)

    def run(self) -> None:
        try:
            replies = self.app.control.ping(timeout=self.ping_seconds)
        except OSError as exc:
            raise ServiceUnavailable("Celery broker unreachable: OSError") from exc
        if not replies:
            raise ServiceUnavailable("Celery workers unavailable")
        self.check_active_queues(*self.active_workers(replies))

    def check_active_queues(self, *active_workers: str) -> None:
        consumed = consumed_queues(self.app, timeout=QUEUE_INSPECT_SECONDS, workers=active_workers)
        missing = [f"{queue} ({role})" for queue, role in app_routed_queues(self.app).items() if queue not in consumed]
        if missing:
            raise ServiceUnavailable(f"No worker for Celery task queue {', '.join(missing)}")

    def __repr__(self) -> str:
        return "Celery workers"


@dataclasses.dataclass
class QueueConsumed(HealthCheck):
    """One routed queue (live session work, imports, maintenance) has a worker consuming it."""

    queue: str = ""
    role: str = ""
    app: Celery = dataclasses.field(default_factory=app_or_default, repr=False)

    def __post_init__(self) -> None:
        self.inspect_seconds = settings.HEALTHZ_WORKER_PING_SECONDS
        self.timeout = datetime.timedelta(seconds=self.inspect_seconds + QUEUE_INSPECT_SECONDS)

    def run(self) -> None:
        try:
            # Asked of every worker: the answers of all are waited for, as the ping waits.
            consumed = consumed_queues(self.app, timeout=self.inspect_seconds)
        except OSError as exc:
            raise ServiceUnavailable("Celery broker unreachable: OSError") from exc
        if self.queue not in consumed:
            raise ServiceUnavailable(f"no worker consumes it ({self.role} waits)")

    def __repr__(self) -> str:
        return f"Celery queue {self.queue} ({self.role})"


WEB_CHECKS: tuple[Any, ...] = (Database, Broker, RateLimiterRedis)
ALL_CHECKS: tuple[Any, ...] = (*WEB_CHECKS, Workers)


class HealthView(HealthCheckView):
    checks = ALL_CHECKS
    # Whether each routed queue gets a line of its own (not on /healthz/web: workers are left out).
    per_queue = True

    def get_checks(self) -> Iterator[HealthCheck]:
        yield from super().get_checks()
        if self.per_queue:
            for queue, role in app_routed_queues(app_or_default()).items():
                yield QueueConsumed(queue=queue, role=role)

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response: HttpResponse = await super().get(request, *args, **kwargs)
        if response.status_code == 500:
            response.status_code = 503
            response["Retry-After"] = "10"
        return response


class WebHealthView(HealthView):
    checks = WEB_CHECKS
    per_queue = False
