"""Table tests of the pure rule engine: no database, no clock, no HTTP."""

from datetime import UTC, datetime, timedelta

import pytest

from records.rules import (
    CreateRecord,
    RuleSet,
    SessionEvent,
    SessionState,
    UpdateRecord,
    call_finished_comment,
    decide,
    render_title,
    replay,
    title_template_errors,
)
from records.vocabulary import ActionKind
from tests.support import EXAMPLE_CALL

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CREATED_DATA = EXAMPLE_CALL["events"][0]["data"]


def event(event_id: str, type_: str, seconds: int = 0, **data: object) -> SessionEvent:
    return SessionEvent(event_id=event_id, type=type_, occurred_at=T0 + timedelta(seconds=seconds), data=data)


CREATED = event("a1", "session.created", 0, **CREATED_DATA)
ASSIGNED = event("a2", "session.assigned", 20, agent={"email": "Ana@Example.com"})
CONNECTED = event("a3", "session.connected", 24, agent={"email": "ana@example.com"})
ENDED = event("a4", "session.ended", 360, call_duration=336, hold_time=30, wait_time=24)
RECORDING = event("a5", "recording.ready", 365, url="https://recordings.example.com/c-1.mp3")


def kinds(decisions: list) -> list[list[str]]:
    return [[action.kind for action in decision.actions] for decision in decisions]


@pytest.mark.parametrize(
    ("template", "errors"),
    [
        ("{CALL_TYPE} from {PHONE_NUMBER}", []),
        ("{CALL_ID} {MENU_PATH} {LANGUAGE} {TIMESTAMP}", []),
        ("Call", []),
        ("{CALL_TYPE} {CALLER}", ["Unknown variable(s): CALLER."]),
        ("{call_type}", ["Unknown variable(s): call_type."]),
        ("{CALL_TYPE", ["Malformed template"]),
        ("   ", ["The title template cannot be empty."]),
    ],
)
def test_title_template_errors_names_unknown_variables(template: str, errors: list[str]) -> None:
    found = title_template_errors(template)
    assert len(found) == len(errors)
    for message, expected in zip(found, errors, strict=True):
        assert message.startswith(expected)


@pytest.mark.parametrize(
    ("template", "title"),
    [
        ("{CALL_TYPE} from {PHONE_NUMBER}", "IVR Call from +14155550100"),
        ("{CALL_ID} [{LANGUAGE}] {MENU_PATH}", "c-1 [en] Support > Billing"),
        ("{CALL_TYPE} at {TIMESTAMP}", "IVR Call at 2026-11-20 09:00:00 UTC"),
    ],
)
def test_render_title_fills_variables(template: str, title: str) -> None:
    state = decide(RuleSet(), SessionState(session_id="c-1"), CREATED).state
    assert render_title(template, state) == title


@pytest.mark.parametrize(
    ("events", "rules", "expected"),
    [
        # Default (R3 off): the record is made at assignment, comments follow it.
        (
            [CREATED, ASSIGNED, CONNECTED, ENDED, RECORDING],
            RuleSet(),
            [[], ["ensure_contact", "create_record"], [], ["add_comment", "update_record"], ["add_comment"]],
        ),
        # R3 on: a call's record waits for the connection.
        (
            [CREATED, ASSIGNED, CONNECTED, ENDED],
            RuleSet(create_call_record_on_connect=True),
            [[], [], ["ensure_contact", "create_record"], ["add_comment", "update_record"]],
        ),
        # Assigned arrives before created: creation waits for session.created.
        ([ASSIGNED, CREATED], RuleSet(), [[], ["ensure_contact", "create_record"]]),
        # Ended before the record was planned: the comment waits and follows the creation.
        (
            [CREATED, ENDED, CONNECTED],
            RuleSet(),
            [[], [], ["ensure_contact", "create_record", "add_comment", "update_record"]],
        ),
        # Abandoned before an agent: a record by default (R5), none with R5 off.
        (
            [CREATED, event("a9", "session.abandoned", 30, wait_time=30)],
            RuleSet(),
            [[], ["ensure_contact", "create_record"]],
        ),
        (
            [CREATED, event("a9", "session.abandoned", 30, wait_time=30)],
            RuleSet(abandoned_call_records=False),
            [[], []],
        ),
    ],
)
def test_decide_plans_actions_in_order(events: list[SessionEvent], rules: RuleSet, expected: list[list[str]]) -> None:
    decisions = replay(rules, SessionState(session_id="c-1"), events)
    assert kinds(decisions) == expected


def test_decide_create_record_payload_carries_title_tag_assignee_and_standard_data() -> None:
    decisions = replay(
        RuleSet(add_product_tag=True, product_tag="acme"), SessionState(session_id="c-1"), [CREATED, ASSIGNED]
    )
    create = next(action for action in decisions[1].actions if action.kind == ActionKind.CREATE_RECORD)
    payload = create.payload
    assert isinstance(payload, CreateRecord)
    assert payload.subject == "IVR Call from +14155550100"
    assert payload.session_type_name == "Voice Inbound (IVR)"
    assert payload.tags == ("acme",)
    assert payload.assignee_email == "ana@example.com"
    assert payload.external_id == "c-1"
    assert payload.first_comment.splitlines() == [
        "Call ID: c-1",
        "Session type: IVR Call",
        "Language: en",
        "Menu selection: Support > Billing",
        "Queue: Support > Billing",
        "Phone number: +14155550100",
    ]
    assert create.rule == "S2"
    assert create.event_id == "a2"


def test_decide_without_session_type_tag_leaves_it_out() -> None:
    decisions = replay(RuleSet(tag_session_type=False), SessionState(session_id="c-1"), [CREATED, ASSIGNED])
    create = next(action.payload for action in decisions[1].actions if action.kind == ActionKind.CREATE_RECORD)
    assert isinstance(create, CreateRecord)
    assert create.session_type_name == ""


def test_decide_deferred_comment_keeps_its_own_event() -> None:
    decisions = replay(RuleSet(), SessionState(session_id="c-1"), [CREATED, ENDED, ASSIGNED])
    comment = decisions[2].actions[-2]
    assert comment.event_id == "a4"
    assert comment.key == "comment:a4"
    assert decisions[1].reason == "waits for the session's record"


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ([ASSIGNED], "waiting for session.created before any record is made"),
        ([CREATED], "session recorded; its record is created at assignment"),
        ([CREATED, ASSIGNED, CONNECTED], "record already requested for this session"),
        ([CREATED, event("q", "session.queued", 5, queue={"name": "X"})], "no CRM change for session.queued"),
    ],
)
def test_decide_says_why_nothing_happened(events: list[SessionEvent], reason: str) -> None:
    assert replay(RuleSet(), SessionState(session_id="c-1"), events)[-1].reason == reason


def test_session_state_round_trips_through_json() -> None:
    state = replay(RuleSet(), SessionState(session_id="c-1"), [CREATED, ENDED])[-1].state
    assert state.deferred
    assert SessionState.from_json("c-1", state.to_json()) == state


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (
            {"call_duration": 336, "hold_time": 30, "wait_time": 24},
            ["call_finished", "Call duration: 5m 36s", "Hold time: 30s", "Wait time: 24s"],
        ),
        ({}, ["call_finished", "Call duration: unknown", "Hold time: unknown", "Wait time: unknown"]),
        (
            {"call_duration": 59.6, "hold_time": 0, "wait_time": 600, "ended_by": "agent"},
            ["call_finished", "Call duration: 59s", "Hold time: 0s", "Wait time: 10m 00s", "Ended by: agent"],
        ),
    ],
)
def test_call_finished_comment_formats_durations(data: dict, lines: list[str]) -> None:
    assert call_finished_comment(data).splitlines() == lines
    with_id = call_finished_comment(data, "c-1").splitlines()
    assert with_id == [lines[0], "Call ID: c-1", *lines[1:]]


BEN_ASSIGNED = event("b2", "session.assigned", 40, agent={"email": "ben@example.com"})
BEN_CONNECTED = event("b3", "session.connected", 44, agent={"email": "ben@example.com"})
TRANSFERRED = event("t1", "session.transferred", 100, to_agent={"email": "carla@example.com"})
CARLA_CONNECTED = event("t2", "session.connected", 104, agent={"email": "carla@example.com"})


def update_assignees(decisions: list) -> list[str]:
    """The assignee each planned record update carries ("" for an update that leaves it)."""
    return [
        action.payload.assignee_email
        for decision in decisions
        for action in decision.actions
        if isinstance(action.payload, UpdateRecord)
    ]


@pytest.mark.parametrize(
    ("events", "rules", "assignees"),
    [
        # Answered by the agent it was assigned to: the end-of-call update leaves the assignee.
        ([CREATED, ASSIGNED, CONNECTED, ENDED], RuleSet(), [""]),
        # Assigned to ana, not answered, then assigned to and answered by ben: the end-of-call
        # update (due anyway) reassigns the record to ben; no update of its own.
        ([CREATED, ASSIGNED, BEN_ASSIGNED, BEN_CONNECTED, ENDED], RuleSet(), ["ben@example.com"]),
        # With R3 the record is made at the connection, already with the agent who answered.
        ([CREATED, ASSIGNED, BEN_ASSIGNED, BEN_CONNECTED, ENDED], RuleSet(create_call_record_on_connect=True), [""]),
        # A transfer names its own assignee; the receiving agent's connection changes nothing more.
        ([CREATED, ASSIGNED, CONNECTED, TRANSFERRED, CARLA_CONNECTED, ENDED], RuleSet(), ["carla@example.com", ""]),
        # Answered by ben, then transferred to carla: the transfer's update wins, nothing left pending.
        ([CREATED, ASSIGNED, BEN_CONNECTED, TRANSFERRED, ENDED], RuleSet(), ["carla@example.com", ""]),
    ],
)
def test_the_record_goes_to_the_agent_who_answers(events: list, rules: RuleSet, assignees: list[str]) -> None:
    decisions = replay(rules, SessionState(session_id="c-1"), events)

    assert update_assignees(decisions) == assignees
    [create] = [a.payload for d in decisions for a in d.actions if isinstance(a.payload, CreateRecord)]
    expected_first = "ben@example.com" if rules.create_call_record_on_connect else "ana@example.com"
    assert create.assignee_email == expected_first


def test_a_pending_reassignment_says_so_on_the_connection_and_on_the_update_that_carries_it() -> None:
    decisions = replay(RuleSet(), SessionState(session_id="c-1"), [CREATED, ASSIGNED, BEN_CONNECTED, ENDED])

    assert decisions[2].reason == "answered by ben@example.com: the record's next update reassigns it (S2)"
    [update] = [a for a in decisions[3].actions if a.kind == ActionKind.UPDATE_RECORD]
    assert update.reason.endswith("; reassign to ben@example.com, the agent who answered (S2)")
    assert decisions[3].state.record_assignee == "ben@example.com"
    assert decisions[3].state.reassign_to == ""
