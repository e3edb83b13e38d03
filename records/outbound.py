"""The adapter's outbound and screen-pop decisions (SPEC O1-O4, ADAPTER.md). Pure functions only.

records.services.outbound reads the settings, the agent's team and the CRM, then asks these
functions what the agent may choose and what still has to be picked; the screen pop asks
`answering_agent` whose adapter a session's record goes to.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from records.vocabulary import Channel, EventType


class TicketIdMode:
    """O3: team-based ticket-ID entry, as the agent's team sets it."""

    OFF = "off"
    OPTIONAL = "optional"
    REQUIRED = "required"


class RecordChoiceKind:
    """What the agent chose for the call's record when pressing Call (`record_choice`)."""

    EXISTING = "existing"
    NEW = "new"
    NONE = "none"
    CHOICES = (EXISTING, NEW, NONE)


class Origin:
    """Where the click came from (`origin`): O3 refuses a click-to-call from a contact."""

    CONTACT = "contact"
    RECORD = "record"
    DIALPAD = "dialpad"
    CHOICES = (CONTACT, RECORD, DIALPAD)


def ticket_id_mode(*, enabled: bool, required: bool) -> str:
    if not enabled:
        return TicketIdMode.OFF
    return TicketIdMode.REQUIRED if required else TicketIdMode.OPTIONAL


@dataclass(frozen=True)
class OutboundSettings:
    """The O1 switches of Operation management."""

    prompt_record_choice: bool = False
    allow_create_new: bool = False
    allow_no_record: bool = False
    allow_entered_number: bool = False


@dataclass(frozen=True)
class OutboundOptions:
    """What the settings allow this agent (`options` of prepare)."""

    choose_record: bool
    create_new: bool
    no_record: bool
    use_entered_number: bool
    ticket_id: str


def outbound_options(settings: OutboundSettings, mode: str) -> OutboundOptions:
    return OutboundOptions(
        choose_record=settings.prompt_record_choice,
        # The seed offers "Create new" only together with the prompt.
        create_new=settings.prompt_record_choice and settings.allow_create_new,
        no_record=settings.allow_no_record,
        # "Enter a new number" is incompatible with team ticket-ID entry (seed 004).
        use_entered_number=settings.allow_entered_number and mode == TicketIdMode.OFF,
        ticket_id=mode,
    )


@dataclass(frozen=True)
class OpenRecord:
    id: str
    updated_at: str = ""


@dataclass(frozen=True)
class Pick:
    """The default contact and record of a prepare answer, and what the agent still has to pick."""

    contact_id: str | None
    record_id: str | None
    must_choose: tuple[str, ...]


def outbound_pick(
    options: OutboundOptions,
    *,
    contact_ids: Sequence[str],
    named_contact_id: str | None,
    open_records: Sequence[OpenRecord],
    named_record_id: str | None,
) -> Pick:
    """Who the call is logged on by default, and what is left for the agent.

    `contact_ids` are the contacts with the number (none, one, several); `named_*` what the origin
    named (a contact card, a record's Call button, a ticket id); `open_records` the contact's
    open records, newest first.
    """
    contact_id = named_contact_id or (contact_ids[0] if len(contact_ids) == 1 else None)
    if contact_id is None and len(contact_ids) > 1:
        # The records depend on the contact: they are listed once the agent has picked one.
        return Pick(contact_id=None, record_id=None, must_choose=("contact",))
    if named_record_id:
        return Pick(contact_id=contact_id, record_id=named_record_id, must_choose=())
    newest = open_records[0].id if open_records else None
    if options.choose_record and open_records:
        return Pick(contact_id=contact_id, record_id=newest, must_choose=("record",))
    return Pick(contact_id=contact_id, record_id=newest, must_choose=())


def ticket_dial_number(
    fields: Mapping[str, Any], phone: str | None, contact_field: str
) -> tuple[str | None, str | None]:
    """O3: the number a ticket-ID call dials, from the requester, and a warning for the agent if any.

    "Outbound ticket settings" may name a contact field; blank, the requester's own phone.
    """
    if contact_field:
        value = str(fields.get(contact_field) or "").strip()
        if value:
            return value, None
        if phone:
            return phone, f"The requester's {contact_field!r} field is empty: their phone is dialed instead."
        return None, f"The requester has neither a {contact_field!r} field nor a phone: enter the number to dial."
    if phone:
        return phone, None
    return None, "The requester has no phone: enter the number to dial."


@dataclass(frozen=True)
class StartRefusal:
    """A start the settings do not allow: 422 naming `field`."""

    field: str
    code: str
    message: str


def start_refusal(
    options: OutboundOptions,
    *,
    record_choice: str,
    record_id: str | None,
    entered_number: bool,
    contact_has_open_record: bool | None,
) -> StartRefusal | None:
    """Why `start` refuses the agent's choice, or None when the settings allow it.

    `contact_has_open_record` is None when it was not looked up (not needed for that choice).
    """
    if entered_number and options.ticket_id != TicketIdMode.OFF:
        return StartRefusal(
            "entered_number",
            "incompatible_with_ticket_id_mode",
            '"Use the entered number" cannot be used with your team\'s ticket ID entry.',
        )
    if entered_number and not options.use_entered_number:
        return StartRefusal("entered_number", "not_allowed", '"Use the entered number" is not allowed by the settings.')
    if record_choice == RecordChoiceKind.EXISTING and not record_id:
        return StartRefusal("record_id", "required", "Name the record the call goes on (record_choice existing).")
    if options.ticket_id == TicketIdMode.REQUIRED and record_choice != RecordChoiceKind.EXISTING:
        return StartRefusal(
            "record_choice",
            "ticket_id_required",
            "Your team must log outbound calls on an existing record (ticket ID).",
        )
    if record_choice == RecordChoiceKind.NONE and not options.no_record:
        return StartRefusal("record_choice", "not_allowed", '"Do not create a record" is not allowed by the settings.')
    if record_choice == RecordChoiceKind.NEW and not options.create_new and contact_has_open_record:
        return StartRefusal(
            "record_choice",
            "not_allowed",
            '"Create new record" is not allowed by the settings: the call goes on the contact\'s open record.',
        )
    return None


# -- Screen pop (O4) -----------------------------------------------------------------------------

# The events that say which agent has the session.
AGENT_EVENTS = frozenset(
    {
        EventType.SESSION_ASSIGNED,
        EventType.SESSION_CONNECTED,
        EventType.SESSION_TRANSFERRED,
        EventType.OUTBOUND_STARTED,
    }
)


def event_agent_email(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return str(value.get("email") or "").strip().lower() if isinstance(value, Mapping) else ""


def answering_agent(channel: str, events: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """The agent whose adapter the session's record pops on, from the session's events in order.

    The agent who answers: connected, or the receiver of the last transfer, or the one who placed
    the outbound call. A call only assigned (ringing) has no answering agent yet; a chat is
    answered when it is assigned, so there the assigned agent counts until someone else connects.
    """
    answered = ""
    assigned = ""
    for kind, data in events:
        if kind == EventType.SESSION_ASSIGNED:
            assigned = event_agent_email(data, "agent")
        elif kind in (EventType.SESSION_CONNECTED, EventType.OUTBOUND_STARTED):
            answered = event_agent_email(data, "agent") or assigned or answered
        elif kind == EventType.SESSION_TRANSFERRED:
            answered = event_agent_email(data, "to_agent") or answered
            assigned = ""
    if answered:
        return answered
    return assigned if channel == Channel.CHAT else ""
