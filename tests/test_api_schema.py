"""The OpenAPI schema documents every endpoint and its auth; Swagger UI is served without a CDN."""

import pytest
from django.test import Client


@pytest.mark.django_db
def test_schema_documents_the_event_api_and_its_key() -> None:
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert set(schema["paths"]) == {
        "/api/v1/events",
        "/api/v1/ping",
        "/api/v1/adapter/status",
        "/api/v1/agentstatus/webhooks/kustomer",
        "/api/v1/tickets/search",
        "/api/v1/tickets/{ticket_id}",
        "/api/v1/tickets/{ticket_id}/evaluations",
    }
    operation = schema["paths"]["/api/v1/events"]["post"]
    assert operation["security"] == [{"PlatformApiKey": []}]
    assert set(operation["responses"]) == {"202", "400", "401", "413"}
    assert schema["components"]["securitySchemes"]["PlatformApiKey"]["in"] == "header"


@pytest.mark.django_db
def test_schema_documents_the_adapter_status_api_and_the_status_webhook() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    adapter = schema["paths"]["/api/v1/adapter/status"]
    assert set(adapter) == {"get", "put"}
    assert adapter["put"]["security"] == [{"AgentToken": []}]
    assert set(adapter["put"]["responses"]) == {"200", "400", "401"}
    assert schema["components"]["securitySchemes"]["AgentToken"]["in"] == "header"
    webhook = schema["paths"]["/api/v1/agentstatus/webhooks/kustomer"]["post"]
    assert set(webhook["responses"]) == {"200", "202", "400", "401", "403"}


@pytest.mark.django_db
def test_swagger_ui_is_served_from_local_static_files() -> None:
    response = Client().get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr" not in html


@pytest.mark.django_db
def test_schema_documents_the_qa_search_parameters_and_auth() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    operation = schema["paths"]["/api/v1/tickets/search"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"q", "crm", "channel", "status", "agent", "requester", "requester_phone", "tags", "cursor"} <= names
    assert {"200", "400", "401", "403"} <= set(operation["responses"])
    assert {"QaToken", "cookieAuth"} <= {key for item in operation["security"] for key in item}
