"""Kustomer connections are made like Zendesk ones: the command and the admin form, through the registry."""

from io import StringIO

import pytest
from django.core.management import call_command

from integrations.admin import CrmConnectionForm
from integrations.models import CrmConnection
from integrations.providers.kustomer import KustomerProvider
from integrations.services import connection_provider


@pytest.mark.django_db
def test_add_crm_connection_makes_a_kustomer_connection_without_an_email() -> None:
    out = StringIO()
    call_command(
        "add_crm_connection",
        "--provider",
        "kustomer",
        "--base-url",
        "https://acme.api.kustomerapp.com",
        "--token",
        "k-key",
        "--rate-limit",
        "1000",
        stdout=out,
    )

    connection = CrmConnection.objects.get(pk=out.getvalue().strip())
    assert (connection.kind, connection.is_active) == ("kustomer", True)
    assert connection.secrets == {"api_token": "k-key"}
    assert connection.config == {"rate_limit_per_minute": 1000}
    assert isinstance(connection_provider(connection), KustomerProvider)


@pytest.mark.django_db
def test_admin_form_accepts_kustomer_with_a_write_only_token() -> None:
    token = "kustomer-secret-key"
    data = {"name": "Kustomer", "kind": "kustomer", "base_url": "https://acme.api.kustomerapp.com"}
    data["kustomer__api_token"] = token

    form = CrmConnectionForm(data=data)
    assert form.is_valid(), form.errors
    connection = form.save()

    assert connection.secrets == {"api_token": token}
    assert token not in CrmConnectionForm(instance=connection).as_p()
