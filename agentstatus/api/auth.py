"""Adapter authentication: `Authorization: Agent-Token <key>`, one hashed token per agent."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import permissions
from rest_framework.request import Request

from agentstatus.models import AgentToken
from integrations.auth import HashedKeyAuthentication

KEYWORD = "Agent-Token"


class AgentTokenAuthentication(HashedKeyAuthentication):
    """Authenticates the agent's adapter; `request.auth` is the AgentToken."""

    keyword = KEYWORD
    model = AgentToken
    label = "agent token"


class HasAgentToken(permissions.BasePermission):
    message = "Authenticate with the header `Authorization: Agent-Token <token>` (issued in the admin)."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, AgentToken)


class AgentTokenScheme(OpenApiAuthenticationExtension):
    """Documents the Agent-Token header in the OpenAPI schema (drf-spectacular picks it up on import)."""

    target_class = AgentTokenAuthentication
    name = "AgentToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Agent-Token <token>`; an admin issues it on the agent's page (shown once).",
        }
