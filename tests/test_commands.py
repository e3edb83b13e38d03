"""Management commands for scripting what the admin does."""

import subprocess
import sys
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from agentstatus.models import Agent as StatusAgent
from agentstatus.models import AgentToken, StatusSyncSettings
from integrations.models import CrmConnection
from records.models import Queue, Session
from tests.support import EXAMPLE_CALL, ROOT, ingest_and_process


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


@pytest.mark.django_db
def test_create_api_key_prints_a_working_key_once() -> None:
    key = run("create_api_key", "platform-eu")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/ping").json() == {"ok": True, "key": "platform-eu"}


@pytest.mark.django_db
def test_add_crm_connection_prints_its_id_and_makes_it_active() -> None:
    first = run("add_crm_connection", "--provider", "zendesk", "--base-url", "https://a.zendesk.com",
                "--email", "a@a.com", "--token", "t1")  # fmt: skip
    second = run("add_crm_connection", "--provider", "zendesk", "--base-url", "https://b.zendesk.com",
                 "--email", "b@b.com", "--token", "t2", "--rate-limit", "400")  # fmt: skip

    active = CrmConnection.objects.get(is_active=True)
    assert str(active.pk) == second
    assert active.secrets == {"api_token": "t2"}
    assert active.config == {"email": "b@b.com", "rate_limit_per_minute": 400}
    assert CrmConnection.objects.get(pk=first).is_active is False


@pytest.mark.django_db
def test_add_crm_connection_explains_what_is_missing() -> None:
    with pytest.raises(CommandError, match=r"--setting email \(or --email\): API user's email is required"):
        run("add_crm_connection", "--provider", "zendesk", "--base-url", "https://a.zendesk.com", "--token", "t")
    with pytest.raises(CommandError, match="--base-url: Enter a valid URL"):
        run("add_crm_connection", "--provider", "zendesk", "--base-url", "not a url", "--email", "a@a.com",
            "--token", "t")  # fmt: skip


@pytest.mark.django_db
def test_load_demo_prints_the_key_and_the_curl_line() -> None:
    output = run("load_demo", "--sandbox-url", "http://127.0.0.1:8801")

    key = next(line.split()[-1] for line in output.splitlines() if line.strip().startswith("API key:"))
    assert f"Authorization: Api-Key {key}" in output
    assert "docs/examples/ivr_call.json" in output
    assert CrmConnection.objects.get(is_active=True).base_url == "http://127.0.0.1:8801"
    assert [str(team) for team in Queue.objects.get(platform_id="q-billing").teams.all()] == ["Billing support"]
    # Agent status is tried on the sandbox Kustomer: its connection, chosen for the status sync, and its agents.
    sync = StatusSyncSettings.objects.get()
    assert sync.connection is not None
    assert (sync.connection.kind, sync.connection.base_url) == ("kustomer", "http://127.0.0.1:8802")
    assert set(StatusAgent.objects.values_list("email", flat=True)) == {
        "ana@example.com",
        "ben@example.com",
        "carla@example.com",
    }
    assert "/adapter/" in output
    agent_token = next(line.split()[2] for line in output.splitlines() if line.strip().startswith("Agent token:"))
    token = AgentToken.objects.get_from_key(agent_token)
    assert isinstance(token, AgentToken)
    assert token.agent.email == "ana@example.com"
    # Run again: a new key, the old one revoked, still one connection, earlier demo sessions cleared.
    ingest_and_process(EXAMPLE_CALL["events"])
    Session.objects.create(external_id="elsewhere", crm_connection=CrmConnection.objects.create(
        name="prod", kind="zendesk", base_url="https://acme.zendesk.com"))  # fmt: skip
    again = run("load_demo", "--sandbox-url", "http://127.0.0.1:8801")
    assert "cleared" in again
    assert CrmConnection.objects.filter(base_url="http://127.0.0.1:8801").count() == 1
    assert list(Session.objects.values_list("external_id", flat=True)) == ["elsewhere"]
    assert APIKey.objects.filter(revoked=False).count() == 1
    assert AgentToken.objects.filter(revoked=False).count() == 1


def test_sandbox_crm_can_start_with_solved_tickets_for_qa_search() -> None:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sandbox_crm", "zendesk", "--port", "0", "--seed-tickets", "12"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        # The first line is the command that connects to it (sandbox_crm's first line, for every kind).
        connect = process.stdout.readline().strip()
        seeded, listening = process.stdout.readline().strip(), process.stdout.readline().strip()
        base_url = listening.rsplit(" ", 1)[-1]
        exported = requests.get(
            f"{base_url}/api/v2/incremental/tickets/cursor.json",
            params={"start_time": "0"},
            auth=("admin@example.com/token", "sandbox-token"),
            timeout=10,
        ).json()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "add_crm_connection --provider zendesk" in connect
    assert seeded == "seeded 12 solved tickets"
    assert len(exported["tickets"]) == 12
