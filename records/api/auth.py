"""Platform authentication: `Authorization: Api-Key <key>`, keys stored hashed (djangorestframework-api-key)."""

from typing import Any, ClassVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request
from rest_framework_api_key.models import AbstractAPIKey, APIKey

KEYWORD = "Api-Key"


class HashedKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: <keyword> <key>`, checked against a model of hashed keys; `request.auth` is its row.

    Subclasses name the header keyword, the key model and what a key is called in error messages.
    """

    keyword: ClassVar[str]
    model: ClassVar[type[AbstractAPIKey]]
    label: ClassVar[str]

    def authenticate(self, request: Request) -> tuple[None, AbstractAPIKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed(f"The {self.keyword} header has no {self.label}.")
        try:
            found = self.model.objects.get_from_key(key)
        except self.model.DoesNotExist:
            raise exceptions.AuthenticationFailed(f"Invalid or revoked {self.label}.") from None
        if found.has_expired:
            raise exceptions.AuthenticationFailed(f"This {self.label} has expired.")
        return (None, found)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


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
