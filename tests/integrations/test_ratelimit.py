"""The shared request budget: imports only take what is above the live reserve; waiting callers
are woken at their own turn; the CRM's own rate-limit headers hold every worker before a 429."""

import dataclasses
import itertools
import time

import pytest
import redis

from integrations.exceptions import CrmRateLimited
from integrations.providers.base import ConnectionSettings
from integrations.providers.kustomer import kustomer_window_readings
from integrations.providers.zendesk import TICKETS_UPDATE, ZendeskProvider, zendesk_window_readings
from integrations.ratelimit import RedisRateGate, WindowReading, WorkClass, headroom_pause, window_limit
from integrations.sandbox import SandboxServer
from tests.support import TEST_BROKER_URL, sandbox_config, sandbox_stats


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
        (400, WorkClass.RECORD, 0.5, 400),  # record creation is live work: the whole budget
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


def test_callers_refused_together_are_woken_each_at_its_own_turn() -> None:
    client = redis.Redis.from_url(TEST_BROKER_URL)
    gate = RedisRateGate(client)
    key = "https://turns.example.com/"
    gate.open(key)
    try:
        for _ in range(3):
            assert gate.acquire(key, 3) == 0
            time.sleep(0.2)

        waits = [gate.acquire(key, 3) for _ in range(4)]

        # The first waiter when the oldest slot frees, the second at the next one, ...; the fourth
        # when the slot the first waiter takes frees in its turn: two windows after the oldest.
        assert all(wait > 0 for wait in waits)
        assert waits == sorted(waits)
        gaps = [later - earlier for earlier, later in itertools.pairwise(waits)]
        assert all(0.15 <= gap <= 0.3 for gap in gaps[:2]), gaps
        assert 119.0 <= waits[3] <= 120.0
    finally:
        gate.open(key)


@pytest.mark.parametrize(
    ("reading", "pause"),
    [
        (WindowReading(700, 670, 20.0), 0.0),  # plenty left
        (WindowReading(700, 22, 20.0), 0.0),  # 3% of 700 is 21: one more may go
        (WindowReading(700, 21, 20.0), 20.0),  # down to the headroom: hold until the window resets
        (WindowReading(700, 0, 5.0), 5.0),
        (WindowReading(20, 1, 59.0), 59.0),  # a small window keeps at least one request
        (WindowReading(20, 2, 59.0), 0.0),
        (WindowReading(100, 3, None), 3.0 * 60 / 100 / 3 * 1),  # no reset given: the lacking requests' time
        (WindowReading(100, 0, None), 4 * 60 / 100),
        (WindowReading(0, 0, None), 0.0),  # a header that says nothing usable
    ],
)
def test_headroom_pause(reading: WindowReading, pause: float) -> None:
    assert headroom_pause(reading) == pytest.approx(pause)


@pytest.mark.parametrize(
    ("headers", "readings"),
    [
        (
            {"x-rate-limit": "700", "x-rate-limit-remaining": "670"},
            [(None, WindowReading(700, 670, None))],
        ),
        (
            {"ratelimit-limit": "700", "ratelimit-remaining": "697", "ratelimit-reset": "20", "x-rate-limit": "700"},
            [(None, WindowReading(700, 697, 20.0))],
        ),
        (
            {
                "x-rate-limit": "700",
                "x-rate-limit-remaining": "0",
                "zendesk-rate-limit-tickets-update": "total=20; remaining=19; resets=59",
            },
            [(None, WindowReading(700, 0, None)), (TICKETS_UPDATE, WindowReading(20, 19, 59.0))],
        ),
        ({"x-rate-limit": "many"}, []),
        ({}, []),
    ],
)
def test_zendesk_window_readings(headers: dict[str, str], readings: list) -> None:
    assert zendesk_window_readings(headers) == readings


def test_kustomer_window_readings_take_the_reset_as_an_epoch_second() -> None:
    now = 1_790_000_000.0
    headers = {"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "12", "x-ratelimit-reset": str(int(now) + 30)}

    assert kustomer_window_readings(headers, now=now) == [(None, WindowReading(1000, 12, 30.0))]
    assert kustomer_window_readings({"x-ratelimit-remaining": "3"}, now=now) == []


def test_the_crms_own_headers_hold_every_worker_before_it_answers_429(zendesk_sandbox: SandboxServer) -> None:
    # No budget of our own is configured: the CRM's headers alone pace the requests.
    sandbox_config(zendesk_sandbox, rate_limit_per_minute=20)
    gate = RedisRateGate(redis.Redis.from_url(TEST_BROKER_URL))
    settings = ConnectionSettings(
        kind="zendesk",
        base_url=zendesk_sandbox.base_url,
        config={"email": "admin@example.com"},
        secrets={"api_token": "sandbox-token"},
    )
    first, second = ZendeskProvider(settings, rate_gate=gate), ZendeskProvider(settings, rate_gate=gate)
    held = 0
    reasons: set[str] = set()
    try:
        for attempt in range(30):
            try:
                (first if attempt % 2 else second).test_connection()
            except CrmRateLimited as exc:
                reasons.add(str(exc).split(" for ")[0])
                held += 1

        stats = sandbox_stats(zendesk_sandbox)
        # One request of the window is left for the account's other clients, none is answered 429.
        assert stats["total"] == 19
        assert stats["rate_limited"] == 0
        assert held == 11
        assert reasons == {f"rate limited by {zendesk_sandbox.base_url}/"}
    finally:
        gate.open(zendesk_sandbox.base_url + "/")


def test_callers_a_paced_gate_held_come_back_one_request_apart() -> None:
    gate = RedisRateGate(redis.Redis.from_url(TEST_BROKER_URL))
    key = "https://paced.example.com/"
    gate.open(key)
    try:
        assert gate.hold(key) == 0  # open: nobody is held
        # The CRM's window is down to its headroom for 2 s, and frees a request every 0.5 s.
        gate.close_for(key, 2.0, pace=0.5)

        waits = [gate.hold(key) for _ in range(3)]

        assert 1.8 <= waits[0] <= 2.0
        assert [round(later - earlier, 1) for earlier, later in itertools.pairwise(waits)] == [0.5, 0.5]
        # A 429's Retry-After holds everyone until the same instant: the CRM said when.
        gate.open(key)
        gate.close_for(key, 2.0)
        told = [gate.hold(key) for _ in range(3)]
        assert max(told) - min(told) < 0.1
    finally:
        gate.open(key)


def test_record_creation_held_by_the_window_is_given_the_first_turns() -> None:
    gate = RedisRateGate(redis.Redis.from_url(TEST_BROKER_URL))
    key = "https://first-turns.example.com/"
    gate.open(key)
    try:
        for _ in range(3):
            assert gate.acquire(key, 3) == 0
            time.sleep(0.2)
        follow_ups = [gate.acquire(key, 3) for _ in range(3)]

        records = [gate.acquire(key, 3, first=True) for _ in range(2)]
        later = gate.acquire(key, 3)

        # The records' turns count only the records before them: the oldest slots, ahead of the
        # follow-ups already waiting; a follow-up after them queues behind all five.
        assert abs(records[0] - follow_ups[0]) < 0.1
        assert abs(records[1] - follow_ups[1]) < 0.1
        assert records[0] < records[1] < follow_ups[2]
        assert later > 119.0
    finally:
        gate.open(key)


def test_a_free_slot_due_to_waiting_record_creation_is_not_taken_by_other_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from integrations import ratelimit

    monkeypatch.setattr(ratelimit, "WINDOW_MS", 1000)
    client = redis.Redis.from_url(TEST_BROKER_URL)
    gate = RedisRateGate(client)
    key = "https://reserved-slot.example.com/"
    gate.open(key)
    try:
        assert gate.acquire(key, 2) == 0
        time.sleep(0.5)
        assert gate.acquire(key, 2) == 0
        wait = gate.acquire(key, 2, first=True)
        assert 0.3 <= wait <= 0.5

        # when: its slot frees, and a follow-up asks before the record's worker is back
        time.sleep(wait + 0.05)
        follow_up = gate.acquire(key, 2)

        # then: the follow-up waits; the record's worker, back a moment later, takes the slot
        assert follow_up > 0
        assert gate.acquire(key, 2, first=True) == 0
        assert client.zcard(f"crmbridge:rate-first-waiters:{key}") == 0
    finally:
        gate.open(key)


def test_record_creation_held_by_a_closed_gate_goes_before_other_waiters() -> None:
    gate = RedisRateGate(redis.Redis.from_url(TEST_BROKER_URL))
    key = "https://first-held.example.com/"
    gate.open(key)
    try:
        gate.close_for(key, 2.0, pace=0.5)
        follow_ups = [gate.hold(key) for _ in range(3)]

        records = [gate.hold(key, first=True) for _ in range(2)]
        later = gate.hold(key)

        assert [round(wait, 1) for wait in follow_ups] == [2.0, 2.5, 3.0]
        # each record counts only the records before it; a later follow-up all five
        assert [round(wait, 1) for wait in records] == [2.0, 2.5]
        assert round(later, 1) == 4.5
    finally:
        gate.open(key)


def test_an_open_gate_holds_other_work_while_record_creation_whose_turn_came_is_not_back() -> None:
    gate = RedisRateGate(redis.Redis.from_url(TEST_BROKER_URL))
    key = "https://first-back.example.com/"
    gate.open(key)
    try:
        gate.close_for(key, 0.3, pace=0.1)
        turn = gate.hold(key, first=True)
        time.sleep(turn + 0.1)  # the gate is open again, the record's worker not back yet

        assert gate.hold(key) > 0
        assert gate.hold(key, first=True) == 0
        assert gate.hold(key) == 0
    finally:
        gate.open(key)
