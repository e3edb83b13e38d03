"""The typed payloads between the rules and the executor: their JSON, and what a bad one is."""

from typing import Any

import pytest

from records.rules import (
    PAYLOAD_TYPES,
    ActionPayload,
    AddComment,
    CallbackOf,
    CreateRecord,
    DisplayRecord,
    EnsureContact,
    MalformedPayload,
    PlannedAction,
    RecordMode,
    RecordPolicy,
    SessionState,
    TranscriptFile,
    UpdateRecord,
    action_payload,
)
from records.vocabulary import ActionKind

EXAMPLES: list[ActionPayload] = [
    EnsureContact(phone="+14155550100", name="Ana", ask_agent_when_several=True),
    EnsureContact(contact_id="42"),
    CreateRecord(
        mode=RecordMode.CALLBACK,
        subject="IVR Call from +14155550100",
        external_id="c-1",
        first_comment="Call ID: c-1",
        session_type_name="Voice Inbound (IVR)",
        tags=("acme",),
        assignee_email="ana@example.com",
        fields={"session_type": "Voice Inbound (IVR)", "wait_time": 12},
        mapped_fields={"360001": "gold"},
        mapped_keys={"360001": "tier"},
        policy=RecordPolicy(append_to_recently_closed=True, closed_within_days=7),
        callback=CallbackOf(kind="agent", original_session_id="c-0"),
    ),
    AddComment(body="Call recording: https://example.com/r.mp3"),
    AddComment(body="Chat transcript of c-2", attachment=TranscriptFile(filename="transcript-c-2.txt", text="hi")),
    UpdateRecord(fields={"csat_rating": 5}),
    UpdateRecord(assignee_email="ben@example.com"),
    UpdateRecord(resolve=True),
    DisplayRecord(agent_email="ana@example.com", record_id="17"),
]


@pytest.mark.parametrize("payload", EXAMPLES, ids=lambda payload: type(payload).__name__)
def test_every_payload_comes_back_from_its_json_unchanged(payload: ActionPayload) -> None:
    assert action_payload(payload.KIND, payload.to_json()) == payload


def test_every_action_kind_has_its_payload_type() -> None:
    assert set(PAYLOAD_TYPES) == set(ActionKind.values)


# Rows the outbox stored before the payloads were typed: the same keys, some left out.
STORED_BEFORE = [
    (
        ActionKind.CREATE_RECORD,
        {
            "mode": "inbound",
            "subject": "IVR Call from +14155550100",
            "tags": [],
            "policy": {"append_to_open_records": True, "closed_within_days": 3},
            "callback": {},
            "fields": {"session_type": "Voice Inbound (IVR)"},
        },
        CreateRecord(
            mode=RecordMode.INBOUND,
            subject="IVR Call from +14155550100",
            fields={"session_type": "Voice Inbound (IVR)"},
        ),
    ),
    (
        ActionKind.ENSURE_CONTACT,
        {"phone": "+14155550100", "email": "", "external_id": "", "name": "+14155550100", "always_create": False},
        EnsureContact(phone="+14155550100", name="+14155550100"),
    ),
    (
        ActionKind.ADD_COMMENT,
        {"body": "t", "attachment": {"filename": "t.txt", "content_type": "text/plain", "text": "x"}},
        AddComment(body="t", attachment=TranscriptFile(filename="t.txt", text="x")),
    ),
    (ActionKind.UPDATE_RECORD, {"fields": {"wait_time": 3}}, UpdateRecord(fields={"wait_time": 3})),
]


@pytest.mark.parametrize(("kind", "stored", "expected"), STORED_BEFORE, ids=lambda value: str(value)[:20])
def test_rows_stored_before_the_types_still_read(kind: str, stored: dict[str, Any], expected: ActionPayload) -> None:
    assert action_payload(kind, stored) == expected


@pytest.mark.parametrize(
    ("kind", "stored", "named"),
    [
        ("merge_records", {}, "no action kind 'merge_records'"),
        (ActionKind.ADD_COMMENT, ["body"], "add_comment: expected an object, got list"),
        (ActionKind.CREATE_RECORD, {"mode": "sideways"}, "create_record.mode: 'sideways' is not one of"),
        (ActionKind.CREATE_RECORD, {"tags": "acme"}, "create_record.tags: expected a list of texts"),
        (ActionKind.CREATE_RECORD, {"policy": {"closed_within_days": "3"}}, "create_record.policy.closed_within_days"),
        (ActionKind.UPDATE_RECORD, {"resolve": "yes"}, "update_record.resolve: expected bool, got 'yes'"),
        (ActionKind.UPDATE_RECORD, {"fields": []}, "update_record.fields: expected an object"),
        (ActionKind.ADD_COMMENT, {"body": "t", "attachment": {"text": "x"}}, "attachment: filename is missing"),
        (ActionKind.DISPLAY_RECORD, {"agent_email": "ana@example.com"}, "display_record: record_id is missing"),
    ],
)
def test_a_payload_that_does_not_parse_names_its_field(kind: str, stored: Any, named: str) -> None:
    with pytest.raises(MalformedPayload, match=None) as raised:
        action_payload(kind, stored)
    assert named in str(raised.value)


def test_a_deferred_action_keeps_its_typed_payload_through_the_session_state() -> None:
    deferred = PlannedAction(
        payload=UpdateRecord(fields={"csat_rating": 4}), rule="F2", reason="CSAT fields", key="update:e1", event_id="e1"
    )
    state = SessionState(session_id="c-1", deferred=(deferred,))

    assert SessionState.from_json("c-1", state.to_json()) == state
    assert state.to_json()["deferred"][0]["kind"] == ActionKind.UPDATE_RECORD
