"""Agent ids (an agent's email -> the CRM's user id) per CRM, cached in Redis for every worker.

Without it every record, assignment and screen pop searched the CRM's users again for the same
agent: a third of a call's CRM requests (issue 10). An id is kept for `AGENT_ID_KEEP_SECONDS` and
refreshed on a miss; a write the CRM refuses while carrying a cached id makes the caller look the
agent up afresh (`integrations.services.agent_id_find(fresh=True)`), so a deleted and re-created
agent costs one refused write, never a record without its assignee.
"""

import logging

import redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "crmbridge:agent-id:"
AGENT_ID_KEEP_SECONDS = 3600


class AgentIdCache:
    """email -> CRM user id, per CRM instance (its base URL). Redis trouble reads as a miss."""

    def __init__(self, client: redis.Redis, keep_seconds: int = AGENT_ID_KEEP_SECONDS) -> None:
        self.client = client
        self.keep_seconds = keep_seconds

    @classmethod
    def from_url(cls, url: str) -> "AgentIdCache":
        return cls(redis.Redis.from_url(url))

    def _key(self, crm: str, email: str) -> str:
        return f"{KEY_PREFIX}{crm.rstrip('/')}|{email.strip().lower()}"

    def get(self, crm: str, email: str) -> str | None:
        try:
            value = self.client.get(self._key(crm, email))
        except redis.RedisError:
            logger.warning("integrations.agent-ids.unavailable", exc_info=True)
            return None
        return value.decode() if isinstance(value, bytes) else None

    def put(self, crm: str, email: str, agent_id: str) -> None:
        try:
            self.client.set(self._key(crm, email), agent_id, ex=self.keep_seconds)
        except redis.RedisError:
            logger.warning("integrations.agent-ids.unavailable", exc_info=True)

    def forget(self, crm: str, email: str) -> None:
        try:
            self.client.delete(self._key(crm, email))
        except redis.RedisError:
            logger.warning("integrations.agent-ids.unavailable", exc_info=True)
