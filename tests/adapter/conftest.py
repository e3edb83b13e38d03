from typing import Any

import pytest

from tests.adapter.support import AdapterProduct
from tests.records.scenario import KustomerView, ZendeskView


@pytest.fixture(params=["zendesk", "kustomer"])
def product(request: pytest.FixtureRequest, live_server: Any, api_key: str) -> AdapterProduct:
    """The product writing to one CRM, with the adapter API over real HTTP."""
    view: ZendeskView | KustomerView
    if request.param == "zendesk":
        connection = request.getfixturevalue("zendesk_connection")
        sandbox = request.getfixturevalue("zendesk_sandbox")
        view = ZendeskView(sandbox, request.getfixturevalue("zendesk_api"))
    else:
        connection = request.getfixturevalue("kustomer_connection")
        sandbox = request.getfixturevalue("kustomer_sandbox")
        view = KustomerView(sandbox, request.getfixturevalue("kustomer_api"))
    return AdapterProduct(url=live_server.url, api_key=api_key, crm=view, sandbox=sandbox, connection=connection)
