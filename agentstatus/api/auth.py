"""Adapter authentication: `Authorization: Agent-Token <key>`, one hashed token per agent."""

from typing import Any, cast

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from agentstatus.models import AgentToken

KEYWORD = "Agent-Token"


class AgentTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates the agent's adapter; `request.auth` is the AgentToken, its agent loaded."""

    def authenticate(self, request: Request) -> tuple[None, AgentToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != KEYWORD.lower():
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("The Agent-Token header has no token.")
        try:
            token = cast(AgentToken, AgentToken.objects.get_from_key(key))
        except AgentToken.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid or revoked agent token.") from None
        if token.has_expired:
            raise exceptions.AuthenticationFailed("This agent token has expired.")
        return (None, token)

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


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
