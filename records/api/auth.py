"""Platform authentication: `Authorization: Api-Key <key>`, keys stored hashed (djangorestframework-api-key)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request
from rest_framework_api_key.models import AbstractAPIKey, APIKey

KEYWORD = "Api-Key"


class PlatformApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates the contact-center platform; `request.auth` is its APIKey row."""

    def authenticate(self, request: Request) -> tuple[None, AbstractAPIKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != KEYWORD.lower():
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("The Api-Key header has no key.")
        try:
            api_key = APIKey.objects.get_from_key(key)
        except APIKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        return (None, api_key)

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


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
