"""Salesforce's username-password login with the security token as its own encrypted setting.

Salesforce refuses the password grant from outside the org's trusted IP ranges unless the user's
security token is appended to the password; the sandbox Salesforce checks it the same way.
"""

from io import StringIO
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command
from django.test import Client

from integrations.admin import CrmConnectionForm
from integrations.exceptions import CrmAuthError
from integrations.models import CrmConnection
from integrations.providers.base import ConnectionSettings
from integrations.providers.salesforce import SalesforceProvider
from integrations.sandbox import SandboxServer
from integrations.sandbox.salesforce import SANDBOX_LOGIN
from integrations.services import connection_test
from tests.support import sandbox_stats

USERNAME, PASSWORD, SECURITY_TOKEN = SANDBOX_LOGIN


def password_grant(sandbox: SandboxServer, password: str, username: str = USERNAME) -> requests.Response:
    form = {"grant_type": "password", "client_id": "c", "client_secret": "s", "username": username}
    return requests.post(f"{sandbox.base_url}/services/oauth2/token", data=form | {"password": password}, timeout=5)


@pytest.mark.parametrize(
    "password",
    [PASSWORD, SECURITY_TOKEN + PASSWORD, PASSWORD + SECURITY_TOKEN[:-1], PASSWORD + "x" + SECURITY_TOKEN, ""],
    ids=["token-missing", "token-first", "token-cut", "password-wrong", "empty"],
)
def test_sandbox_password_grant_without_the_appended_token_is_invalid_grant(
    salesforce_sandbox: SandboxServer, password: str
) -> None:
    response = password_grant(salesforce_sandbox, password)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "authentication failure"}


def test_sandbox_password_grant_with_the_appended_token_answers_a_token(salesforce_sandbox: SandboxServer) -> None:
    response = password_grant(salesforce_sandbox, PASSWORD + SECURITY_TOKEN)

    assert response.status_code == 200
    assert {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"} <= set(response.json())


def test_sandbox_logins_from_a_trusted_ip_range_need_no_token(salesforce_sandbox: SandboxServer) -> None:
    login = {"username": "trusted@example.com", "password": "pw", "security_token": ""}
    added = requests.post(f"{salesforce_sandbox.base_url}/__sandbox/logins", json=login, timeout=5)

    assert added.status_code == 201
    assert password_grant(salesforce_sandbox, "pw", username="trusted@example.com").status_code == 200
    assert password_grant(salesforce_sandbox, "pw", username=USERNAME).status_code == 400


def provider(sandbox: SandboxServer, secrets: dict[str, str]) -> SalesforceProvider:
    settings = ConnectionSettings(
        kind="salesforce",
        base_url=sandbox.base_url,
        config={"client_id": "c", "username": USERNAME},
        secrets={"client_secret": "s", **secrets},
        timeout=5,
    )
    return SalesforceProvider(settings)


def test_the_provider_appends_the_security_token_to_the_password(salesforce_sandbox: SandboxServer) -> None:
    provider(salesforce_sandbox, {"password": PASSWORD, "security_token": SECURITY_TOKEN}).test_connection()

    assert sandbox_stats(salesforce_sandbox)["requests"]["POST /services/oauth2/token"] == 1


@pytest.mark.parametrize(
    "secrets",
    [{"password": PASSWORD}, {"password": PASSWORD, "security_token": "OldResetToken000"}],
    ids=["no-token", "old-token"],
)
def test_without_the_right_security_token_the_login_is_an_auth_error(
    salesforce_sandbox: SandboxServer, secrets: dict[str, str]
) -> None:
    with pytest.raises(CrmAuthError) as failed:
        provider(salesforce_sandbox, secrets).test_connection()

    assert "authentication failure" in str(failed.value)


# The generic connection form: each declared setting is a field named `<kind>__<name>`.
SALESFORCE_FORM = {
    "name": "Salesforce",
    "kind": "salesforce",
    "salesforce__client_id": "3MVG9-consumer-key",
    "salesforce__client_secret": "consumer-secret",
    "salesforce__username": USERNAME,
    "salesforce__password": PASSWORD,
    "salesforce__security_token": SECURITY_TOKEN,
}


@pytest.mark.django_db
def test_admin_form_stores_the_security_token_encrypted_and_write_only(salesforce_sandbox: SandboxServer) -> None:
    form = CrmConnectionForm(data=SALESFORCE_FORM | {"base_url": salesforce_sandbox.base_url})
    assert form.is_valid(), form.errors
    connection = form.save()

    assert connection.config["client_id"] == "3MVG9-consumer-key"
    assert connection.config["username"] == USERNAME
    assert connection.secrets == {
        "client_secret": "consumer-secret",
        "password": PASSWORD,
        "security_token": SECURITY_TOKEN,
    }
    assert SECURITY_TOKEN not in connection.encrypted_secrets
    assert SECURITY_TOKEN not in CrmConnectionForm(instance=connection).as_p()
    # The connection logs in against the sandbox, which requires the token.
    assert connection_test(connection=connection) is None


@pytest.mark.django_db
def test_admin_form_keeps_stored_secrets_when_left_blank_and_can_forget_the_token(
    salesforce_sandbox: SandboxServer,
) -> None:
    form = CrmConnectionForm(data=SALESFORCE_FORM | {"base_url": salesforce_sandbox.base_url})
    assert form.is_valid(), form.errors
    connection = form.save()
    blank = {
        key: value
        for key, value in SALESFORCE_FORM.items()
        if key not in ("salesforce__client_secret", "salesforce__password")
    }
    blank |= {"base_url": salesforce_sandbox.base_url, "salesforce__security_token": ""}

    kept = CrmConnectionForm(data=blank, instance=connection)
    assert kept.is_valid(), kept.errors
    kept.save()
    connection.refresh_from_db()
    assert connection.secrets["security_token"] == SECURITY_TOKEN
    assert connection.secrets["password"] == PASSWORD

    cleared = CrmConnectionForm(data=blank | {"salesforce__security_token__clear": "on"}, instance=connection)
    assert cleared.is_valid(), cleared.errors
    cleared.save()
    connection.refresh_from_db()
    assert "security_token" not in connection.secrets
    assert connection.secrets["password"] == PASSWORD
    # Without the token the sandbox, like Salesforce, refuses the login, and the connection says so.
    error = connection_test(connection=connection)
    assert error is not None
    assert "authentication failure" in error


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("missing", "field", "message"),
    [
        ("salesforce__client_id", "salesforce__client_id", "Consumer key is required"),
        ("salesforce__client_secret", "salesforce__client_secret", "Consumer secret is required"),
        ("salesforce__password", "salesforce__password", "Password is required with a username"),
    ],
)
def test_admin_form_names_what_a_salesforce_login_lacks(missing: str, field: str, message: str) -> None:
    data = {key: value for key, value in SALESFORCE_FORM.items() if key != missing}

    form = CrmConnectionForm(data=data | {"base_url": "https://acme.my.salesforce.com"})

    assert not form.is_valid()
    assert message in " ".join(str(error) for error in form.errors[field])


@pytest.mark.django_db
def test_admin_page_shows_whether_a_token_is_stored_never_the_token(admin_client: Client) -> None:
    connection = CrmConnection(
        name="SF", kind="salesforce", base_url="https://acme.my.salesforce.com", config={"client_id": "k"}
    )
    connection.set_secrets({"client_secret": "s", "password": "p", "security_token": "TOKEN-NEVER-SHOWN"})
    connection.save()

    html = admin_client.get(f"/admin/integrations/crmconnection/{connection.pk}/change/").content.decode()

    assert "Security token stored" in html
    assert "TOKEN-NEVER-SHOWN" not in html
    assert 'name="salesforce__security_token"' in html


@pytest.mark.django_db
def test_add_crm_connection_takes_the_salesforce_login(salesforce_sandbox: SandboxServer) -> None:
    out = StringIO()
    args: list[Any] = ["--provider", "salesforce", "--base-url", salesforce_sandbox.base_url, "--client-id", "k"]
    args += ["--client-secret", "s", "--username", USERNAME, "--password", PASSWORD, "--security-token", SECURITY_TOKEN]

    call_command("add_crm_connection", *args, "--inactive", stdout=out)

    connection = CrmConnection.objects.get(pk=out.getvalue().strip())
    assert connection.config == {"client_id": "k", "username": USERNAME, "rate_limit_per_minute": None}
    assert connection.secrets == {"client_secret": "s", "password": PASSWORD, "security_token": SECURITY_TOKEN}
    assert connection_test(connection=connection) is None
    with pytest.raises(CommandError, match=r"--setting client_id \(or --client-id\): Consumer key is required"):
        call_command("add_crm_connection", "--provider", "salesforce", "--base-url", "https://x.my.salesforce.com")
