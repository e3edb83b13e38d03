"""The hashed-key authentication the platform, adapter and QA APIs share (keys stored hashed, never in clear).

Neutral ground: it knows no app; each API names its header keyword, its key model and its words.
"""

from typing import Any, ClassVar

from django.db import models
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request
from rest_framework_api_key.models import AbstractAPIKey


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


class HasHashedKey(permissions.BasePermission):
    """Lets in requests authenticated with a key of `model`; subclasses name it and the `message`."""

    model: ClassVar[type[models.Model]]

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, self.model)


class HashedKeyScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of a HashedKeyAuthentication (drf-spectacular registers subclasses on import).

    Subclasses name `target_class`, `name` and `description`; this base itself documents nothing.
    """

    description: ClassVar[str]

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": self.description}
