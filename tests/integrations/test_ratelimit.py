"""The shared request budget's work classes: imports only take what is above the live reserve."""

import dataclasses

import pytest
import redis

from integrations.exceptions import CrmRateLimited
from integrations.providers.base import ConnectionSettings
from integrations.providers.zendesk import ZendeskProvider
from integrations.ratelimit import RedisRateGate, WorkClass, window_limit
from integrations.sandbox import SandboxServer
from tests.support import TEST_BROKER_URL, sandbox_stats


@pytest.mark.parametrize(
    ("per_minute", "work_class", "share", "limit"),
    [
        (400, WorkClass.LIVE, 0.5, 400),  # live work may use the whole budget
        (400, WorkClass.IMPORT, 0.5, 200),  # imports stop at the live reserve
        (400, WorkClass.IMPORT, 0.25, 300),
        (401, WorkClass.IMPORT, 0.5, 200),  # rounded down: the reserve is never shrunk
        (700, WorkClass.IMPORT, 0.0, 700),  # no reserve
        (3, WorkClass.IMPORT, 0.5, 1),
        (1, WorkClass.IMPORT, 0.5, 1),  # at least one a minute, so an import still progresses
        (1, WorkClass.LIVE, 0.9, 1),
    ],
)
def test_window_limit_per_work_class(per_minute: int, work_class: WorkClass, share: float, limit: int) -> None:
    assert window_limit(per_minute, work_class, live_reserved_share=share) == limit


@pytest.mark.parametrize(("per_minute", "share"), [(0, 0.5), (-1, 0.5), (10, 1.0), (10, -0.1)])
def test_window_limit_rejects_what_is_not_a_budget(per_minute: int, share: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        window_limit(per_minute, WorkClass.IMPORT, live_reserved_share=share)


def test_an_import_leaves_the_live_share_of_the_shared_window_free(zendesk_sandbox: SandboxServer) -> None:
    gate = RedisRateGate(redis.Redis.from_url(TEST_BROKER_URL))
    live = ConnectionSettings(
        kind="zendesk",
        base_url=zendesk_sandbox.base_url,
        config={"email": "admin@example.com"},
        secrets={"api_token": "sandbox-token"},
        rate_limit_per_minute=4,
    )
    importer = ZendeskProvider(dataclasses.replace(live, work_class=WorkClass.IMPORT), rate_gate=gate)
    worker = ZendeskProvider(live, rate_gate=gate)
    try:
        importer.test_connection()
        importer.test_connection()
        with pytest.raises(CrmRateLimited, match="own limit of 2 requests/min \\(import work\\)"):
            importer.test_connection()

        # The two slots the import could not take are still there for live work.
        worker.test_connection()
        worker.test_connection()
        with pytest.raises(CrmRateLimited, match="own limit of 4 requests/min"):
            worker.test_connection()
        assert sandbox_stats(zendesk_sandbox)["total"] == 4
    finally:
        gate.open(zendesk_sandbox.base_url + "/")


def test_a_retry_after_under_a_millisecond_still_closes_the_gate_without_an_error() -> None:
    # Redis refuses `SET … PX 0`; a CRM's Retry-After of a fraction of a millisecond once crashed the action.
    client = redis.Redis.from_url(TEST_BROKER_URL)
    gate = RedisRateGate(client)
    key = "https://sub-millisecond.example.com/"
    client.delete(f"crmbridge:rate-gate:{key}")

    gate.close_for(key, 0.0004)

    assert 0 <= client.pttl(f"crmbridge:rate-gate:{key}") <= 1
