"""Prometheus metrics at /metrics: requests, queue depths, outbox outcomes, CRM budget, circuit state.

Several web processes (gunicorn) and worker hosts share one set of figures:
- request counts and latencies are per process; with `PROMETHEUS_MULTIPROC_DIR` set (the gunicorn
  config does it) every gunicorn worker of a host writes there and /metrics adds them up;
- outbox outcomes are counted by whichever worker saved the row, in a Redis hash every host shares,
  so any web host answers the same totals;
- queue depths, outbox backlogs and the CRM budget are read when scraped, from the broker, the
  database and the rate limiter's Redis window.
"""

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.db.models.signals import post_save
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

PREFIX = "crmbridge"
OUTCOMES_KEY = "crmbridge:metrics:outcomes"

REQUESTS = Counter(f"{PREFIX}_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


@functools.lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # One connection pool per process: an outcome is counted on every finished action.
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def _redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


# -- Requests ------------------------------------------------------------------------------------


class RequestMetricsMiddleware:
    """Counts each answer by its URL pattern (never the raw path: ids would make unbounded labels)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.route or match.view_name) if match is not None else "unmatched"
        method = (
            request.method
            if request.method in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
            else "other"
        )
        REQUESTS.labels(method, route, str(response.status_code)).inc()
        LATENCY.labels(method, route).observe(time.perf_counter() - started)
        return response


# -- Outbox outcomes -----------------------------------------------------------------------------

TERMINAL = {"succeeded", "failed", "skipped", "superseded"}


def outcome_of(status: str, update_fields: frozenset[str] | None) -> str | None:
    """What a save of an outbox row means: a terminal status, a retry scheduled, or nothing to count."""
    if update_fields is None:
        return None
    if ("status" in update_fields or "state" in update_fields) and status in TERMINAL:
        return status
    if "last_error" in update_fields and status == "pending":
        return "retry_scheduled"
    return None


def count_outcome(outbox: str, kind: str, outcome: str) -> None:
    try:
        _redis().hincrby(OUTCOMES_KEY, f"{outbox}|{kind}|{outcome}", 1)
    except redis.RedisError:
        # Metrics never fail the work they describe.
        logger.warning("metrics.outcome_not_counted", extra={"outbox": outbox, "outcome": outcome})


def _on_action_saved(sender: Any, instance: Any, update_fields: frozenset[str] | None, **kwargs: Any) -> None:
    if outcome := outcome_of(instance.status, update_fields):
        count_outcome("crm_actions", instance.kind, outcome)


def _on_push_saved(sender: Any, instance: Any, update_fields: frozenset[str] | None, **kwargs: Any) -> None:
    if outcome := outcome_of(instance.state, update_fields):
        count_outcome("status_pushes", "status", outcome)


def _on_import_saved(sender: Any, instance: Any, update_fields: frozenset[str] | None, **kwargs: Any) -> None:
    if instance.status != "running" and (update_fields is None or "status" in update_fields):
        count_outcome("imports", instance.connection.kind if instance.connection_id else "", instance.status)


def connect_outcome_counters() -> None:
    post_save.connect(_on_action_saved, sender="records.CrmAction", dispatch_uid="ops.metrics.action")
    post_save.connect(_on_push_saved, sender="agentstatus.StatusPush", dispatch_uid="ops.metrics.push")
    post_save.connect(_on_import_saved, sender="ticketsearch.ImportRun", dispatch_uid="ops.metrics.import")


# -- Gauges other parts of the product feed ------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    labels: tuple[str, ...]
    value: float


@dataclass(frozen=True)
class GaugeFeed:
    """A gauge whose samples a module registers a function for; read at each scrape.

    `circuit_state` is for the per-connection circuit breaker (0 closed, 1 half-open, 2 open) and
    `crm_budget_used` for a CRM call budget other than the per-minute rate limit read below.
    """

    name: str
    documentation: str
    labels: tuple[str, ...]

    def register(self, source: Callable[[], Iterable[Sample]]) -> None:
        _FEEDS.setdefault(self.name, []).append(source)


_FEEDS: dict[str, list[Callable[[], Iterable[Sample]]]] = {}

CIRCUIT_STATE = GaugeFeed(
    f"{PREFIX}_crm_circuit_state",
    "Per-connection circuit breaker: 0 closed, 1 half-open (probing), 2 open (work paused)",
    ("connection",),
)
CRM_BUDGET_USED = GaugeFeed(
    f"{PREFIX}_crm_budget_used_ratio",
    "Share of a connection's CRM call budget used (1 = all of it); see also crmbridge_crm_rate_window_used_ratio",
    ("connection", "budget"),
)
FEEDS = (CIRCUIT_STATE, CRM_BUDGET_USED)


def _circuit_samples() -> Iterator[Sample]:
    """Each connection's circuit breaker (integrations.circuit), from the Redis every worker shares."""
    from integrations.circuit import GAUGE_VALUES, circuit_state
    from integrations.models import CrmConnection
    from integrations.services import circuit_breaker

    breaker = circuit_breaker()
    for connection in CrmConnection.objects.order_by("id"):
        state = circuit_state(breaker.read(connection.base_url))
        yield Sample((str(connection.pk),), GAUGE_VALUES[state])


CIRCUIT_STATE.register(_circuit_samples)


# -- Read at scrape time -------------------------------------------------------------------------


def broker_queue_depths(queue_names: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each Celery queue, on Redis or RabbitMQ (a missing queue is left out)."""
    from config.celery import app

    depths: dict[str, int] = {}
    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
        for name in queue_names:
            # A channel each: RabbitMQ closes the channel that asked about a queue it does not have.
            channel: Any = connection.channel()
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except Exception:  # noqa: BLE001 - each transport has its own error for an absent queue
                logger.debug("metrics.queue_absent", extra={"queue": name})
            with contextlib.suppress(Exception):
                channel.close()
    return depths


def queue_names() -> list[str]:
    from config.celery import app

    names = {queue.name for queue in app.conf.task_queues or ()}
    return sorted(names or {app.conf.task_default_queue})


class ScrapeCollector(Collector):
    """Everything /metrics reads when it is scraped; each source fails alone (reported as *_up 0)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_metrics_source_up", "Whether a metrics source answered", labels=["source"])
        for source, collect in (
            ("broker", self._queues),
            ("database", self._outbox),
            ("redis", self._redis_figures),
            ("feeds", self._feeds),
        ):
            try:
                yield from list(collect())
                up.add_metric([source], 1)
            except Exception:
                logger.warning("metrics.source_down", extra={"source": source}, exc_info=True)
                up.add_metric([source], 0)
        yield up

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Messages waiting in a Celery queue", labels=["queue"])
        for name, count in broker_queue_depths(queue_names()).items():
            depth.add_metric([name], count)
        yield depth

    def _outbox(self) -> Iterator[Metric]:
        from ops.selectors import outbox_backlog

        backlog = GaugeMetricFamily(
            f"{PREFIX}_outbox_pending", "Outbox rows still to do (due now or later)", labels=["outbox"]
        )
        overdue = GaugeMetricFamily(
            f"{PREFIX}_outbox_overdue", "Outbox rows due more than a minute ago and not done", labels=["outbox"]
        )
        for row in outbox_backlog():
            backlog.add_metric([row.outbox], row.pending)
            overdue.add_metric([row.outbox], row.overdue)
        yield backlog
        yield overdue

    def _redis_figures(self) -> Iterator[Metric]:
        from ops.selectors import rate_windows

        client = _redis()
        outcomes = CounterMetricFamily(
            f"{PREFIX}_outbox_outcomes",
            "Outbox rows finished or retried, by outcome",
            labels=["outbox", "kind", "outcome"],
        )
        for field, value in client.hgetall(OUTCOMES_KEY).items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            outbox, kind, outcome = name.split("|", 2)
            outcomes.add_metric([outbox, kind, outcome], int(value))
        yield outcomes
        used = GaugeMetricFamily(
            f"{PREFIX}_crm_rate_window_used_ratio",
            "Requests to a CRM in the last 60 s over the connection's requests-per-minute limit",
            labels=["connection"],
        )
        closed = GaugeMetricFamily(
            f"{PREFIX}_crm_rate_gate_closed_seconds",
            "Seconds until a CRM's 429 Retry-After has passed (0: open)",
            labels=["connection"],
        )
        for window in rate_windows(client):
            if window.limit_per_minute:
                used.add_metric([window.connection], window.used_last_minute / window.limit_per_minute)
            closed.add_metric([window.connection], window.gate_closed_seconds)
        yield used
        yield closed

    def _feeds(self) -> Iterator[Metric]:
        for feed in FEEDS:
            family = GaugeMetricFamily(feed.name, feed.documentation, labels=list(feed.labels))
            for source in _FEEDS.get(feed.name, []):
                for sample in source():
                    family.add_metric(list(sample.labels), sample.value)
            yield family


def render() -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)
    registry.register(ScrapeCollector())
    return generate_latest(registry)


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_BEARER_TOKEN
    if token and request.headers.get("Authorization", "") != f"Bearer {token}":
        return HttpResponse(
            "Send Authorization: Bearer <METRICS_BEARER_TOKEN>.\n", status=401, content_type="text/plain"
        )
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
