"""SSRF through a connection's base URL (issue 15, item 8).

The base URL must be https to a public host; the address actually connected to is checked at
request time (a name that resolves to loopback or metadata is refused); redirects are not
followed; loopback only with CRM_ALLOW_LOOPBACK (the suite turns it on, these tests off); the
CRM's answer is never put raw into an error the admin shows.
"""

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from integrations.exceptions import CrmRequestError
from integrations.http import CrmHttpClient, error_summary
from integrations.services import connection_create, connection_test
from integrations.urlguard import address_problem, base_url_problem, is_web_url


class Canned(ThreadingHTTPServer):
    """A loopback server answering every request with one canned answer, counting the hits."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.extra_headers = status, body, headers or {}
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(self.path)
                self.send_response(server.status)
                for name, value in server.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


@pytest.fixture
def canned() -> Iterator[list[Canned]]:
    servers: list[Canned] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("url", "allow_loopback", "refused"),
    [
        ("https://acme.zendesk.com", False, False),
        ("https://acme.zendesk.com:8443/", False, False),
        ("https://8.8.8.8", False, False),
        ("http://acme.zendesk.com", False, True),
        ("http://acme.zendesk.com", True, True),
        ("ftp://acme.zendesk.com", False, True),
        ("https://", False, True),
        ("https://bot:secret@acme.zendesk.com", False, True),
        ("https://acme.zendesk.com:port", False, True),
        ("https://169.254.169.254/latest/meta-data/", False, True),
        ("https://169.254.169.254/latest/meta-data/", True, True),
        ("https://[fd00:ec2::254]/", True, True),
        ("https://[::ffff:169.254.169.254]/", True, True),
        ("https://100.100.100.200/", True, True),
        ("https://10.0.0.5", True, True),
        ("https://192.168.1.1", True, True),
        ("https://172.16.0.1", True, True),
        ("https://0.0.0.0", True, True),
        ("https://127.0.0.1:8801", False, True),
        ("http://127.0.0.1:8801", False, True),
        ("http://localhost:8801", False, True),
        ("http://[::1]:8801", False, True),
        ("http://127.0.0.1:8801", True, False),
        ("http://localhost:8801", True, False),
        ("https://127.0.0.1:8801", True, False),
    ],
)
def test_base_url_must_be_https_to_a_public_host(url: str, allow_loopback: bool, refused: bool) -> None:
    assert (base_url_problem(url, allow_loopback=allow_loopback) is not None) is refused


@pytest.mark.parametrize(
    ("address", "allow_loopback", "refused"),
    [
        ("93.184.216.34", False, False),
        ("2606:4700::1111", False, False),
        ("169.254.169.254", True, True),
        ("fe80::1", True, True),
        ("::ffff:10.1.2.3", True, True),
        ("64:ff9b::a9fe:a9fe", True, True),
        ("2002:a9fe:a9fe::1", True, True),
        ("64:ff9b::5db8:d822", False, False),
        ("10.1.2.3", True, True),
        ("100.64.0.1", True, True),
        ("224.0.0.1", True, True),
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("127.0.0.1", True, False),
        ("::1", True, False),
    ],
)
def test_connected_address_must_be_public(address: str, allow_loopback: bool, refused: bool) -> None:
    problem = address_problem(ipaddress.ip_address(address), allow_loopback=allow_loopback)
    assert (problem is not None) is refused


@pytest.mark.django_db
def test_a_connection_to_metadata_or_loopback_is_not_saved(settings: Any) -> None:
    settings.CRM_ALLOW_LOOPBACK = False
    for url in ("https://169.254.169.254", "http://127.0.0.1:8801", "http://acme.zendesk.com"):
        with pytest.raises(ValidationError) as raised:
            connection_create(name="x", kind="zendesk", base_url=url, settings={"email": "a@b.co", "api_token": "t"})
        assert "base_url" in raised.value.message_dict
    connection_create(
        name="x", kind="zendesk", base_url="https://acme.zendesk.com", settings={"email": "a@b.co", "api_token": "t"}
    )


def test_a_name_that_resolves_to_loopback_is_refused_at_request_time(
    settings: Any, canned: list[Canned], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Canned(200, b'{"ok": true}')
    canned.append(server)
    port = server.server_address[1]
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        # A public-looking name whose DNS answer points at this machine (or a rebinding attack).
        return real_getaddrinfo("127.0.0.1" if host == "crm.example.com" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    client = CrmHttpClient(f"http://crm.example.com:{port}/", timeout=2)

    settings.CRM_ALLOW_LOOPBACK = False
    with pytest.raises(CrmRequestError, match="loopback"):
        client.get("api/v2/users/me.json")
    assert server.hits == []

    settings.CRM_ALLOW_LOOPBACK = True
    assert client.get("api/v2/users/me.json") == {"ok": True}
    assert server.hits == ["/api/v2/users/me.json"]


def test_redirects_are_not_followed(canned: list[Canned]) -> None:
    target = Canned(200, b'{"credentials": "stolen"}')
    redirector = Canned(302, b"", {"Location": f"{target.url}steal"})
    canned += [target, redirector]

    with pytest.raises(CrmRequestError, match="redirect"):
        CrmHttpClient(redirector.url, timeout=2).get("api/v2/users/me.json")

    assert redirector.hits == ["/api/v2/users/me.json"]
    assert target.hits == []


def test_a_link_from_the_crm_to_another_host_is_refused(canned: list[Canned]) -> None:
    other = Canned(200, b"{}")
    canned.append(other)
    client = CrmHttpClient("http://127.0.0.1:9/", timeout=2)

    with pytest.raises(CrmRequestError, match="another host"):
        client.get(f"{other.url}services/data/v60.0/query/next")
    assert other.hits == []


SECRET = "AKIA-METADATA-SECRET-1234"


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ({"error": "RecordInvalid", "description": "Record validation errors"}, "RecordInvalid"),
        ([{"errorCode": "INVALID_FIELD", "message": "No such column"}], "INVALID_FIELD"),
        ({"errors": [{"status": 400, "title": "Bad Request", "detail": "bad phone"}]}, "bad phone"),
        ({"error": "invalid_grant", "error_description": "authentication failure"}, "authentication failure"),
        (
            {"error": "RecordInvalid", "details": {"requester": [{"description": "Email is invalid"}]}},
            "Email is invalid",
        ),
        (f"<html>{SECRET}</html>", "not shown"),
        ({"AccessKeyId": SECRET, "SecretAccessKey": SECRET}, "not shown"),
        ("", "empty"),
    ],
)
def test_error_summary_keeps_the_crm_error_fields_only(body: Any, shown: str) -> None:
    summary = error_summary(body)
    assert shown in summary
    assert SECRET not in summary
    assert len(error_summary({"error": "x" * 5000})) <= 300


@pytest.mark.django_db
def test_the_crm_answer_is_not_echoed_into_the_admin(canned: list[Canned], admin_client: Any) -> None:
    server = Canned(400, f'{{"AccessKeyId": "{SECRET}", "details": "{SECRET}"}}'.encode())
    canned.append(server)
    connection = connection_create(
        name="Metadata", kind="zendesk", base_url=server.url, settings={"email": "a@b.co", "api_token": "t"}
    )

    error = connection_test(connection=connection)
    page = admin_client.post(
        "/admin/integrations/crmconnection/",
        {"action": "test_connection", "_selected_action": [connection.pk]},
        follow=True,
    )

    assert server.hits
    assert error is not None
    assert "400" in error
    assert SECRET not in error
    connection.refresh_from_db()
    assert SECRET not in connection.last_error
    assert "400" in page.content.decode()
    assert SECRET not in page.content.decode()


@pytest.mark.django_db
def test_a_new_base_url_needs_the_token_again(admin_client: Any) -> None:
    connection = connection_create(
        name="Acme",
        kind="zendesk",
        base_url="https://acme.zendesk.com",
        settings={"email": "bot@acme.com", "api_token": "old-token"},
    )
    form = {"name": "Acme", "kind": "zendesk", "zendesk__email": "bot@acme.com", "rate_limit_per_minute": ""}
    change = f"/admin/integrations/crmconnection/{connection.pk}/change/"

    kept = admin_client.post(change, {**form, "base_url": "https://acme.zendesk.com", "name": "Acme 2"})
    assert kept.status_code == 302
    connection.refresh_from_db()
    assert connection.secrets["api_token"] == "old-token"

    refused = admin_client.post(change, {**form, "base_url": "https://attacker.example.com"})
    assert refused.status_code == 200
    assert "enter the API token for the new URL again" in refused.content.decode()
    connection.refresh_from_db()
    assert connection.base_url == "https://acme.zendesk.com"

    moved = admin_client.post(
        change, {**form, "base_url": "https://acme2.zendesk.com", "zendesk__api_token": "new-token"}
    )
    assert moved.status_code == 302
    connection.refresh_from_db()
    assert (connection.base_url, connection.secrets) == ("https://acme2.zendesk.com", {"api_token": "new-token"})


@pytest.mark.django_db
def test_the_admin_refuses_a_metadata_base_url(admin_client: Any, settings: Any) -> None:
    settings.CRM_ALLOW_LOOPBACK = False
    response = admin_client.post(
        "/admin/integrations/crmconnection/add/",
        {
            "name": "m",
            "kind": "zendesk",
            "base_url": "http://169.254.169.254/latest",
            "zendesk__email": "a@b.co",
            "zendesk__api_token": "t",
        },
    )
    assert response.status_code == 200
    assert "link-local" in response.content.decode()


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("https://acme.zendesk.com/agent/tickets/1", True),
        ("http://acme.zendesk.com/r.mp3", True),
        ("HTTPS://acme.zendesk.com/", True),
        ("javascript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("vbscript:msgbox", False),
        ("/admin/", False),
        ("//evil.example.com/", False),
        ("https://", False),
        ("https://a.example.com/\njavascript:x", False),
        ("", False),
    ],
)
def test_only_http_urls_from_a_crm_become_links(url: str, linked: bool) -> None:
    assert is_web_url(url) is linked


@pytest.mark.django_db
def test_loopback_needs_the_explicit_setting_for_commands_too(settings: Any) -> None:
    settings.CRM_ALLOW_LOOPBACK = False
    with pytest.raises(CommandError, match="CRM_ALLOW_LOOPBACK"):
        call_command("load_demo", "--sandbox-url", "http://127.0.0.1:8801", stdout=StringIO())
    with pytest.raises(CommandError, match="--base-url: Loopback addresses are not allowed"):
        call_command(
            "add_crm_connection", "--provider", "zendesk", "--base-url", "http://127.0.0.1:8801",
            "--email", "a@a.com", "--token", "t", stdout=StringIO(),
        )  # fmt: skip
    with pytest.raises(CommandError, match=r"169\.254\.169\.254 is a link-local address"):
        call_command(
            "add_crm_connection", "--provider", "zendesk", "--base-url", "https://169.254.169.254",
            "--email", "a@a.com", "--token", "t", stdout=StringIO(),
        )  # fmt: skip


@pytest.mark.django_db
def test_a_new_salesforce_url_needs_the_consumer_secret_and_password_again() -> None:
    from integrations.admin import CrmConnectionForm

    login = {"name": "SF", "kind": "salesforce", "salesforce__client_id": "key", "salesforce__username": "api@acme.com"}
    form = CrmConnectionForm(
        data=login
        | {"base_url": "https://acme.my.salesforce.com", "salesforce__client_secret": "s", "salesforce__password": "p"}
    )
    assert form.is_valid(), form.errors
    connection = form.save()

    moved = CrmConnectionForm(data=login | {"base_url": "https://attacker.example.com"}, instance=connection)
    assert not moved.is_valid()
    assert {"salesforce__client_secret", "salesforce__password"} <= set(moved.errors)

    retyped = CrmConnectionForm(
        data=login
        | {
            "base_url": "https://acme2.my.salesforce.com",
            "salesforce__client_secret": "s2",
            "salesforce__password": "p2",
        },
        instance=connection,
    )
    assert retyped.is_valid(), retyped.errors
    retyped.save()
    connection.refresh_from_db()
    assert connection.secrets == {"client_secret": "s2", "password": "p2"}
