"""QA API authentication: `Authorization: Token <key>`, keys stored hashed, acting as their reviewer."""

from django.contrib.auth.base_user import AbstractBaseUser
from rest_framework import exceptions
from rest_framework.request import Request

from integrations.auth import HashedKeyAuthentication, HashedKeyScheme
from ticketsearch.models import QaToken

KEYWORD = "Token"


class QaTokenAuthentication(HashedKeyAuthentication):
    """`request.user` is the token's reviewer (their QA permissions apply), `request.auth` the token."""

    keyword = KEYWORD
    model = QaToken
    label = "QA token"

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, QaToken] | None:  # type: ignore[override]
        found = super().authenticate(request)
        if found is None:
            return None
        token = found[1]
        assert isinstance(token, QaToken)
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This QA token's user is deactivated.")
        return (token.user, token)


class QaTokenScheme(HashedKeyScheme):
    target_class = QaTokenAuthentication
    name = "QaToken"
    description = "`Token <key>`; an admin issues it under QA tokens, or `manage.py create_qa_token USER` (shown once)."
