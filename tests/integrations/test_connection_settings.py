"""Connections built from what each provider declares: the admin form, add_crm_connection and sandbox_crm."""

import html
import shlex
import subprocess
import sys
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from integrations.models import CrmConnection
from integrations.providers.registry import PROVIDERS
from integrations.sandbox import SandboxServer
from integrations.services import connection_test
from tests.support import ROOT

pytestmark = pytest.mark.django_db
CRM_LABELS = {"zendesk": "Zendesk", "kustomer": "Kustomer", "salesforce": "Salesforce", "freshdesk": "Freshdesk"}

# What an admin types for each CRM's sandbox (secrets included), by declared setting name.
SANDBOX_SETTINGS = {
    "zendesk": {"email": "admin@example.com", "api_token": "sandbox-token"},
    "kustomer": {"api_token": "sandbox-api-key"},
    "salesforce": {
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "username": "api@example.com",
        "password": "sandbox-password",
        "security_token": "SbxSecurityToken0123456",
    },
    "freshdesk": {"api_token": "sandbox-api-key"},
}


# What a posted form without the field stores for a typed setting (an unticked box, no ticks).
BLANK_FORM_VALUES: dict[str, Any] = {"boolean": False, "choices": []}


@pytest.fixture
def admin_client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_every_crm_has_a_provider_and_declares_its_settings() -> None:
    assert sorted(PROVIDERS) == sorted(SANDBOX_SETTINGS)
    for kind, provider in PROVIDERS.items():
        assert {setting.name for setting in provider.settings_spec} >= set(SANDBOX_SETTINGS[kind]) - {"username"}
        assert all(setting.label and setting.help_text for setting in provider.settings_spec)


@pytest.mark.parametrize("kind", sorted(SANDBOX_SETTINGS))
def test_each_crm_is_connected_and_tested_from_the_admin_alone(
    admin_client: Client, request: pytest.FixtureRequest, kind: str
) -> None:
    sandbox: SandboxServer = request.getfixturevalue(f"{kind}_sandbox")
    spec = PROVIDERS[kind].settings_spec
    form: dict[str, Any] = {"name": f"My {kind}", "kind": kind, "base_url": sandbox.base_url, "make_active": "on"}
    form |= {f"{kind}__{name}": value for name, value in SANDBOX_SETTINGS[kind].items()}

    page = admin_client.get(f"/admin/integrations/crmconnection/add/?kind={kind}").content.decode()
    response = admin_client.post("/admin/integrations/crmconnection/add/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    for setting in spec:
        assert html.escape(setting.label) in page
    connection = CrmConnection.objects.get(name=f"My {kind}")
    secret = {setting.name for setting in spec if setting.secret}
    assert connection.secrets == {k: v for k, v in SANDBOX_SETTINGS[kind].items() if k in secret}
    assert {k: v for k, v in connection.config.items() if k != "rate_limit_per_minute"} == {
        k: v for k, v in SANDBOX_SETTINGS[kind].items() if k not in secret
    } | {
        setting.name: BLANK_FORM_VALUES.get(setting.type, "")
        for setting in spec
        if not setting.secret and setting.name not in SANDBOX_SETTINGS[kind] and setting.type != "integer"
    } | {setting.name: setting.default for setting in spec if setting.type == "integer"}
    assert connection.is_active
    assert connection_test(connection=connection) is None
    change = admin_client.get(f"/admin/integrations/crmconnection/{connection.pk}/change/").content.decode()
    for value in (SANDBOX_SETTINGS[kind][name] for name in secret):
        assert value not in change
    # Only this CRM's settings are on its page.
    assert [label for label in CRM_LABELS.values() if f"{label} credentials" in change] == [CRM_LABELS[kind]]


def test_a_missing_required_setting_is_named_and_nothing_is_stored(admin_client: Client) -> None:
    form = {"name": "sf", "kind": "salesforce", "base_url": "https://login.salesforce.com",
            "salesforce__client_id": "id"}  # fmt: skip

    response = admin_client.post("/admin/integrations/crmconnection/add/", form)

    assert response.status_code == 200
    assert "Consumer secret is required for Salesforce." in response.content.decode()
    assert not CrmConnection.objects.exists()


def test_a_blank_secret_keeps_the_stored_one(admin_client: Client, freshdesk_connection: CrmConnection) -> None:
    url = f"/admin/integrations/crmconnection/{freshdesk_connection.pk}/change/"
    form = {
        "name": "Renamed",
        "kind": "freshdesk",
        "base_url": freshdesk_connection.base_url,
        "freshdesk__api_token": "",
    }

    assert admin_client.post(url, form).status_code == 302

    freshdesk_connection.refresh_from_db()
    assert (freshdesk_connection.name, freshdesk_connection.secrets) == ("Renamed", {"api_token": "sandbox-api-key"})


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


def test_add_crm_connection_takes_each_declared_setting() -> None:
    pk = run("add_crm_connection", "--provider", "salesforce", "--base-url", "https://login.salesforce.com",
             "--setting", "client_id=abc", "--setting", "client_secret=s3cret", "--setting", "username=u@x.com",
             "--setting", "password=pw")  # fmt: skip

    connection = CrmConnection.objects.get(pk=pk)
    assert connection.secrets == {"client_secret": "s3cret", "password": "pw"}
    assert connection.config["client_id"] == "abc"
    with pytest.raises(CommandError, match="--setting colour: unknown setting for freshdesk; known: api_token"):
        run("add_crm_connection", "--provider", "freshdesk", "--base-url", "https://a.freshdesk.com",
            "--setting", "api_token=k", "--setting", "colour=blue")  # fmt: skip
    with pytest.raises(CommandError, match="expected NAME=VALUE"):
        run("add_crm_connection", "--provider", "freshdesk", "--base-url", "https://a.freshdesk.com", "--setting", "k")


@pytest.mark.parametrize("kind", sorted(SANDBOX_SETTINGS))
def test_sandbox_crm_prints_the_command_that_connects_to_it_first(kind: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sandbox_crm", kind, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        second = process.stdout.readline().strip()
        words = shlex.split(first)
        assert words[:5] == [".venv/bin/python", "manage.py", "add_crm_connection", "--provider", kind]
        assert second.startswith(f"sandbox {kind} listening on http://127.0.0.1:")

        pk = run(*words[2:])

        assert connection_test(connection=CrmConnection.objects.get(pk=pk)) is None
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_an_optional_secret_can_be_forgotten_but_not_also_typed(admin_client: Client) -> None:
    from integrations.services import connection_create

    connection = connection_create(
        name="sf",
        kind="salesforce",
        base_url="https://login.salesforce.com",
        settings={"client_id": "id", "client_secret": "s", "password": "pw", "security_token": "tok-1"},
    )
    url = f"/admin/integrations/crmconnection/{connection.pk}/change/"
    form = {"name": "sf", "kind": "salesforce", "base_url": connection.base_url, "salesforce__client_id": "id"}

    both = admin_client.post(
        url, {**form, "salesforce__security_token": "tok-2", "salesforce__security_token__clear": "on"}
    )
    assert "Either enter a security token or forget the stored one." in both.content.decode()
    assert admin_client.post(url, {**form, "salesforce__security_token__clear": "on"}).status_code == 302

    connection.refresh_from_db()
    assert connection.secrets == {"client_secret": "s", "password": "pw"}
