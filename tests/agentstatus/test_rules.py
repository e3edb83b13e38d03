"""The status-sync decisions as tables: no database, no clock, no HTTP."""

from datetime import UTC, datetime, timedelta

import pytest

from agentstatus.rules import (
    CRM_OVERRIDES,
    LATEST_CHANGE_WINS,
    AgentState,
    CrmStatusEvent,
    InstanceTransition,
    MappingLookup,
    Outcome,
    SentPush,
    SyncSettings,
    crm_overrides,
    decide_crm_change,
    decide_platform_change,
    map_crm_status,
    match_echo,
    observe_instances,
    push_target,
    should_push,
    sync_stopped_reason,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
AVAILABLE, BUSY, AWAY = 1, 2, 3
MAPPING = {"st-available": AVAILABLE, "st-email": AWAY, "st-lunch": AWAY, "st-meeting": None}
NAMES = {"st-available": "Available", "st-email": "Email work", "st-lunch": "Lunch", "st-meeting": "Meeting"}
PLATFORM = {AVAILABLE: "Available", BUSY: "Busy", AWAY: "Away"}


@pytest.mark.parametrize(
    ("crm_status", "expected_target", "expected_reason"),
    [
        ("st-available", AVAILABLE, "Available → Available"),
        # Many-to-one: two CRM statuses land on the same platform status.
        ("st-email", AWAY, "Email work → Away"),
        ("st-lunch", AWAY, "Lunch → Away"),
        ("st-meeting", None, "CRM status 'Meeting' is not mapped to a platform status"),
        ("st-new", None, "unknown CRM status 'st-new': refresh the CRM statuses, then map it"),
    ],
)
def test_A1_map_crm_status_many_to_one_and_unmapped(
    crm_status: str, expected_target: int | None, expected_reason: str
) -> None:
    assert map_crm_status(MAPPING, NAMES, crm_status, PLATFORM) == MappingLookup(expected_target, expected_reason)


def event(status: str = "st-lunch", at: datetime = T0, **kwargs: object) -> CrmStatusEvent:
    return CrmStatusEvent(session_id="ws-1", status_id=status, active=True, occurred_at=at, **kwargs)  # type: ignore[arg-type]


ON = SyncSettings(inheritance_enabled=True, priority=LATEST_CHANGE_WINS)
CRM_WINS = SyncSettings(inheritance_enabled=True, priority=CRM_OVERRIDES)
ONE_SESSION = {"ws-1": "st-available"}


@pytest.mark.parametrize(
    ("settings", "agent", "crm_event", "expected", "reason_part"),
    [
        (ON, AgentState(AVAILABLE, work_sessions=ONE_SESSION), event(), Outcome.APPLY, "Lunch → Away"),
        (ON, AgentState(AWAY, work_sessions=ONE_SESSION), event(), Outcome.UNCHANGED, "already"),
        (SyncSettings(False), AgentState(AVAILABLE, work_sessions=ONE_SESSION), event(), Outcome.IGNORE, "off"),
        (ON, AgentState(AVAILABLE), event(signed_in=True), Outcome.IGNORE, "no status is applied at login"),
        (ON, AgentState(AVAILABLE, work_sessions=ONE_SESSION), event("st-meeting"), Outcome.IGNORE, "not mapped"),
        (
            ON,
            AgentState(AVAILABLE, work_sessions={"ws-1": "st-available", "ws-2": "st-available"}),
            event(),
            Outcome.IGNORE,
            "active in 2 CRM instances",
        ),
        # Out of order: older than the CRM change already received, under either priority.
        (
            CRM_WINS,
            AgentState(AVAILABLE, crm_status_at=T0 + timedelta(seconds=5), work_sessions=ONE_SESSION),
            event(),
            Outcome.IGNORE,
            "out of order",
        ),
        # A2 latest change wins: the adapter's change is later than the CRM's.
        (
            ON,
            AgentState(BUSY, platform_changed_at=T0 + timedelta(seconds=1), work_sessions=ONE_SESSION),
            event(),
            Outcome.IGNORE,
            "the latest change wins",
        ),
        # ... and a CRM change after it wins.
        (
            ON,
            AgentState(BUSY, platform_changed_at=T0 - timedelta(seconds=1), work_sessions=ONE_SESSION),
            event(),
            Outcome.APPLY,
            "Lunch → Away",
        ),
        # A2 CRM always overrides: even a CRM change older than the adapter's applies.
        (
            CRM_WINS,
            AgentState(BUSY, platform_changed_at=T0 + timedelta(seconds=1), work_sessions=ONE_SESSION),
            event(),
            Outcome.APPLY,
            "Lunch → Away",
        ),
    ],
)
def test_A2_decide_crm_change(
    settings: SyncSettings, agent: AgentState, crm_event: CrmStatusEvent, expected: Outcome, reason_part: str
) -> None:
    observation = observe_instances(agent.work_sessions, crm_event)
    lookup = map_crm_status(MAPPING, NAMES, crm_event.status_id, PLATFORM)

    decision = decide_crm_change(settings, agent, crm_event, observation, lookup)

    assert decision.outcome is expected
    assert reason_part in decision.reason
    assert decision.applies is (expected is Outcome.APPLY)


def test_A2_a_sign_out_without_a_status_change_is_not_a_status_change() -> None:
    agent = AgentState(AVAILABLE, work_sessions=ONE_SESSION)
    sign_out = CrmStatusEvent("ws-1", "st-available", active=False, occurred_at=T0)

    decision = decide_crm_change(ON, agent, sign_out, observe_instances(ONE_SESSION, sign_out), MappingLookup(1, ""))

    assert decision.outcome is Outcome.IGNORE
    assert decision.reason == "signed out of a CRM instance without a status change"


@pytest.mark.parametrize(
    ("sessions", "crm_event", "after", "active_at_change", "status_changed", "transition"),
    [
        # Sign-in of the first instance: tracked, not a status change.
        ({}, CrmStatusEvent("ws-1", "st-a", True, T0, signed_in=True), {"ws-1": "st-a"}, 1, False, None),
        # A second instance signs in: sync stops (A3).
        (
            {"ws-1": "st-a"},
            CrmStatusEvent("ws-2", "st-a", True, T0, signed_in=True),
            {"ws-1": "st-a", "ws-2": "st-a"},
            2,
            False,
            InstanceTransition.STOPPED,
        ),
        # One of the two signs out: sync resumes.
        (
            {"ws-1": "st-a", "ws-2": "st-a"},
            CrmStatusEvent("ws-2", "st-a", False, T0),
            {"ws-1": "st-a"},
            2,
            False,
            InstanceTransition.RESUMED,
        ),
        # A status change of the tracked instance.
        ({"ws-1": "st-a"}, CrmStatusEvent("ws-1", "st-b", True, T0), {"ws-1": "st-b"}, 1, True, None),
        # The same status again (e.g. another attribute changed): not a status change.
        ({"ws-1": "st-a"}, CrmStatusEvent("ws-1", "st-a", True, T0), {"ws-1": "st-a"}, 1, False, None),
        # An instance never seen signing in (webhook registered later): taken as active.
        ({}, CrmStatusEvent("ws-9", "st-b", True, T0), {"ws-9": "st-b"}, 1, True, None),
        # Switching to an offline status ends the instance: a status change, then gone.
        ({"ws-1": "st-a"}, CrmStatusEvent("ws-1", "st-off", False, T0), {}, 1, True, None),
        # The envelope's `changes` say what changed, whatever was tracked.
        (
            {"ws-1": "st-a"},
            CrmStatusEvent("ws-1", "st-a", True, T0, status_changed_hint=True),
            {"ws-1": "st-a"},
            1,
            True,
            None,
        ),
    ],
)
def test_A3_observe_instances(
    sessions: dict[str, str],
    crm_event: CrmStatusEvent,
    after: dict[str, str],
    active_at_change: int,
    status_changed: bool,
    transition: InstanceTransition | None,
) -> None:
    observation = observe_instances(sessions, crm_event)

    assert observation.sessions_after == after
    assert observation.active_at_change == active_at_change
    assert observation.status_changed is status_changed
    assert observation.transition == transition
    assert observation.stopped_after is (len(after) > 1)


def test_A3_sync_stopped_reason_names_the_instances() -> None:
    assert sync_stopped_reason({"ws-1": "a"}) is None
    assert sync_stopped_reason({"ws-2": "a", "ws-1": "b"}) == (
        "Signed in to Kustomer in 2 places at once (ws-1, ws-2): the sync stops until only one Kustomer tab "
        "or computer remains."
    )


@pytest.mark.parametrize(
    ("pushes", "status", "now", "expected"),
    [
        ([SentPush(7, "st-lunch", T0)], "st-lunch", T0 + timedelta(seconds=1), 7),
        ([SentPush(7, "st-lunch", T0)], "st-busy", T0 + timedelta(seconds=1), None),
        ([SentPush(7, "st-lunch", T0)], "st-lunch", T0 + timedelta(minutes=3), None),
        ([SentPush(9, "st-lunch", T0 + timedelta(seconds=2)), SentPush(8, "st-lunch", T0)], "st-lunch", T0, 8),
        ([], "st-lunch", T0, None),
    ],
)
def test_A4_match_echo(pushes: list[SentPush], status: str, now: datetime, expected: int | None) -> None:
    assert match_echo(pushes, status, now=now) == expected


TWO_WAY = SyncSettings(inheritance_enabled=True, two_way=True)


@pytest.mark.parametrize(
    ("settings", "source", "team_linked", "sync_stopped", "expected", "reason_part"),
    [
        (TWO_WAY, "adapter", True, False, True, "two-way"),
        (TWO_WAY, "admin", True, False, True, "two-way"),
        (TWO_WAY, "crm", True, False, False, "never echoed back"),
        (SyncSettings(True, two_way=False), "adapter", True, False, False, "one-way"),
        (SyncSettings(False, two_way=True), "adapter", True, False, False, "inheritance is off"),
        (TWO_WAY, "adapter", False, False, False, "external queue"),
        (TWO_WAY, "adapter", True, True, False, "several CRM instances"),
    ],
)
def test_A4_should_push(
    settings: SyncSettings, source: str, team_linked: bool, sync_stopped: bool, expected: bool, reason_part: str
) -> None:
    verdict = should_push(settings, source=source, team_linked=team_linked, sync_stopped=sync_stopped)

    assert verdict.push is expected
    assert reason_part in verdict.reason


CRM_ORDER = [("st-available", AVAILABLE), ("st-email", AWAY), ("st-lunch", AWAY), ("st-meeting", None)]


@pytest.mark.parametrize(
    ("target", "current", "expected"),
    [
        (AWAY, "st-available", "st-email"),  # the first mapped, in the CRM's order
        (AWAY, "st-lunch", None),  # already in a CRM status that maps to it
        (AVAILABLE, None, "st-available"),
        (BUSY, "st-available", None),  # nothing maps to Busy
    ],
)
def test_A4_push_target(target: int, current: str | None, expected: str | None) -> None:
    assert push_target(target, CRM_ORDER, current).crm_status_id == expected


def test_A5_platform_changes_always_apply_and_crm_overrides_says_who_wins_next() -> None:
    assert decide_platform_change(AgentState(AVAILABLE), AWAY).outcome is Outcome.APPLY
    assert decide_platform_change(AgentState(AWAY), AWAY).outcome is Outcome.UNCHANGED
    assert crm_overrides(CRM_WINS, sync_stopped=False) is True
    assert crm_overrides(CRM_WINS, sync_stopped=True) is False
    assert crm_overrides(ON, sync_stopped=False) is False
    assert crm_overrides(SyncSettings(False, priority=CRM_OVERRIDES), sync_stopped=False) is False
