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


@dataclasses.dataclass
class Workers(Ping):
    """At least one Celery worker answers a ping, and every queue has a worker consuming it.

    The ping waits `HEALTHZ_WORKER_PING_SECONDS` for the answers: all workers' replies are
    collected, since a queue's only consumer may be the slowest to answer.
    """

    def __post_init__(self) -> None:
        self.timeout = datetime.timedelta(seconds=settings.HEALTHZ_WORKER_PING_SECONDS)

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
