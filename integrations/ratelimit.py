"""Rate limits shared by every worker through Redis, so they hold across processes and hosts.

Two mechanisms, per CRM instance:
- a sliding-window limiter that keeps our own request rate under the connection's configured
  requests per minute (the CRM plan's limit), so workers do not spend requests on 429s;
- a gate that, after a CRM answers 429 with Retry-After, stays closed until the time is up.

Work is of three classes in one shared window: live session work may fill the whole budget, while
background work (ticket imports) may only take a slot while the window is below the budget minus
a share reserved for live work. However long an import runs, a call's ticket always finds that
share free. Among live work, a session's record being made (WorkClass.RECORD) goes first: held by
our window or by the CRM's, it is given a turn counting only the record creation waiting before
it, and the slots due to those turns are not taken by other work, so a call's ticket does not
queue behind every session's follow-up comments.
"""

import enum
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "crmbridge:rate-gate:"
WINDOW_KEY_PREFIX = "crmbridge:rate-window:"
WAITERS_KEY_PREFIX = "crmbridge:rate-waiters:"
# Among the waiters, those making a session's record (WorkClass.RECORD): their turns come first.
FIRST_WAITERS_KEY_PREFIX = "crmbridge:rate-first-waiters:"
# Callers held by a closed gate, and the pace (ms a request) at which the CRM's window frees again.
GATE_WAITERS_KEY_PREFIX = "crmbridge:gate-waiters:"
GATE_PACE_KEY_PREFIX = "crmbridge:gate-pace:"
GATE_FIRST_WAITERS_KEY_PREFIX = "crmbridge:gate-first-waiters:"
# How long past its turn record creation's turn stays reserved for it: its worker comes back a
# little late (the retry's jitter of up to a second, the broker's countdown).
FIRST_TURN_GRACE_MS = 2000
WINDOW_MS = 60_000
# Per-minute request counters for the health chart: one small hash per CRM and minute.
USAGE_KEY_PREFIX = "crmbridge:usage:"
# Kept a little longer than the chart's hour, so a late reader still sees the whole hour.
USAGE_KEEP_SECONDS = 2 * 3600
USAGE_MINUTES = 60

# What both scripts below begin with: Redis's clock in ms (TIME), and how record creation back at
# its turn takes up the earliest turn that has come (in the sorted set of the turns it was told).
_NOW_MS = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local function take_up_due_turn(turns, now)
  local due = redis.call('ZRANGE', turns, 0, 0, 'WITHSCORES')
  if due[2] and tonumber(due[2]) <= now then
    redis.call('ZREM', turns, due[1])
  end
end
"""

# Atomic: drop entries older than the window, then take a slot or say how long until one frees.
# The clock is Redis's own (TIME), so hosts with skewed clocks still share one window.
# A refused caller is told its own turn, not the moment the first slot frees: the n-th caller
# waiting is woken when the n-th slot frees (KEYS[2] holds the waiters' wake-up times), so a
# crowd of waiting sessions is spread over the window instead of all waking at one instant to
# find one free slot between them.
_ACQUIRE = (
    _NOW_MS
    + """
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local first = ARGV[4] == '1'
local grace = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - grace)
local taken = redis.call('ZCARD', KEYS[1])
-- Record creation told a turn (KEYS[3], kept a grace past it for the caller to come back) has
-- the next free slots: other work takes one only past them.
local reserved = 0
if not first then
  reserved = redis.call('ZCARD', KEYS[3])
end
if taken + reserved < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  if first then
    take_up_due_turn(KEYS[3], now)
  end
  return 0
end
local wake
if taken < limit then
  -- A free slot, held for record creation: this caller's turn comes after the last of theirs,
  -- behind the other waiters, at the window's pace.
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  local waiting = redis.call('ZCARD', KEYS[2])
  wake = math.max(now, tonumber(last[2])) + 1 + waiting * math.floor(window / limit)
else
  local waiting
  if first then
    waiting = redis.call('ZCOUNT', KEYS[3], now + 1, '+inf')
  else
    waiting = redis.call('ZCARD', KEYS[2])
  end
  local turn = (taken - limit) + waiting
  local laps = math.floor(turn / taken)
  local entry = redis.call('ZRANGE', KEYS[1], turn % taken, turn % taken, 'WITHSCORES')
  wake = tonumber(entry[2]) + window * (laps + 1)
end
redis.call('ZADD', KEYS[2], wake, ARGV[3])
redis.call('PEXPIRE', KEYS[2], wake - now + window)
if first then
  redis.call('ZADD', KEYS[3], wake, ARGV[3])
  redis.call('PEXPIRE', KEYS[3], wake - now + window + grace)
end
return math.max(1, wake - now)
"""
)


# Held by a closed gate: each caller is told the gate's time left plus its turn at the CRM's pace,
# so those the gate held together come back one request apart, not all at the instant it opens.
_HOLD = (
    _NOW_MS
    + """
local ttl = redis.call('PTTL', KEYS[1])
local first = ARGV[2] == '1'
local grace = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - grace)
if ttl <= 0 then
  if first then
    take_up_due_turn(KEYS[4], now)
    return 0
  end
  -- Open, but record creation whose turn has come is not back yet: it goes first.
  if redis.call('ZCOUNT', KEYS[4], '-inf', now) == 0 then
    return 0
  end
  ttl = 0
end
local pace = tonumber(redis.call('GET', KEYS[3]) or '0')
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
-- Record creation (KEYS[4]) queues only behind record creation still to come; other work behind everyone.
local ahead
if first then
  ahead = redis.call('ZCOUNT', KEYS[4], now + 1, '+inf')
else
  ahead = redis.call('ZCARD', KEYS[2]) + redis.call('ZCOUNT', KEYS[4], '-inf', now)
end
local wake = now + ttl + ahead * pace
redis.call('ZADD', KEYS[2], wake, ARGV[1])
redis.call('PEXPIRE', KEYS[2], wake - now + 1000)
if first then
  redis.call('ZADD', KEYS[4], wake, ARGV[1])
  redis.call('PEXPIRE', KEYS[4], wake - now + 1000 + grace)
end
return math.max(1, wake - now)
"""
)


class Usage:
    """What record_usage counts: every request sent, and among them 429s and faults; and refusals."""

    SENT = "sent"
    RATE_LIMITED = "rate_limited"  # the CRM answered 429 (or its rate-limit error code)
    FAULT = "fault"  # timeout, connection failure or 5xx
    HELD_BACK = "held_back"  # not sent: our own budget or a 429's Retry-After was still running


@dataclass(frozen=True)
class MinuteUsage:
    """One minute of requests to a CRM (integrations.http.Usage counts)."""

    minute: datetime
    sent: int = 0
    rate_limited: int = 0
    fault: int = 0
    held_back: int = 0


def _usage_key(key: str, epoch_minute: int) -> str:
    return f"{USAGE_KEY_PREFIX}{key}:{epoch_minute}"


class WorkClass(enum.StrEnum):
    """Who is spending the CRM's request budget."""

    # A session's record being made (its contact found or made, its record created or appended
    # to): ahead of all other waiting work, so a call's ticket never queues behind follow-ups.
    RECORD = "record"
    LIVE = "live"
    IMPORT = "import"


# The part of a connection's requests per minute that background work never takes.
LIVE_RESERVED_SHARE = 0.5


def window_limit(per_minute: int, work_class: WorkClass, *, live_reserved_share: float = LIVE_RESERVED_SHARE) -> int:
    """How full the shared window may be for this class to take one more slot.

    Live work (record creation too): the whole budget. Imports: what is above the live reserve, at least one request a
    minute so an import on a tiny budget still progresses (slowly).
    """
    if per_minute < 1:
        raise ValueError("per_minute must be at least 1")
    if not 0 <= live_reserved_share < 1:
        raise ValueError("live_reserved_share must be from 0 up to (not including) 1")
    if work_class is not WorkClass.IMPORT:
        return per_minute
    return max(1, math.floor(per_minute * (1 - live_reserved_share)))


# What of a CRM's own window is left unspent: other clients of the account (its apps, triggers,
# agents' browsers) spend from the same window, so running it to its last request makes 429s.
HEADROOM_SHARE = 0.03


@dataclass(frozen=True)
class WindowReading:
    """What a CRM's rate-limit headers on one answer say of its window."""

    limit: int
    remaining: int
    # Seconds until the window frees requests again; None where the CRM does not say.
    reset_seconds: float | None = None


def headroom_pause(reading: WindowReading, *, headroom_share: float = HEADROOM_SHARE) -> float:
    """Seconds every worker holds its requests to this CRM so its window keeps its headroom (0: go on).

    Held until the window resets; for a CRM that does not say when, as long as the window takes to
    free the requests the headroom lacks at its own pace.
    """
    if reading.limit <= 0:
        return 0.0
    headroom = max(1, math.ceil(reading.limit * headroom_share))
    if reading.remaining > headroom:
        return 0.0
    if reading.reset_seconds is not None:
        return max(0.0, reading.reset_seconds)
    return (headroom - reading.remaining + 1) * (WINDOW_MS / 1000) / reading.limit


def window_pace(reading: WindowReading) -> float:
    """Seconds between two requests at the CRM window's own pace."""
    return (WINDOW_MS / 1000) / reading.limit if reading.limit > 0 else 0.0


def header_int(value: str | None) -> int | None:
    """A rate-limit header's count, or None when absent or not a number."""
    try:
        return int(float(value)) if value not in (None, "") else None
    except ValueError:
        return None


class RedisRateGate:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._hold = client.register_script(_HOLD)

    @classmethod
    def from_url(cls, url: str) -> "RedisRateGate":
        return cls(redis.Redis.from_url(url))

    def acquire(self, key: str, per_minute: int, *, first: bool = False) -> float:
        """Take one request slot; 0 when taken, else the seconds until this caller's turn.

        `first` (record creation): the turns of other waiting work do not count before it, and the
        free slots its waiters are due are not taken by other work meanwhile.
        """
        keys = [WINDOW_KEY_PREFIX + key, WAITERS_KEY_PREFIX + key, FIRST_WAITERS_KEY_PREFIX + key]
        wait_ms = self._acquire(
            keys=keys, args=[WINDOW_MS, per_minute, uuid.uuid4().hex, int(first), FIRST_TURN_GRACE_MS]
        )
        return int(wait_ms) / 1000

    def seconds_until_open(self, key: str) -> float:
        remaining_ms = self.client.pttl(KEY_PREFIX + key)
        return remaining_ms / 1000 if isinstance(remaining_ms, int) and remaining_ms > 0 else 0.0

    def hold(self, key: str, *, first: bool = False) -> float:
        """0 while the gate is open; else the seconds until this caller's turn after it opens
        (`first`, record creation: counting only the record creation waiting before it)."""
        keys = [
            KEY_PREFIX + key,
            GATE_WAITERS_KEY_PREFIX + key,
            GATE_PACE_KEY_PREFIX + key,
            GATE_FIRST_WAITERS_KEY_PREFIX + key,
        ]
        return int(self._hold(keys=keys, args=[uuid.uuid4().hex, int(first), FIRST_TURN_GRACE_MS])) / 1000

    def close_for(self, key: str, seconds: float, *, pace: float = 0.0) -> None:
        """Close the gate for `seconds`; those it holds then come back `pace` seconds apart (0: all at once,
        as a 429's Retry-After says)."""
        if seconds <= 0:
            return
        # GT keeps the later deadline when two workers report different Retry-After values.
        # At least 1 ms: Redis refuses PX 0, and a sub-millisecond Retry-After still closes the gate.
        milliseconds = max(1, int(seconds * 1000))
        pipe = self.client.pipeline()
        pipe.set(KEY_PREFIX + key, 1, px=milliseconds, nx=True)
        pipe.pexpire(KEY_PREFIX + key, milliseconds, gt=True)
        if pace > 0:
            pipe.set(GATE_PACE_KEY_PREFIX + key, int(pace * 1000), px=milliseconds + WINDOW_MS)
        pipe.execute()

    def open(self, key: str) -> None:
        self.client.delete(
            *(
                prefix + key
                for prefix in (
                    KEY_PREFIX,
                    WINDOW_KEY_PREFIX,
                    WAITERS_KEY_PREFIX,
                    FIRST_WAITERS_KEY_PREFIX,
                    GATE_WAITERS_KEY_PREFIX,
                    GATE_PACE_KEY_PREFIX,
                    GATE_FIRST_WAITERS_KEY_PREFIX,
                )
            )
        )

    def record_usage(self, key: str, *outcomes: str) -> None:
        """Count outcomes in this minute's bucket. Never fails the CRM call it counts."""
        bucket = _usage_key(key, int(time.time() // 60))
        try:
            pipe = self.client.pipeline(transaction=False)
            for outcome in outcomes:
                pipe.hincrby(bucket, outcome, 1)
            pipe.expire(bucket, USAGE_KEEP_SECONDS)
            pipe.execute()
        except redis.RedisError:
            logger.warning("crm.usage.unrecorded %s", key, exc_info=True)

    def usage(self, key: str, *, minutes: int = USAGE_MINUTES, now: float | None = None) -> list[MinuteUsage]:
        """The last `minutes` minutes of requests to the CRM, oldest first, the current minute last."""
        current = int((time.time() if now is None else now) // 60)
        epochs = list(range(current - minutes + 1, current + 1))
        pipe = self.client.pipeline(transaction=False)
        for epoch in epochs:
            pipe.hgetall(_usage_key(key, epoch))
        buckets = pipe.execute()
        return [
            MinuteUsage(
                minute=datetime.fromtimestamp(epoch * 60, tz=UTC),
                **{field.decode(): int(count) for field, count in bucket.items() if field.decode() in _USAGE_FIELDS},
            )
            for epoch, bucket in zip(epochs, buckets, strict=True)
        ]


_USAGE_FIELDS = frozenset({Usage.SENT, Usage.RATE_LIMITED, Usage.FAULT, Usage.HELD_BACK})
