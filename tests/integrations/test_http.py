"""Narrow unit tests of the HTTP layer's error mapping (one request each, via `responses`)."""

import email.utils

import pytest
import redis
import requests
import responses

from integrations.exceptions import (
    CrmAuthError,
    CrmError,
    CrmNotFound,
    CrmRateLimited,
    CrmRequestError,
    CrmTransientError,
)
from integrations.http import DEFAULT_RETRY_AFTER_SECONDS, CrmHttpClient, parse_retry_after
from integrations.ratelimit import RedisRateGate
from tests.support import TEST_BROKER_URL

BASE = "http://127.0.0.1:9/"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (None, DEFAULT_RETRY_AFTER_SECONDS),
        ("soon", DEFAULT_RETRY_AFTER_SECONDS),
        (email.utils.formatdate(1_000_120, usegmt=True), 120.0),
        (email.utils.formatdate(999_000, usegmt=True), 0.0),
    ],
)
def test_parse_retry_after_reads_seconds_and_dates(header: str | None, seconds: float) -> None:
    assert parse_retry_after(header, now=1_000_000) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, CrmTransientError),
        (502, CrmTransientError),
        (503, CrmTransientError),
        (429, CrmRateLimited),
        (401, CrmAuthError),
        (403, CrmAuthError),
        (404, CrmNotFound),
        (422, CrmRequestError),
        (400, CrmRequestError),
    ],
)
@responses.activate
def test_status_codes_map_to_one_error_each(status: int, error: type[CrmError]) -> None:
    responses.get(f"{BASE}api/thing", status=status, json={"error": "x"}, headers={"Retry-After": "7"})

    with pytest.raises(error) as raised:
        CrmHttpClient(BASE, timeout=1).get("api/thing")

    assert type(raised.value) is error
    if isinstance(raised.value, CrmRateLimited):
        assert raised.value.retry_after == 7


@responses.activate
def test_connection_failure_is_transient() -> None:
    responses.get(f"{BASE}api/thing", body=requests.ConnectionError("refused"))

    with pytest.raises(CrmTransientError, match="ConnectionError"):
        CrmHttpClient(BASE, timeout=1).get("api/thing")


@responses.activate
def test_success_returns_json_and_empty_body_returns_none() -> None:
    responses.get(f"{BASE}api/thing", json={"ok": True})
    responses.post(f"{BASE}api/display", status=200, body="")
    client = CrmHttpClient(BASE, timeout=1)

    assert client.get("api/thing") == {"ok": True}
    assert client.post("api/display") is None
    assert responses.calls[0].request.headers["User-Agent"] == "CRM-Bridge/1.0"


@responses.activate
def test_a_success_that_is_not_json_is_a_request_error() -> None:
    responses.get(f"{BASE}api/thing", status=200, body="<html>Sign in</html>")

    with pytest.raises(CrmRequestError, match="not JSON"):
        CrmHttpClient(BASE, timeout=1).get("api/thing")


@responses.activate
def test_a_read_answered_5xx_is_sent_again_in_place() -> None:
    responses.get(f"{BASE}api/thing", status=503, json={"error": "busy"})
    responses.get(f"{BASE}api/thing", status=200, json={"ok": True})

    assert CrmHttpClient(BASE, timeout=1).get("api/thing") == {"ok": True}

    assert len(responses.calls) == 2


@responses.activate
def test_a_write_answered_5xx_is_sent_once() -> None:
    responses.post(f"{BASE}api/thing", status=500, json={"error": "oops"})
    responses.post(f"{BASE}api/thing", status=200, json={"ok": True})

    with pytest.raises(CrmTransientError):
        CrmHttpClient(BASE, timeout=1).post("api/thing", json={})

    assert len(responses.calls) == 1


@responses.activate
def test_a_search_sent_as_a_post_is_retried_like_a_read() -> None:
    responses.post(f"{BASE}api/search", status=500, json={"error": "oops"})
    responses.post(f"{BASE}api/search", status=200, json={"data": []})

    assert CrmHttpClient(BASE, timeout=1).post_read("api/search", json={}) == {"data": []}

    assert len(responses.calls) == 2


@responses.activate
def test_a_read_told_to_wait_long_is_not_waited_for_in_place() -> None:
    responses.get(f"{BASE}api/thing", status=429, headers={"Retry-After": "30"})

    with pytest.raises(CrmRateLimited):
        CrmHttpClient(BASE, timeout=1).get("api/thing")

    assert len(responses.calls) == 1


@responses.activate
def test_a_retry_our_own_budget_refuses_raises_the_crms_answer() -> None:
    responses.get(f"{BASE}api/thing", status=503, json={"error": "busy"})
    # Our own budget of one request a minute, in the shared Redis window: the first read takes it.
    gate = RedisRateGate(redis.Redis.from_url(TEST_BROKER_URL))
    gate.open(BASE)
    client = CrmHttpClient(BASE, timeout=1, rate_gate=gate, rate_limit_per_minute=1)

    try:
        with pytest.raises(CrmTransientError) as raised:
            client.get("api/thing")
    finally:
        gate.open(BASE)

    assert "503" in str(raised.value)
    assert len(responses.calls) == 1
