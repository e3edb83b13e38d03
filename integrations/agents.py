"""Agent ids (an agent's email -> the CRM's user id) per CRM, cached in Redis for every worker.

Without it every record, assignment and screen pop searched the CRM's users again for the same
agent: a third of a call's CRM requests (issue 10). An id is kept for `AGENT_ID_KEEP_SECONDS` and
refreshed on a miss; a write the CRM refuses while carrying a cached id makes the caller look the
agent up afresh (`integrations.services.agent_id_find(fresh=True)`), so a deleted and re-created
agent costs one refused write, never a record without its assignee.
"""

import redis

from integrations.cache import SharedCache

KEY_PREFIX = "crmbridge:agent-id:"
AGENT_ID_KEEP_SECONDS = 3600


class AgentIdCache:
    """email -> CRM user id, per CRM instance (its base URL). Redis trouble reads as a miss."""

    def __init__(self, client: redis.Redis, keep_seconds: int = AGENT_ID_KEEP_SECONDS) -> None:
        self.cache = SharedCache(client, prefix=KEY_PREFIX, keep_seconds=keep_seconds)

    @classmethod
    def from_url(cls, url: str) -> "AgentIdCache":
        return cls(redis.Redis.from_url(url))

    @staticmethod
    def _key(crm: str, email: str) -> str:
        return f"{crm.rstrip('/')}|{email.strip().lower()}"

    def get(self, crm: str, email: str) -> str | None:
        return self.cache.get(self._key(crm, email))

    def put(self, crm: str, email: str, agent_id: str) -> None:
        self.cache.put(self._key(crm, email), agent_id)

    def forget(self, crm: str, email: str) -> None:
        self.cache.forget(self._key(crm, email))
