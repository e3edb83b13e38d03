"""Platform authentication: `Authorization: Api-Key <key>`, keys stored hashed (djangorestframework-api-key)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework_api_key.models import AbstractAPIKey, APIKey

from integrations.auth import HashedKeyAuthentication

KEYWORD = "Api-Key"


class PlatformApiKeyAuthentication(HashedKeyAuthentication):
    """Authenticates the contact-center platform; `request.auth` is its APIKey row."""

    keyword = KEYWORD
    model = APIKey
    label = "API key"


class HasPlatformApiKey(permissions.BasePermission):
    message = "Authenticate with the header `Authorization: Api-Key <key>`."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, AbstractAPIKey)


class PlatformApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the Api-Key header in the OpenAPI schema (drf-spectacular picks it up on import)."""

    target_class = PlatformApiKeyAuthentication
    name = "PlatformApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; create keys in the admin or with `manage.py create_api_key NAME`.",
        }
