"""Adapter authentication: `Authorization: Agent-Token <key>`, one hashed token per agent."""

from agentstatus.models import AgentToken
from integrations.auth import HasHashedKey, HashedKeyAuthentication, HashedKeyScheme

KEYWORD = "Agent-Token"


class AgentTokenAuthentication(HashedKeyAuthentication):
    """Authenticates the agent's adapter; `request.auth` is the AgentToken."""

    keyword = KEYWORD
    model = AgentToken
    label = "agent token"


class HasAgentToken(HasHashedKey):
    model = AgentToken
    message = "Authenticate with the header `Authorization: Agent-Token <token>` (issued in the admin)."


class AgentTokenScheme(HashedKeyScheme):
    target_class = AgentTokenAuthentication
    name = "AgentToken"
    description = "`Agent-Token <token>`; an admin issues it on the agent's page (shown once)."
