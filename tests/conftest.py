"""Suite-wide fixtures: the network fence, the sandbox CRMs, a real Celery worker, API clients.

Tests talk to real PostgreSQL and Redis, and to the sandbox CRMs over loopback HTTP. The Celery
broker is a Redis database and queue of the suite's own, so a `make run` worker on the same
machine never takes the suite's tasks.
"""

import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from config.celery import app as celery_app
from integrations.agents import KEY_PREFIX as AGENT_ID_KEY_PREFIX
from integrations.circuit import KEY_PREFIX as CIRCUIT_KEY_PREFIX
from integrations.circuit import CircuitBreaker
from integrations.models import CrmConnection
from integrations.ratelimit import (
    FIRST_WAITERS_KEY_PREFIX,
    GATE_FIRST_WAITERS_KEY_PREFIX,
    GATE_PACE_KEY_PREFIX,
    GATE_WAITERS_KEY_PREFIX,
    KEY_PREFIX,
    USAGE_KEY_PREFIX,
    WAITERS_KEY_PREFIX,
    WINDOW_KEY_PREFIX,
)
from integrations.sandbox import SandboxServer, start_sandbox
from integrations.services import FIELD_IDS_KEY_PREFIX, circuit_breaker, connection_create
from tests.support import ROOT, TEST_BROKER_URL

TEST_QUEUE = f"crmbridge-test-{os.getpid()}"

# Live work goes to the default queue; the maintenance routes (sweeps, purges) go to the suite's
# queue too, so the suite's worker runs them and nothing lands on a `make run` worker's queue.
celery_app.conf.update(
    broker_url=TEST_BROKER_URL,
    task_default_queue=TEST_QUEUE,
    task_routes={
        name: {**route, "queue": TEST_QUEUE} if route["queue"] == settings.MAINTENANCE_QUEUE else route
        for name, route in settings.CELERY_TASK_ROUTES.items()
    },
)
settings.REDIS_URL = TEST_BROKER_URL
# The sandbox CRMs listen on loopback, which a CRM connection may reach only with this on; the
# tests of the guard itself turn it off again.
settings.CRM_ALLOW_LOOPBACK = True
os.environ["CRM_ALLOW_LOOPBACK"] = "true"


# -- The network beyond loopback is blocked suite-wide (Zulip's block_internet). ------------------

_real_connect = socket.socket.connect


def _loopback_only_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            is_loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_loopback = host == "localhost"
        if not is_loopback:
            raise ConnectionRefusedError(f"tests may only reach loopback, not {host}")
    return _real_connect(self, address)


@pytest.fixture(scope="session", autouse=True)
def _block_internet() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _loopback_only_connect)
        yield


@pytest.fixture
def circuit_at_one_failure(settings: Any) -> Iterator[CircuitBreaker]:
    """The shared circuit breaker, opening at a connection's first failure for a 30 s pause; every
    circuit closed again after the test."""
    settings.CRM_CIRCUIT_FAILURES = 1
    settings.CRM_CIRCUIT_COOL_DOWN_SECONDS = 30.0
    settings.CRM_CIRCUIT_MIN_RUN_SECONDS = 0
    circuit_breaker.cache_clear()
    breaker = circuit_breaker()
    yield breaker
    for key in breaker.client.scan_iter(f"{CIRCUIT_KEY_PREFIX}*"):
        breaker.client.delete(key)
    circuit_breaker.cache_clear()


# -- Sandbox CRMs --------------------------------------------------------------------------------


def _fresh(server: SandboxServer) -> SandboxServer:
    """The sandbox back at its fixture, and no rate-limit window, 429 gate or request count left from another test."""
    server.reset()
    client = redis.Redis.from_url(TEST_BROKER_URL)
    prefixes = (
        KEY_PREFIX,
        WINDOW_KEY_PREFIX,
        WAITERS_KEY_PREFIX,
        FIRST_WAITERS_KEY_PREFIX,
        GATE_WAITERS_KEY_PREFIX,
        GATE_FIRST_WAITERS_KEY_PREFIX,
        GATE_PACE_KEY_PREFIX,
        USAGE_KEY_PREFIX,
        CIRCUIT_KEY_PREFIX,
        AGENT_ID_KEY_PREFIX,
        FIELD_IDS_KEY_PREFIX,
    )
    for prefix in prefixes:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    return server


@pytest.fixture(scope="session")
def zendesk_sandbox_server() -> Iterator[SandboxServer]:
    server = start_sandbox("zendesk", fixture=ROOT / "integrations" / "sandbox" / "fixtures" / "zendesk_demo.json")
    yield server
    server.stop()


@pytest.fixture
def zendesk_sandbox(zendesk_sandbox_server: SandboxServer) -> SandboxServer:
    """The sandbox Zendesk, reset to its demo fixture (agents ana, ben, carla) for each test."""
    return _fresh(zendesk_sandbox_server)


@pytest.fixture
def zendesk_api(zendesk_sandbox: SandboxServer) -> requests.Session:
    """A client reading the sandbox through Zendesk's own API, as an integration engineer would."""
    session = requests.Session()
    session.auth = ("admin@example.com/token", "sandbox-token")
    return session


@pytest.fixture
def zendesk_connection(db: None, zendesk_sandbox: SandboxServer) -> CrmConnection:
    return connection_create(
        name="Sandbox Zendesk",
        kind="zendesk",
        base_url=zendesk_sandbox.base_url,
        settings={"email": "admin@example.com", "api_token": "sandbox-token"},
        activate=True,
    )


@pytest.fixture(scope="session")
def kustomer_sandbox_server() -> Iterator[SandboxServer]:
    server = start_sandbox("kustomer", fixture=ROOT / "integrations" / "sandbox" / "fixtures" / "kustomer_demo.json")
    yield server
    server.stop()


@pytest.fixture
def kustomer_sandbox(kustomer_sandbox_server: SandboxServer) -> SandboxServer:
    """The sandbox Kustomer, reset to its demo fixture (agents ana, ben, carla; routing statuses) for each test."""
    return _fresh(kustomer_sandbox_server)


@pytest.fixture
def kustomer_api(kustomer_sandbox: SandboxServer) -> requests.Session:
    """A client reading the sandbox through Kustomer's own API (the fixture's API key)."""
    session = requests.Session()
    session.headers["Authorization"] = "Bearer sandbox-api-key"
    return session


@pytest.fixture
def kustomer_connection(db: None, kustomer_sandbox: SandboxServer) -> CrmConnection:
    return connection_create(
        name="Sandbox Kustomer",
        kind="kustomer",
        base_url=kustomer_sandbox.base_url,
        settings={"api_token": "sandbox-api-key"},
        activate=True,
    )


@pytest.fixture(scope="session")
def salesforce_sandbox_server() -> Iterator[SandboxServer]:
    server = start_sandbox("salesforce")
    yield server
    server.stop()


@pytest.fixture
def salesforce_sandbox(salesforce_sandbox_server: SandboxServer) -> SandboxServer:
    """The sandbox Salesforce, empty, for each test."""
    salesforce_sandbox_server.reset()
    return salesforce_sandbox_server


@pytest.fixture
def salesforce_connection(db: None, salesforce_sandbox: SandboxServer) -> CrmConnection:
    """A Salesforce connection (client-credentials flow) beside the active Zendesk one."""
    return connection_create(
        name="Sandbox Salesforce",
        kind="salesforce",
        base_url=salesforce_sandbox.base_url,
        settings={"client_id": "sandbox-client", "client_secret": "sandbox-secret"},
        activate=False,
    )


@pytest.fixture(scope="session")
def freshdesk_sandbox_server() -> Iterator[SandboxServer]:
    server = start_sandbox("freshdesk", fixture=ROOT / "integrations" / "sandbox" / "fixtures" / "freshdesk_demo.json")
    yield server
    server.stop()


@pytest.fixture
def freshdesk_sandbox(freshdesk_sandbox_server: SandboxServer) -> SandboxServer:
    """The sandbox Freshdesk, reset to its demo fixture (agents ana, ben, carla; API key sandbox-api-key)."""
    return _fresh(freshdesk_sandbox_server)


@pytest.fixture
def freshdesk_api(freshdesk_sandbox: SandboxServer) -> requests.Session:
    """A client reading the sandbox through Freshdesk's own API (the fixture's API key)."""
    session = requests.Session()
    session.auth = ("sandbox-api-key", "X")
    return session


@pytest.fixture
def freshdesk_connection(db: None, freshdesk_sandbox: SandboxServer) -> CrmConnection:
    return connection_create(
        name="Sandbox Freshdesk",
        kind="freshdesk",
        base_url=freshdesk_sandbox.base_url,
        settings={"api_token": "sandbox-api-key"},
        activate=True,
    )


# -- A real Celery worker ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, django_db_blocker: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A `celery worker` process on the suite's queue and the test database."""
    broker = redis.Redis.from_url(TEST_BROKER_URL)
    broker.delete(TEST_QUEUE)
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
        ),
        "CELERY_BROKER_URL": TEST_BROKER_URL,
        "REDIS_URL": TEST_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": TEST_QUEUE,
        "CELERY_MAINTENANCE_QUEUE": TEST_QUEUE,
        "CRM_RETRY_BACKOFF_SECONDS": "0.05",
        "CRM_RETRY_BACKOFF_MAX_SECONDS": "0.5",
        # The worker's tests of outages want actions to fail within a connection's short budget;
        # the circuit breaker is tested in-process with its own threshold (tests/records/test_circuit.py).
        "CRM_CIRCUIT_FAILURES": "1000000",
        "CRM_HTTP_TIMEOUT_SECONDS": "5",
        # The sandbox Salesforce's injected request-limit answers are waited out in a second.
        "CRM_LIMIT_EXCEEDED_RETRY_SECONDS": "1",
        "DATABASE_CONN_MAX_AGE": "0",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            TEST_QUEUE,
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        _wait_for_worker(process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        broker.delete(TEST_QUEUE)


def _wait_for_worker(process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited with {process.returncode}")
        replies = celery_app.control.ping(timeout=0.5)
        if replies:
            return
    raise RuntimeError("celery worker did not answer a ping within 30 s")


# -- API clients ---------------------------------------------------------------------------------


@pytest.fixture
def api_key(db: None) -> str:
    _, key = APIKey.objects.create_key(name="test platform")
    return key


@pytest.fixture
def platform_client(api_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    return client


# -- A real browser --------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out, and this machine refuses it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (`make test` installs it when missing)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on the test's thread; the test's own ORM calls are
    # still synchronous, so Django's async guard would refuse them for no reason.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page per test (no cookies carried over)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # Generous: the pages wait on a worker and a sandbox CRM that share two cores with the suite.
    context.set_default_timeout(30_000)
    opened = context.new_page()
    yield opened
    context.close()
