"""Rate limits shared by every worker through Redis, so they hold across processes and hosts.

Two mechanisms, per CRM instance:
- a sliding-window limiter that keeps our own request rate under the connection's configured
  requests per minute (the CRM plan's limit), so workers do not spend requests on 429s;
- a gate that, after a CRM answers 429 with Retry-After, stays closed until the time is up.

Work is of two classes in one shared window: live session work may fill the whole budget, while
background work (ticket imports) may only take a slot while the window is below the budget minus
a share reserved for live work. However long an import runs, a call's ticket always finds that
share free. (A small step toward the full rate governor: one window, one priority rule.)
"""

import enum
import math
import uuid

import redis

KEY_PREFIX = "crmbridge:rate-gate:"
WINDOW_KEY_PREFIX = "crmbridge:rate-window:"
WINDOW_MS = 60_000

# Atomic: drop entries older than the window, then take a slot or say how long until one frees.
# The clock is Redis's own (TIME), so hosts with skewed clocks still share one window.
_ACQUIRE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class WorkClass(enum.StrEnum):
    """Who is spending the CRM's request budget."""

    LIVE = "live"
    IMPORT = "import"


# The part of a connection's requests per minute that background work never takes.
LIVE_RESERVED_SHARE = 0.5


def window_limit(per_minute: int, work_class: WorkClass, *, live_reserved_share: float = LIVE_RESERVED_SHARE) -> int:
    """How full the shared window may be for this class to take one more slot.

    Live work: the whole budget. Imports: what is above the live reserve, at least one request a
    minute so an import on a tiny budget still progresses (slowly).
    """
    if per_minute < 1:
        raise ValueError("per_minute must be at least 1")
    if not 0 <= live_reserved_share < 1:
        raise ValueError("live_reserved_share must be from 0 up to (not including) 1")
    if work_class is WorkClass.LIVE:
        return per_minute
    return max(1, math.floor(per_minute * (1 - live_reserved_share)))


class RedisRateGate:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)

    @classmethod
    def from_url(cls, url: str) -> "RedisRateGate":
        return cls(redis.Redis.from_url(url))

    def acquire(self, key: str, per_minute: int) -> float:
        """Take one request slot; 0 when taken, else the seconds until one frees up."""
        wait_ms = self._acquire(keys=[WINDOW_KEY_PREFIX + key], args=[WINDOW_MS, per_minute, uuid.uuid4().hex])
        return int(wait_ms) / 1000

    def seconds_until_open(self, key: str) -> float:
        remaining_ms = self.client.pttl(KEY_PREFIX + key)
        return remaining_ms / 1000 if isinstance(remaining_ms, int) and remaining_ms > 0 else 0.0

    def close_for(self, key: str, seconds: float) -> None:
        if seconds <= 0:
            return
        # GT keeps the later deadline when two workers report different Retry-After values.
        milliseconds = int(seconds * 1000)
        pipe = self.client.pipeline()
        pipe.set(KEY_PREFIX + key, 1, px=milliseconds, nx=True)
        pipe.pexpire(KEY_PREFIX + key, milliseconds, gt=True)
        pipe.execute()

    def open(self, key: str) -> None:
        self.client.delete(KEY_PREFIX + key, WINDOW_KEY_PREFIX + key)
