"""The admin in a real browser: an admin signs in and reaches the home page."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_signs_in_and_sees_the_home_page(page: Any, live_server: Any) -> None:
    get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-password")

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-password")
    page.click("input[type=submit]")

    page.wait_for_selector("#content-main")
    assert page.url == f"{live_server.url}/admin/"
    assert page.locator("#user-tools").inner_text().upper().startswith("WELCOME")


def test_a_wrong_password_is_refused_with_a_message(page: Any, live_server: Any) -> None:
    get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-password")

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "not-it")
    page.click("input[type=submit]")

    assert "Please enter the correct username and password" in page.locator(".errornote").inner_text()
