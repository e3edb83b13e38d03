"""The adapter's pure decisions (records/outbound.py): options, default picks, refusals, the answering agent."""

from typing import Any

import pytest

from records.outbound import (
    OpenRecord,
    OutboundOptions,
    OutboundSettings,
    Pick,
    TicketIdMode,
    answering_agent,
    outbound_options,
    outbound_pick,
    start_refusal,
    ticket_dial_number,
    ticket_id_mode,
)

ALL_ON = OutboundSettings(
    prompt_record_choice=True, allow_create_new=True, allow_no_record=True, allow_entered_number=True
)


@pytest.mark.parametrize(
    ("settings", "mode", "expected"),
    [
        (OutboundSettings(), TicketIdMode.OFF, OutboundOptions(False, False, False, False, "off")),
        (ALL_ON, TicketIdMode.OFF, OutboundOptions(True, True, True, True, "off")),
        # "Create new" only with the prompt on (seed 004).
        (OutboundSettings(allow_create_new=True), TicketIdMode.OFF, OutboundOptions(False, False, False, False, "off")),
        # "Enter a new number" is incompatible with team ticket-ID entry.
        (ALL_ON, TicketIdMode.OPTIONAL, OutboundOptions(True, True, True, False, "optional")),
        (ALL_ON, TicketIdMode.REQUIRED, OutboundOptions(True, True, True, False, "required")),
    ],
)
def test_options_follow_the_settings_and_the_team(settings: OutboundSettings, mode: str, expected: Any) -> None:
    assert outbound_options(settings, mode) == expected


def test_ticket_id_mode_from_the_team_flags() -> None:
    assert ticket_id_mode(enabled=False, required=True) == TicketIdMode.OFF
    assert ticket_id_mode(enabled=True, required=False) == TicketIdMode.OPTIONAL
    assert ticket_id_mode(enabled=True, required=True) == TicketIdMode.REQUIRED


PROMPT = outbound_options(OutboundSettings(prompt_record_choice=True), TicketIdMode.OFF)
NO_PROMPT = outbound_options(OutboundSettings(), TicketIdMode.OFF)
TWO = [OpenRecord("9", "2026-11-20T10:00:00Z"), OpenRecord("7", "2026-11-19T10:00:00Z")]


@pytest.mark.parametrize(
    ("options", "contacts", "named_contact", "records", "named_record", "expected"),
    [
        # No contact with the number: the call creates one and a new record; nothing to choose.
        (PROMPT, [], None, [], None, Pick(None, None, ())),
        # One contact, no open record: a new record (S3).
        (PROMPT, ["1"], None, [], None, Pick("1", None, ())),
        # One contact, prompt off: the most recent open record without asking.
        (NO_PROMPT, ["1"], None, TWO, None, Pick("1", "9", ())),
        # Prompt on: the newest is the default pick, and the agent chooses.
        (PROMPT, ["1"], None, TWO, None, Pick("1", "9", ("record",))),
        (PROMPT, ["1"], None, TWO[:1], None, Pick("1", "9", ("record",))),
        # Several contacts: the agent picks the contact first.
        (PROMPT, ["1", "2"], None, [], None, Pick(None, None, ("contact",))),
        # The origin named the contact (contact card) or the record (Call button, ticket id).
        (PROMPT, ["1", "2"], "2", TWO, None, Pick("2", "9", ("record",))),
        (PROMPT, ["1"], "1", TWO, "7", Pick("1", "7", ())),
    ],
)
def test_default_pick_and_what_is_left_to_choose(
    options: OutboundOptions,
    contacts: list[str],
    named_contact: str | None,
    records: list[OpenRecord],
    named_record: str | None,
    expected: Pick,
) -> None:
    pick = outbound_pick(
        options,
        contact_ids=contacts,
        named_contact_id=named_contact,
        open_records=records,
        named_record_id=named_record,
    )
    assert pick == expected


OPTIONAL = outbound_options(ALL_ON, TicketIdMode.OPTIONAL)
REQUIRED = outbound_options(ALL_ON, TicketIdMode.REQUIRED)
EVERYTHING = outbound_options(ALL_ON, TicketIdMode.OFF)


@pytest.mark.parametrize(
    ("options", "choice", "record_id", "entered", "has_open", "field", "code"),
    [
        (EVERYTHING, "existing", "9", False, None, None, None),
        (EVERYTHING, "new", None, True, True, None, None),
        (EVERYTHING, "none", None, False, None, None, None),
        (EVERYTHING, "existing", None, False, None, "record_id", "required"),
        (NO_PROMPT, "none", None, False, None, "record_choice", "not_allowed"),
        (NO_PROMPT, "new", None, False, True, "record_choice", "not_allowed"),
        # With no open record a new one is what S3 makes anyway.
        (NO_PROMPT, "new", None, False, False, None, None),
        (NO_PROMPT, "existing", "9", True, None, "entered_number", "not_allowed"),
        (OPTIONAL, "existing", "9", True, None, "entered_number", "incompatible_with_ticket_id_mode"),
        (OPTIONAL, "new", None, False, True, None, None),
        (REQUIRED, "new", None, False, True, "record_choice", "ticket_id_required"),
        (REQUIRED, "existing", "9", False, None, None, None),
    ],
)
def test_start_refuses_what_the_settings_do_not_allow(
    options: OutboundOptions,
    choice: str,
    record_id: str | None,
    entered: bool,
    has_open: bool | None,
    field: str | None,
    code: str | None,
) -> None:
    refusal = start_refusal(
        options, record_choice=choice, record_id=record_id, entered_number=entered, contact_has_open_record=has_open
    )
    got = (refusal.field, refusal.code) if refusal else (None, None)
    assert got == (field, code)


def agent(email: str) -> dict[str, Any]:
    return {"agent": {"email": email}}


@pytest.mark.parametrize(
    ("channel", "events", "expected"),
    [
        ("voice", [], ""),
        # A call only ringing (assigned) has no answering agent yet.
        ("voice", [("session.assigned", agent("ana@example.com"))], ""),
        (
            "voice",
            [("session.assigned", agent("ana@example.com")), ("session.connected", agent("ana@example.com"))],
            "ana@example.com",
        ),
        # Assigned to one, answered by another: the one who answered.
        (
            "voice",
            [("session.assigned", agent("ana@example.com")), ("session.connected", agent("Ben@Example.com"))],
            "ben@example.com",
        ),
        # A connection that names nobody is the assigned agent's.
        ("voice", [("session.assigned", agent("ana@example.com")), ("session.connected", {})], "ana@example.com"),
        # A transfer: the receiving agent.
        (
            "voice",
            [
                ("session.assigned", agent("ana@example.com")),
                ("session.connected", agent("ana@example.com")),
                ("session.transferred", {"to_agent": {"email": "carla@example.com"}}),
            ],
            "carla@example.com",
        ),
        ("voice", [("outbound.started", agent("ben@example.com"))], "ben@example.com"),
        # A chat is answered when it is assigned.
        ("chat", [("session.assigned", agent("ana@example.com"))], "ana@example.com"),
        (
            "chat",
            [
                ("session.assigned", agent("ana@example.com")),
                ("session.transferred", {"to_agent": {"email": "ben@example.com"}}),
            ],
            "ben@example.com",
        ),
    ],
)
def test_answering_agent(channel: str, events: list[tuple[str, dict[str, Any]]], expected: str) -> None:
    assert answering_agent(channel, events) == expected


@pytest.mark.parametrize(
    ("fields", "phone", "field", "expected"),
    [
        ({}, "+14155550100", "", ("+14155550100", None)),
        ({}, None, "", (None, "The requester has no phone: enter the number to dial.")),
        ({"site_phone": " +442071838750 "}, "+14155550100", "site_phone", ("+442071838750", None)),
        (
            {"site_phone": ""},
            "+14155550100",
            "site_phone",
            ("+14155550100", "The requester's 'site_phone' field is empty: their phone is dialed instead."),
        ),
        (
            {},
            None,
            "site_phone",
            (None, "The requester has neither a 'site_phone' field nor a phone: enter the number to dial."),
        ),
    ],
)
def test_ticket_dial_number_reads_the_configured_contact_field(
    fields: dict[str, Any], phone: str | None, field: str, expected: tuple[str | None, str | None]
) -> None:
    assert ticket_dial_number(fields, phone, field) == expected
