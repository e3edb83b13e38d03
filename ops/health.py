"""`/healthz`: the database, Redis, the Celery broker (Redis or RabbitMQ) and the workers (django-health-check).

A failing check answers 503 (the load balancer's "not now"), never 500. `?format=json` for
machines. `/healthz/web` leaves the workers out: a web host is fine to serve while workers restart.
"""

import dataclasses
import datetime
from typing import Any

import redis
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


@dataclasses.dataclass
class Workers(Ping):
    """At least one Celery worker answers a ping, and every queue has a worker consuming it.

    The ping waits `HEALTHZ_WORKER_PING_SECONDS` for the answers: all workers' replies are
    collected, since a queue's only consumer may be the slowest to answer. The check's own budget
    is that wait plus the queue inspection, so a slow inspection is not mistaken for a timeout.
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
        try:
            defined_queues = {queue.name for queue in self.app.conf.task_queues}
        except TypeError:
            # No declared queues: the default queue is the one that must be consumed.
            defined_queues = {self.app.conf.task_default_queue}
        answers = self.app.control.inspect(list(active_workers), timeout=QUEUE_INSPECT_SECONDS).active_queues()
        active_queues = {queue.get("name") for queues in (answers or {}).values() for queue in queues}
        for queue in sorted(defined_queues - active_queues):
            raise ServiceUnavailable(f"No worker for Celery task queue {queue}")

    def __repr__(self) -> str:
        return "Celery workers"


WEB_CHECKS: tuple[Any, ...] = (Database, Broker, RateLimiterRedis)
ALL_CHECKS: tuple[Any, ...] = (*WEB_CHECKS, Workers)


class HealthView(HealthCheckView):
    checks = ALL_CHECKS

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response: HttpResponse = await super().get(request, *args, **kwargs)
        if response.status_code == 500:
            response.status_code = 503
            response["Retry-After"] = "10"
        return response


class WebHealthView(HealthView):
    checks = WEB_CHECKS
