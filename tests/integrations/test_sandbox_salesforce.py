"""The sandbox Salesforce speaks Salesforce's shapes: OAuth, SOQL paging, error arrays, the 403 limit."""

from typing import Any

import pytest
import requests

from integrations.sandbox import SandboxServer
from integrations.sandbox.salesforce import QUERY_BATCH_SIZE
from tests.support import sandbox_config

QUERY = "/services/data/v60.0/query"


def token(sandbox: SandboxServer, **form: str) -> requests.Response:
    body = {"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"} | form
    return requests.post(f"{sandbox.base_url}/services/oauth2/token", data=body, timeout=5)


@pytest.fixture
def api(salesforce_sandbox: SandboxServer) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token(salesforce_sandbox).json()['access_token']}"
    return session


def soql(api: requests.Session, sandbox: SandboxServer, query: str) -> requests.Response:
    return api.get(f"{sandbox.base_url}{QUERY}", params={"q": query}, timeout=30)


def test_token_endpoint_answers_the_documented_shape(salesforce_sandbox: SandboxServer) -> None:
    body = token(salesforce_sandbox).json()

    assert {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"} <= set(body)
    assert body["instance_url"] == salesforce_sandbox.base_url


@pytest.mark.parametrize(
    ("form", "error"),
    [({"client_secret": ""}, "invalid_client_id"), ({"grant_type": "magic"}, "unsupported_grant_type"),
     ({"grant_type": "password", "username": "u"}, "invalid_grant")],
)  # fmt: skip
def test_token_endpoint_refuses_bad_credentials_with_400(
    salesforce_sandbox: SandboxServer, form: dict[str, str], error: str
) -> None:
    response = token(salesforce_sandbox, **form)

    assert (response.status_code, response.json()["error"]) == (400, error)


def test_data_calls_without_a_valid_token_get_401_invalid_session(salesforce_sandbox: SandboxServer) -> None:
    response = requests.get(f"{salesforce_sandbox.base_url}{QUERY}", params={"q": "SELECT Id FROM User"}, timeout=5)

    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_soql_pages_with_next_records_url(api: requests.Session, salesforce_sandbox: SandboxServer) -> None:
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/seed", json={"count": QUERY_BATCH_SIZE + 5}, timeout=30)

    first = soql(api, salesforce_sandbox, "SELECT Id, Subject FROM Case ORDER BY SystemModstamp, Id").json()
    second = api.get(f"{salesforce_sandbox.base_url}{first['nextRecordsUrl']}", timeout=30).json()

    assert (first["totalSize"], first["done"], len(first["records"])) == (QUERY_BATCH_SIZE + 5, False, QUERY_BATCH_SIZE)
    assert (second["done"], len(second["records"]), "nextRecordsUrl" in second) == (True, 5, False)
    assert first["records"][0]["attributes"]["type"] == "Case"


def test_soql_parent_fields_and_child_subqueries_nest(api: requests.Session, salesforce_sandbox: SandboxServer) -> None:
    seeded: dict[str, Any] = requests.post(
        f"{salesforce_sandbox.base_url}/__sandbox/seed",
        json={"contacts": [{"FirstName": "Casey", "LastName": "Caller", "Phone": "+15551234567"}]},
        timeout=5,
    ).json()
    contact = seeded["contacts"][0]
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/seed", json={"cases": [
        {"Subject": "A", "ContactId": contact, "CaseComments": [{"CommentBody": "hello"}]}, {"Subject": "B"},
    ]}, timeout=5)  # fmt: skip

    # OR is not in the sandbox's SOQL subset: refused, never misread as something else.
    refused = soql(api, salesforce_sandbox, "SELECT Id FROM Case WHERE Subject = 'A' OR Subject = 'B'")
    assert refused.status_code == 400

    query = "SELECT Id, Contact.Name, (SELECT CommentBody FROM CaseComments) FROM Case ORDER BY Subject"
    body = soql(api, salesforce_sandbox, query).json()
    first, second = body["records"]
    assert first["Contact"]["Name"] == "Casey Caller"
    assert first["CaseComments"]["records"][0]["CommentBody"] == "hello"
    assert (second["Contact"], second["CaseComments"]) == (None, None)


@pytest.mark.parametrize(
    ("query", "code"),
    [("SELECT Nope FROM Case", "INVALID_FIELD"), ("SELECT Id FROM Nothing", "INVALID_TYPE"),
     ("SELEC Id FROM Case", "MALFORMED_QUERY"), ("SELECT Id FROM Case WHERE Subject = 'x", "MALFORMED_QUERY")],
)  # fmt: skip
def test_bad_soql_gets_salesforce_error_arrays(
    api: requests.Session, salesforce_sandbox: SandboxServer, query: str, code: str
) -> None:
    response = soql(api, salesforce_sandbox, query)

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == code


def test_soql_where_compares_datetimes(api: requests.Session, salesforce_sandbox: SandboxServer) -> None:
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/seed", json={"cases": [
        {"Subject": "old", "SystemModstamp": "2026-01-01T00:00:00.000+0000"},
        {"Subject": "new", "SystemModstamp": "2026-06-01T00:00:00.000+0000"},
    ]}, timeout=5)  # fmt: skip

    body = soql(api, salesforce_sandbox, "SELECT Subject FROM Case WHERE SystemModstamp >= 2026-03-01T00:00:00Z").json()

    assert [r["Subject"] for r in body["records"]] == ["new"]


def test_the_request_limit_is_a_403_request_limit_exceeded(
    api: requests.Session, salesforce_sandbox: SandboxServer
) -> None:
    sandbox_config(salesforce_sandbox, rate_limit_per_minute=1)
    soql(api, salesforce_sandbox, "SELECT Id FROM User")

    response = soql(api, salesforce_sandbox, "SELECT Id FROM User")

    assert response.status_code == 403
    assert response.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_seed_is_reproducible_and_validated(salesforce_sandbox: SandboxServer) -> None:
    url = f"{salesforce_sandbox.base_url}/__sandbox/seed"

    assert requests.post(url, json={"count": -1}, timeout=5).status_code == 400
    assert requests.post(url, json={"users": "x"}, timeout=5).status_code == 400
    assert requests.post(url, json={"count": 10, "seed": 3}, timeout=5).status_code == 200
