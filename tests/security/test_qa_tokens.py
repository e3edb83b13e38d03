"""QA tokens are stored hashed and shown once, like API keys (issue 15, item 8)."""

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from ticketsearch.models import QaToken

pytestmark = pytest.mark.django_db

SEARCH = "/api/v1/tickets/search"


@pytest.fixture
def reviewer() -> User:
    user = User.objects.create_user("qa", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="search_tickets"))
    return user


def _search(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get(SEARCH).status_code


def _stored_anywhere(key: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, prefix, hashed_key, name FROM ticketsearch_qatoken")
        return any(key in str(value) for row in cursor.fetchall() for value in row)


def test_admin_shows_a_new_token_once_and_stores_its_hash(reviewer: User) -> None:
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password="pw"))

    page = admin.post("/admin/ticketsearch/qatoken/add/", {"name": "QA laptop", "user": reviewer.pk}, follow=True)
    key = re.search(r"is: ([\w.]+)\.", page.content.decode())
    assert key is not None
    key_text = key.group(1)

    assert _search(key_text) == 200
    assert not _stored_anywhere(key_text)
    token = QaToken.objects.get(user=reviewer)
    assert key_text not in admin.get(f"/admin/ticketsearch/qatoken/{token.pk}/change/").content.decode()
    assert key_text not in admin.get("/admin/ticketsearch/qatoken/").content.decode()


def test_command_prints_a_token_once(reviewer: User, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("create_qa_token", "qa")
    key = capsys.readouterr().out.strip()

    assert _search(key) == 200
    assert not _stored_anywhere(key)


def test_revoked_unknown_or_deactivated_tokens_are_refused(reviewer: User) -> None:
    token, key = QaToken.objects.create_key(name="t", user=reviewer)
    assert _search(key) == 200
    assert _search(key[:-1] + ("x" if key[-1] != "x" else "y")) == 401

    reviewer.is_active = False
    reviewer.save()
    assert _search(key) == 401

    reviewer.is_active = True
    reviewer.save()
    token.revoked = True
    token.save()
    assert _search(key) == 401


def test_the_plain_text_token_table_is_gone() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('authtoken_token')")
        assert cursor.fetchone() == (None,)
