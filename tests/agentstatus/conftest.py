"""Fixtures for status sync: platform statuses, a mapping, settings with a webhook secret, agents."""

import json
from typing import Any

import pytest
from django.test import Client

from agentstatus.models import Agent, CrmStatus, PlatformStatus, Priority, StatusSyncSettings, SyncDirection
from agentstatus.selectors import sync_settings_get
from integrations.models import CrmConnection
from records.models import Team
from tests.agentstatus.support import WEBHOOK_PATH, WEBHOOK_SECRET, Deliver, Delivered, signed_headers

# CRM status id -> (name, status type, platform status it maps to or None). Email work and Lunch
# both map to Away: the many-to-one case (A1). Meeting is left unmapped.
MAPPING: dict[str, tuple[str, str, str | None]] = {
    "st-available": ("Available", "available", "Available"),
    "st-busy": ("Busy", "busy", "Busy"),
    "st-email": ("Email work", "unavailable", "Away"),
    "st-lunch": ("Lunch", "unavailable", "Away"),
    "st-meeting": ("Meeting", "unavailable", None),
    "st-offline": ("Offline", "offline", "Offline"),
}


@pytest.fixture
def platform_statuses(db: None) -> dict[str, PlatformStatus]:
    names = ["Available", "Busy", "Away", "Offline"]
    return {name: PlatformStatus.objects.create(name=name, position=i) for i, name in enumerate(names)}


@pytest.fixture
def status_connection(db: None) -> CrmConnection:
    """A Kustomer connection row for the mapping; the tests using it never call the CRM."""
    return CrmConnection.objects.create(name="Kustomer", kind="kustomer", base_url="http://127.0.0.1:9")


@pytest.fixture
def mapping(platform_statuses: dict[str, PlatformStatus], status_connection: CrmConnection) -> dict[str, CrmStatus]:
    return {
        crm_id: CrmStatus.objects.create(
            connection=status_connection,
            crm_id=crm_id,
            name=name,
            status_type=status_type,
            position=position,
            platform_status=platform_statuses[target] if target else None,
        )
        for position, (crm_id, (name, status_type, target)) in enumerate(MAPPING.items())
    }


@pytest.fixture
def sync_settings(mapping: dict[str, CrmStatus], status_connection: CrmConnection) -> StatusSyncSettings:
    settings = sync_settings_get()
    settings.inheritance_enabled = True
    settings.priority = Priority.LATEST_CHANGE_WINS
    settings.direction = SyncDirection.ONE_WAY
    settings.connection = status_connection
    settings.set_webhook_secret(WEBHOOK_SECRET)
    settings.save()
    return settings


@pytest.fixture
def linked_team(db: None) -> Team:
    return Team.objects.create(name="Support", linked_to_external_queue=True)


@pytest.fixture
def ana(sync_settings: StatusSyncSettings, platform_statuses: dict[str, PlatformStatus]) -> Agent:
    return Agent.objects.create(email="ana@example.com", name="Ana", crm_user_id="u-ana")


@pytest.fixture
def deliver(client: Client) -> Deliver:
    """Post one envelope to the webhook, signed as Kustomer signs it unless told otherwise."""

    def post(envelope: dict[str, Any], *, raw: bytes | None = None, headers: dict[str, str] | None = None) -> Delivered:
        body = raw if raw is not None else json.dumps(envelope).encode()
        signed = signed_headers(body) if headers is None else headers
        response = client.post(WEBHOOK_PATH, data=body, content_type="application/json", headers=signed)
        return Delivered(response.status_code, response.json())

    return post
