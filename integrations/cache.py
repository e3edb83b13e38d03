"""Small values every worker shares, kept in Redis for a while; Redis trouble reads as a miss."""

import logging

import redis

logger = logging.getLogger(__name__)


class SharedCache:
    """Strings under `prefix`, each kept `keep_seconds`. A cache: losing it costs a CRM request, never data."""

    def __init__(self, client: redis.Redis, *, prefix: str, keep_seconds: int) -> None:
        self.client = client
        self.prefix = prefix
        self.keep_seconds = keep_seconds

    def get(self, key: str) -> str | None:
        try:
            value = self.client.get(self.prefix + key)
        except redis.RedisError:
            logger.warning("integrations.cache.unavailable %s", self.prefix, exc_info=True)
            return None
        return value.decode() if isinstance(value, bytes) else None

    def put(self, key: str, value: str) -> None:
        try:
            self.client.set(self.prefix + key, value, ex=self.keep_seconds)
        except redis.RedisError:
            logger.warning("integrations.cache.unavailable %s", self.prefix, exc_info=True)

    def forget(self, key: str) -> None:
        try:
            self.client.delete(self.prefix + key)
        except redis.RedisError:
            logger.warning("integrations.cache.unavailable %s", self.prefix, exc_info=True)
