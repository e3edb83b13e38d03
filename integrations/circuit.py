"""A per-connection circuit breaker, its state in Redis so every worker on every host shares it.

After `threshold` consecutive transient failures (timeouts, refused connections, 5xx) of a CRM's
work, spread over at least `min_run_seconds` (a CRM failing a third of its requests at random
still answers someone within seconds; one that is down does not), the circuit opens: for
`cool_down` seconds no work is sent to that CRM, and what was due is rescheduled without spending
its retry budget. Then one probe goes through (half-open); its success closes the circuit, its
failure opens it for another cool-down. A success anywhere closes it.

Keys, per CRM instance (its base URL):
- `…:failures` — consecutive transient failures while closed (expires after an hour of quiet);
- `…:since` — when that run of failures began (Redis's clock, ms);
- `…:tripped` — present while the circuit is open or half-open;
- `…:open` — present (with a TTL) while work is paused;
- `…:probe` — the one probe in flight (with a TTL, so a probe whose worker died is not waited for).
"""

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

import redis

KEY_PREFIX = "crmbridge:circuit:"
FAILURES_KEPT_SECONDS = 3600
TRIPPED_KEPT_SECONDS = 7 * 86400


class CircuitOpen(Exception):
    """The connection's circuit is open: its work waits `wait` seconds without trying the CRM."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the CRM's circuit is open: work paused for {wait:.1f}s")
        self.wait = wait


# Added to a paused row's last error, so the admin sees why it waits without a new attempt.
CIRCUIT_NOTE = " (the CRM's circuit is open: waiting, not trying it)"


def circuit_pause_text(last_error: str, pause: CircuitOpen) -> str:
    """What a row paused by an open circuit shows: its last real error (or the pause), noted once."""
    error = last_error.removesuffix(CIRCUIT_NOTE) if last_error else str(pause)
    return error + CIRCUIT_NOTE


def circuit_pause_delay(pause: CircuitOpen, *, rand: Callable[[], float] = random.random) -> float:
    """When a paused row is looked at again: after the pause, with a second of jitter (not all at once)."""
    return pause.wait + rand()


class Circuit(enum.StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half-open"
    OPEN = "open"


# The Prometheus gauge's values (ops.metrics CIRCUIT_STATE).
GAUGE_VALUES = {Circuit.CLOSED: 0, Circuit.HALF_OPEN: 1, Circuit.OPEN: 2}


@dataclass(frozen=True)
class CircuitReading:
    """What Redis holds for one CRM, read at once."""

    tripped: bool
    open_ms: int  # milliseconds the pause has left; 0 when not paused
    probing: bool
    failures: int


def circuit_state(reading: CircuitReading) -> Circuit:
    """Closed, open (work paused) or half-open (the pause is over: one probe may go, or is going)."""
    if not reading.tripped:
        return Circuit.CLOSED
    return Circuit.OPEN if reading.open_ms > 0 else Circuit.HALF_OPEN


def should_open(failures: int, run_seconds: float, *, threshold: int, min_run_seconds: float) -> bool:
    """Whether a run of consecutive failures is an outage rather than bad luck."""
    return failures >= threshold and run_seconds >= min_run_seconds


@dataclass(frozen=True)
class CircuitBreaker:
    client: redis.Redis
    threshold: int
    cool_down_seconds: float
    # How long a probe's claim holds: a CRM call's timeout and some.
    probe_seconds: float
    min_run_seconds: float = 0.0

    @classmethod
    def from_url(
        cls, url: str, *, threshold: int, cool_down_seconds: float, probe_seconds: float, min_run_seconds: float
    ) -> "CircuitBreaker":
        return cls(redis.Redis.from_url(url), threshold, cool_down_seconds, probe_seconds, min_run_seconds)

    def _keys(self, crm: str) -> tuple[str, str, str, str]:
        base = f"{KEY_PREFIX}{crm}"
        return f"{base}:failures", f"{base}:tripped", f"{base}:open", f"{base}:probe"

    def _since_key(self, crm: str) -> str:
        return f"{KEY_PREFIX}{crm}:since"

    def _now_ms(self) -> int:
        seconds, microseconds = self.client.time()
        return int(seconds) * 1000 + int(microseconds) // 1000

    def read(self, crm: str) -> CircuitReading:
        failures, tripped, open_key, probe = self._keys(crm)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(failures)
        pipe.exists(tripped)
        pipe.pttl(open_key)
        pipe.exists(probe)
        count, is_tripped, open_ms, probing = pipe.execute()
        return CircuitReading(
            tripped=bool(is_tripped), open_ms=max(0, int(open_ms)), probing=bool(probing), failures=int(count or 0)
        )

    def wait_seconds(self, crm: str) -> float | None:
        """None: work may go to the CRM now (closed, or this caller is the half-open probe); else seconds to wait."""
        reading = self.read(crm)
        state = circuit_state(reading)
        if state == Circuit.CLOSED:
            return None
        if state == Circuit.OPEN:
            return reading.open_ms / 1000
        _, _, _, probe = self._keys(crm)
        if self.client.set(probe, "1", nx=True, px=max(1, int(self.probe_seconds * 1000))):
            return None
        # Another worker's probe is out: ask again soon (its answer closes or reopens the circuit).
        return max(0.1, min(1.0, float(self.client.pttl(probe)) / 1000))

    def record_failure(self, crm: str) -> bool:
        """Count a transient failure; True when it opened (or reopened) the circuit."""
        failures, tripped, open_key, probe = self._keys(crm)
        cool_down_ms = max(1, int(self.cool_down_seconds * 1000))
        if self.client.exists(tripped):
            # The probe (or a call let through just before the trip) failed: pause again.
            pipe = self.client.pipeline()
            pipe.set(open_key, "1", px=cool_down_ms)
            pipe.delete(probe)
            pipe.execute()
            return True
        now_ms, since = self._now_ms(), self._since_key(crm)
        pipe = self.client.pipeline()
        pipe.incr(failures)
        pipe.expire(failures, FAILURES_KEPT_SECONDS)
        pipe.set(since, now_ms, nx=True, ex=FAILURES_KEPT_SECONDS)
        pipe.get(since)
        count, _, _, started = pipe.execute()
        run_seconds = (now_ms - int(started or now_ms)) / 1000
        if not should_open(int(count), run_seconds, threshold=self.threshold, min_run_seconds=self.min_run_seconds):
            return False
        pipe = self.client.pipeline()
        pipe.set(tripped, "1", ex=TRIPPED_KEPT_SECONDS)
        pipe.set(open_key, "1", px=cool_down_ms)
        pipe.delete(failures, since)
        pipe.execute()
        return True

    def record_success(self, crm: str) -> None:
        """The CRM answered: the run of failures is over, and an open circuit closes."""
        self.client.delete(*self._keys(crm), self._since_key(crm))
