"""A rate-limit gate shared by every worker through Redis.

After a CRM answers 429 with Retry-After, the gate stays closed for that instance until the time
is up, so other workers (on this host or others) wait instead of hitting the limit again.
"""

import redis

KEY_PREFIX = "crmbridge:rate-gate:"


class RedisRateGate:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @classmethod
    def from_url(cls, url: str) -> "RedisRateGate":
        return cls(redis.Redis.from_url(url))

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
        self.client.delete(KEY_PREFIX + key)
