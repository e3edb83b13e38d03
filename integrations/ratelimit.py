"""Rate limits shared by every worker through Redis, so they hold across processes and hosts.

Two mechanisms, per CRM instance:
- a sliding-window limiter that keeps our own request rate under the connection's configured
  requests per minute (the CRM plan's limit), so workers do not spend requests on 429s;
- a gate that, after a CRM answers 429 with Retry-After, stays closed until the time is up.
"""

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
