"""Table tests of the pure choices: which record a session lands on, and when records are made."""

from datetime import UTC, datetime, timedelta

import pytest

from integrations.providers.base import Contact
from records.rules import (
    AbandonedChats,
    ApiResponseFormat,
    Candidate,
    CreateRecord,
    RecordMode,
    RecordRequest,
    RuleSet,
    SessionEvent,
    SessionState,
    api_response_comment,
    choose_contact,
    choose_record,
    replay,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SAME = {"queue_id": "q-1", "leaf_queue": "Support > Billing", "menu_path": "Support > Billing", "channel": "voice"}


def candidate(
    record_id: str, status: str = "open", days_ago: float = 0, closed_days_ago: float | None = None, **kwargs: object
) -> Candidate:
    """A record updated `days_ago`; a record not open was closed then too, unless `closed_days_ago` says."""
    is_open = status in ("new", "open", "pending", "hold")
    closed = None if is_open else days_ago if closed_days_ago is None else closed_days_ago
    values: dict = {
        "record_id": record_id,
        "status": status,
        "is_open": is_open,
        "can_reopen": status != "closed",
        "updated_at": NOW - timedelta(days=days_ago),
        "closed_at": None if closed is None else NOW - timedelta(days=closed),
        **SAME,
    }
    values.update(kwargs)
    return Candidate(**values)


def inbound(**kwargs: object) -> RecordRequest:
    values: dict = {"mode": RecordMode.INBOUND, **SAME, "session_type": "voice_inbound_ivr"}
    values.pop("leaf_queue")
    values["leaf_queue"] = SAME["leaf_queue"]
    values.update(kwargs)
    return RecordRequest(**values)


@pytest.mark.parametrize(
    ("request_", "candidates", "record_id", "reopen", "reason"),
    [
        # R1/S6: the newest open record with the same queue, menu and channel.
        (
            inbound(),
            [candidate("1", days_ago=2), candidate("2", days_ago=1)],
            "2",
            False,
            "appended to record 2 (open)",
        ),
        (inbound(), [candidate("1", channel="chat")], None, False, "new record: no open record"),
        (inbound(), [candidate("1", queue_id="q-2")], None, False, "new record: no open record"),
        (inbound(), [candidate("1", menu_path="Sales")], None, False, "new record: no open record"),
        (inbound(), [candidate("1", status="solved", days_ago=1)], None, False, "new record: no open record"),
        (inbound(append_to_open_records=False), [candidate("1")], None, False, "appending to open records is off (R1)"),
        # R2: closed within N days is reopened; older, or immutable, is not.
        (inbound(append_to_recently_closed=True), [candidate("1", "solved", 2)], "1", True, "closed within 3 days"),
        (inbound(append_to_recently_closed=True), [candidate("1", "solved", 4)], None, False, "new record"),
        (inbound(append_to_recently_closed=True), [candidate("1", "closed", 1)], None, False, "new record"),
        # R2 counts from the close, not the last update: solved 9 days ago, tagged by an automation 3 days ago.
        (
            inbound(append_to_recently_closed=True, closed_within_days=5),
            [candidate("1", "solved", days_ago=3, closed_days_ago=9)],
            None,
            False,
            "no record closed within 5 days can be reopened (R2): the latest, record 1, was closed 2026-11-11",
        ),
        # Solved 2 days ago, touched since: still within 3 days, and the reason says when it was closed.
        (
            inbound(append_to_recently_closed=True),
            [candidate("1", "solved", days_ago=0.1, closed_days_ago=2)],
            "1",
            True,
            "closed within 3 days (closed 2026-11-18 12:00 UTC), and reopened",
        ),
        # The most recently closed of several, whatever was updated last.
        (
            inbound(append_to_recently_closed=True),
            [candidate("1", "solved", days_ago=0.5, closed_days_ago=2.5), candidate("2", "solved", 1, 1)],
            "2",
            True,
            "appended to record 2 (solved)",
        ),
        # A record the CRM gives no close time for (Kustomer's snoozed) is not "closed within N days".
        (
            inbound(append_to_recently_closed=True),
            [candidate("1", "snoozed", is_open=False, closed_at=None)],
            None,
            False,
            "new record: no open record",
        ),
        # R9 overrides R1 and S3.
        (inbound(never_append=True), [candidate("1")], None, False, "appending to existing records is off (R9)"),
        (RecordRequest(mode=RecordMode.OUTBOUND, never_append=True), [candidate("1")], None, False, "(R9)"),
        # S3: the latest record, whatever its queue, if open (and set open).
        (RecordRequest(mode=RecordMode.OUTBOUND), [candidate("1", queue_id="x")], "1", True, "appended to the latest"),
        (
            RecordRequest(mode=RecordMode.OUTBOUND),
            [candidate("1", days_ago=3), candidate("2", "solved", 1)],
            None,
            False,
            "the latest record 2 (solved) is not open (S3)",
        ),
        (RecordRequest(mode=RecordMode.OUTBOUND), [], None, False, "the contact has no record (S3)"),
        (RecordRequest(mode=RecordMode.OUTBOUND, outbound_record_id="1"), [candidate("1")], "1", True, "(O1)"),
        (
            RecordRequest(mode=RecordMode.OUTBOUND, outbound_record_id="1"),
            [candidate("1", "solved")],
            None,
            False,
            "is not open",
        ),
        # S4: voicemail always new; an IVR call reuses an open voicemail record.
        (
            RecordRequest(mode=RecordMode.VOICEMAIL),
            [candidate("1")],
            None,
            False,
            "new voicemail record even with 1 open",
        ),
        (inbound(queue_id="q-9"), [candidate("1", voicemail=True)], "1", False, "appended to voicemail record 1"),
        (
            inbound(queue_id="q-9", session_type="voice_inbound_app"),
            [candidate("1", voicemail=True)],
            None,
            False,
            "new",
        ),
        # S7: the original record when open; the button only after a call under 10 s.
        (
            RecordRequest(mode=RecordMode.CALLBACK, callback_kind="hangup_and_callback", original_record_id="1"),
            [candidate("1", queue_id="other")],
            "1",
            False,
            "(S7)",
        ),
        (
            RecordRequest(
                mode=RecordMode.CALLBACK,
                callback_kind="callback_button",
                original_record_id="1",
                original_call_seconds=6,
            ),
            [candidate("1")],
            "1",
            False,
            "a call under 10 s (S7)",
        ),
        (
            RecordRequest(
                mode=RecordMode.CALLBACK,
                callback_kind="callback_button",
                original_record_id="1",
                original_call_seconds=60,
            ),
            [candidate("1", "solved")],
            None,
            False,
            "call back after a call of 10 s or more: new record",
        ),
        (
            RecordRequest(mode=RecordMode.CALLBACK, callback_kind="hangup_and_callback", original_record_id="1"),
            [candidate("1", "solved")],
            None,
            False,
            "the original call's record is not open (S7)",
        ),
        (RecordRequest(mode=RecordMode.NEW), [candidate("1")], None, False, "new record"),
    ],
)
def test_choose_record(
    request_: RecordRequest, candidates: list[Candidate], record_id: str | None, reopen: bool, reason: str
) -> None:
    choice = choose_record(request_, candidates, NOW)
    assert (choice.record_id, choice.reopen) == (record_id, reopen)
    assert reason in choice.reason


T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def ev(type_: str, second: int, **data: object) -> SessionEvent:
    return SessionEvent(event_id=f"e{second}", type=type_, occurred_at=T0 + timedelta(seconds=second), data=data)


def chat(*events: SessionEvent) -> list[SessionEvent]:
    created = ev(
        "session.created", 0, channel="chat", session_type="chat_inbound_web", queue={"id": "q", "path": ["A"]}
    )
    return [created, *events]


def call(*events: SessionEvent) -> list[SessionEvent]:
    created = ev("session.created", 0, channel="voice", session_type="voice_inbound_ivr", phone_number="+14155550100")
    return [created, *events]


def consumer(second: int) -> SessionEvent:
    return ev("message.received", second, sender="consumer", text="hi")


ASSIGNED = ev("session.assigned", 5, agent={"email": "a@example.com"})
CONNECTED = ev("session.connected", 6, agent={"email": "a@example.com"})


def created_by(rules: RuleSet, events: list[SessionEvent]) -> tuple[str, str] | None:
    """(rule, mode) of the creation the events lead to, or None."""
    for decision in replay(rules, SessionState(session_id="s"), events):
        for action in decision.actions:
            if isinstance(action.payload, CreateRecord):
                return action.rule, action.payload.mode
    return None


@pytest.mark.parametrize(
    ("rules", "events", "expected"),
    [
        (RuleSet(), chat(ASSIGNED), ("S1", "inbound")),
        (RuleSet(delay_chat_until_messages=True, chat_min_messages=2), chat(ASSIGNED, consumer(7)), None),
        (
            RuleSet(delay_chat_until_messages=True, chat_min_messages=2),
            chat(ASSIGNED, consumer(7), consumer(8)),
            ("R4", "inbound"),
        ),
        (RuleSet(delay_chat_until_messages=True), chat(consumer(3), ASSIGNED), ("R4", "inbound")),
        (RuleSet(), call(ASSIGNED), ("S2", "inbound")),
        (RuleSet(create_call_record_on_connect=True), call(ASSIGNED), None),
        (RuleSet(create_call_record_on_connect=True), call(ASSIGNED, CONNECTED), ("R3", "inbound")),
        (RuleSet(), call(ev("session.abandoned", 9, wait_time=9)), ("R5", "new")),
        (RuleSet(abandoned_call_records=False), call(ev("session.abandoned", 9)), None),
        (
            RuleSet(create_call_record_on_connect=True, abandoned_call_records=False),
            call(ASSIGNED, ev("session.abandoned", 9)),
            None,
        ),
        (RuleSet(create_call_record_on_connect=True), call(ASSIGNED, ev("session.abandoned", 9)), ("R5", "new")),
        # An end without assignment may have overtaken it: wait, never guess.
        (RuleSet(), call(ev("session.ended", 9)), None),
        (RuleSet(), call(ev("session.ended", 9), ASSIGNED), ("S2", "inbound")),
        (RuleSet(), chat(ev("session.abandoned", 9, wait_time=3)), None),
        (
            RuleSet(abandoned_chat_records=AbandonedChats.ALL),
            chat(ev("session.abandoned", 9, wait_time=3)),
            ("R6", "new"),
        ),
        (
            RuleSet(abandoned_chat_records=AbandonedChats.MIN_MESSAGES, abandoned_chat_min_messages=2),
            chat(consumer(2), ev("session.abandoned", 9)),
            None,
        ),
        (
            RuleSet(abandoned_chat_records=AbandonedChats.MIN_MESSAGES),
            chat(consumer(2), ev("session.abandoned", 9)),
            ("R6", "new"),
        ),
        (RuleSet(), call(ev("voicemail.left", 9, recording_url="https://v/1.mp3")), ("S4", "voicemail")),
        (
            RuleSet(),
            call(ev("outbound.started", 2, agent={"email": "a@example.com"}, phone_number="+1")),
            ("S3", "outbound"),
        ),
        (RuleSet(), call(ev("outbound.started", 2, agent={"email": "a@example.com"}, choice="new")), ("O1", "new")),
        (RuleSet(), call(ev("outbound.started", 2, agent={"email": "a@example.com"}, choice="none")), None),
        (
            RuleSet(),
            call(ev("session.callback", 1, kind="hangup_and_callback", original_session_id="c-0"), ASSIGNED),
            ("S7", "callback"),
        ),
    ],
)
def test_when_and_how_the_record_is_made(
    rules: RuleSet, events: list[SessionEvent], expected: tuple[str, str] | None
) -> None:
    assert created_by(rules, events) == expected


def test_voicemail_record_goes_to_the_default_user_and_abandoned_ones_to_nobody() -> None:
    rules = RuleSet(voicemail_default_user_email="vm@example.com")
    [voicemail] = [
        action
        for decision in replay(
            rules, SessionState(session_id="s"), call(ASSIGNED, ev("voicemail.left", 9, recording_url="u"))
        )
        for action in decision.actions
        if action.kind == "create_record"
    ]
    # Assigned first: the call made its record at assignment, and the voicemail follows on it.
    assert isinstance(voicemail.payload, CreateRecord)
    assert voicemail.payload.mode == "inbound"
    [created] = [
        action
        for decision in replay(rules, SessionState(session_id="s"), call(ev("voicemail.left", 9, recording_url="u")))
        for action in decision.actions
        if action.kind == "create_record"
    ]
    assert isinstance(created.payload, CreateRecord)
    assert created.payload.assignee_email == "vm@example.com"


@pytest.mark.parametrize(
    ("response_format", "text"),
    [
        (ApiResponseFormat.KEY_VALUE, 'Lookup:\na: 1\nb: {"c": 2}'),
        (ApiResponseFormat.JSON, 'Lookup:\n{\n  "a": 1,\n  "b": {\n    "c": 2\n  }\n}'),
    ],
)
def test_api_response_comment_formats(response_format: str, text: str) -> None:
    assert api_response_comment({"name": "Lookup", "payload": {"b": {"c": 2}, "a": 1}}, response_format) == text


def test_follow_ups_wait_for_the_record_and_refused_sessions_drop_them() -> None:
    rules = RuleSet(abandoned_call_records=False)
    decisions = replay(
        rules, SessionState(session_id="s"), call(ev("csat.submitted", 2, rating=3), ev("session.abandoned", 9))
    )
    assert decisions[1].reason == "waits for the session's record"
    assert decisions[2].state.deferred == ()
    assert decisions[2].reason.startswith("no record (R5)")


@pytest.mark.parametrize(
    ("created", "newest"),
    [
        (["2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-02-01T00:00:00Z"], "2"),
        # Same second: the higher id is the later one.
        (["2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"], "2"),
        ([None, "2026-01-01T00:00:00Z"], "2"),
        ([], None),
    ],
)
def test_choose_contact_picks_the_most_recently_created(created: list[str | None], newest: str | None) -> None:
    contacts = [Contact(id=str(index), name="x", created_at=at) for index, at in enumerate(created, start=1)]
    chosen = choose_contact(contacts)
    assert (chosen.id if chosen else None) == newest
