"""The admin screens an operator uses to answer "what happened to this call?"."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from integrations.models import CrmConnection
from integrations.providers.registry import PROVIDERS
from records.models import CrmAction, Session
from tests.support import EXAMPLE_CALL, ingest_and_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(db: None) -> Client:
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def processed_session(zendesk_connection: CrmConnection) -> Session:
    return ingest_and_process(EXAMPLE_CALL["events"])


def test_session_page_shows_its_events_and_the_actions_they_caused(
    admin_client: Client, processed_session: Session
) -> None:
    response = admin_client.get(f"/admin/records/session/{processed_session.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    for text in ("session.created", "session.ended", "recording.ready", "Find or create record", "S2", "S8"):
        assert text in html
    assert "the call was assigned to an agent: append to a matching open record or create one" in html
    assert "session.assigned (a2)" in html


def test_action_list_and_retry_action(admin_client: Client, processed_session: Session) -> None:
    action = processed_session.actions.get(kind="create_record")
    CrmAction.objects.filter(pk=action.pk).update(status=CrmAction.Status.FAILED, last_error="boom")

    listing = admin_client.get("/admin/records/crmaction/?status=failed")
    response = admin_client.post(
        "/admin/records/crmaction/", {"action": "retry", "_selected_action": [action.pk]}, follow=True
    )

    assert "boom" in listing.content.decode()
    assert "1 action(s) queued to run again." in response.content.decode()
    action.refresh_from_db()
    assert action.status == CrmAction.Status.PENDING


def test_connection_page_never_shows_the_token(admin_client: Client, zendesk_connection: CrmConnection) -> None:
    response = admin_client.get(f"/admin/integrations/crmconnection/{zendesk_connection.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "sandbox-token" not in html
    assert zendesk_connection.encrypted_secrets not in html
    assert "admin@example.com" in html


def test_connection_admin_sets_and_clears_the_connections_own_retry_budget(
    admin_client: Client, zendesk_connection: CrmConnection
) -> None:
    url = f"/admin/integrations/crmconnection/{zendesk_connection.pk}/change/"
    form = {
        "name": zendesk_connection.name,
        "kind": "zendesk",
        "base_url": zendesk_connection.base_url,
        "zendesk__email": "admin@example.com",
    }

    page = admin_client.get(url).content.decode()
    assert "Retry budget (hours)" in page
    assert "CRM_RETRY_BUDGET_SECONDS, one day" in page

    assert admin_client.post(url, {**form, "retry_budget_hours": "2"}).status_code == 302
    zendesk_connection.refresh_from_db()
    assert zendesk_connection.config["retry_budget_seconds"] == 7200
    assert 'name="retry_budget_hours" value="2.0"' in admin_client.get(url).content.decode()

    refused = admin_client.post(url, {**form, "retry_budget_hours": "-1"})
    assert refused.status_code == 200
    assert "retry_budget_hours" in refused.content.decode()

    assert admin_client.post(url, {**form, "retry_budget_hours": ""}).status_code == 302
    zendesk_connection.refresh_from_db()
    assert "retry_budget_seconds" not in zendesk_connection.config


def test_connection_admin_add_encrypts_the_token_and_activates(
    admin_client: Client, zendesk_connection: CrmConnection
) -> None:
    response = admin_client.post(
        "/admin/integrations/crmconnection/add/",
        {
            "name": "Second",
            "kind": "zendesk",
            "base_url": "https://acme.zendesk.com",
            "make_active": "on",
            "zendesk__email": "bot@acme.com",
            "zendesk__api_token": "s3cret-token",
            "rate_limit_per_minute": "400",
        },
    )

    assert response.status_code == 302
    second = CrmConnection.objects.get(name="Second")
    # The batching settings (B1) as this form posted them: off, no service ticked, the default interval.
    batching = {"batching_enabled": False, "batched_services": [], "batch_interval_seconds": 10}
    assert second.config == {"email": "bot@acme.com", "rate_limit_per_minute": 400, **batching}
    assert second.is_active
    assert second.secrets == {"api_token": "s3cret-token"}
    assert "s3cret" not in second.encrypted_secrets
    zendesk_connection.refresh_from_db()
    assert not zendesk_connection.is_active


def test_connection_admin_requires_a_token_for_a_new_connection(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/integrations/crmconnection/add/",
        {"name": "x", "kind": "zendesk", "base_url": "https://x.zendesk.com", "zendesk__email": "a@b.c"},
    )

    assert response.status_code == 200
    assert "API token is required for Zendesk." in response.content.decode()
    assert not CrmConnection.objects.filter(name="x").exists()


@pytest.fixture
def freshdesk_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CRM kind without a provider (all four have one now): Freshdesk, taken out of the registry."""
    monkeypatch.delitem(PROVIDERS, "freshdesk")


@pytest.mark.usefixtures("freshdesk_unsupported")
def test_connection_admin_refuses_a_crm_without_a_provider(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/integrations/crmconnection/add/",
        {"name": "f", "kind": "freshdesk", "base_url": "https://acme.freshdesk.com", "freshdesk__api_token": "t"},
    )

    # Only the CRMs a provider serves are offered; a posted other kind is refused on its field.
    html = response.content.decode()
    assert response.status_code == 200
    assert "Select a valid choice. freshdesk is not one of the available choices." in html
    assert '<option value="freshdesk"' not in html
    assert not CrmConnection.objects.filter(kind="freshdesk").exists()


@pytest.mark.usefixtures("freshdesk_unsupported")
def test_connection_admin_names_an_unsupported_kind_kept_by_an_existing_connection(admin_client: Client) -> None:
    connection = CrmConnection.objects.create(name="f", kind="freshdesk", base_url="https://acme.freshdesk.com")

    response = admin_client.post(
        f"/admin/integrations/crmconnection/{connection.pk}/change/",
        {"name": "f", "kind": "freshdesk", "base_url": "https://acme.freshdesk.com", "freshdesk__api_token": "t"},
    )

    assert "Freshdesk is not supported yet; supported: Kustomer, Salesforce, Zendesk." in response.content.decode()
