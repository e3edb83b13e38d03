"""B1 on the CRM connection's admin screen, in a real browser: an admin turns batching on."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from integrations.models import CrmConnection
from integrations.providers.base import BatchService, BatchSettings, batch_settings

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_turns_batching_on_with_its_services_and_interval(
    page: Any, live_server: Any, zendesk_connection: CrmConnection
) -> None:
    get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-password")
    page.goto(f"{live_server.url}/admin/login/?next=/admin/integrations/crmconnection/{zendesk_connection.pk}/change/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-password")
    page.click("input[type=submit]")

    # given: the screen shows the settings in plain words, off and at their defaults
    section = page.locator("fieldset", has_text="Zendesk API batching")
    assert "Batch comments and record updates" in section.inner_text()
    assert "Send a batch every (seconds)" in section.inner_text()
    toggle = page.locator("#id_zendesk__batching_enabled")
    assert not toggle.is_checked()
    assert page.locator("#id_zendesk__batch_interval_seconds").input_value() == "10"

    # when: the admin turns it on for comments only, every 5 seconds
    toggle.check()
    page.get_by_label("Update record").uncheck()
    page.fill("#id_zendesk__batch_interval_seconds", "5")
    page.click("input[name=_continue]")

    # then
    page.wait_for_selector(".messagelist")
    zendesk_connection.refresh_from_db()
    assert batch_settings(zendesk_connection.config) == BatchSettings(
        enabled=True, services=frozenset({BatchService.ADD_COMMENT}), interval_seconds=5
    )
    assert page.locator("#id_zendesk__batching_enabled").is_checked()


def test_admin_is_told_an_interval_out_of_range(page: Any, live_server: Any, zendesk_connection: CrmConnection) -> None:
    get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-password")
    page.goto(f"{live_server.url}/admin/login/?next=/admin/integrations/crmconnection/{zendesk_connection.pk}/change/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-password")
    page.click("input[type=submit]")

    page.locator("#id_zendesk__batch_interval_seconds").evaluate("el => el.removeAttribute('max')")
    page.fill("#id_zendesk__batch_interval_seconds", "61")
    page.click("input[name=_continue]")

    assert "less than or equal to 60" in page.locator(".errorlist").first.inner_text()
    zendesk_connection.refresh_from_db()
    assert "batch_interval_seconds" not in zendesk_connection.config
