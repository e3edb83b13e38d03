"""The adapter's outbound flow (SPEC O1-O3, ADAPTER.md "Outbound"): prepare reads the CRM, start records the call.

`outbound_prepare` answers what the agent must choose before dialing, from the CRM's contacts
and open records and the settings. `outbound_start` stores the call as the platform's own events
would (`session.created` and `outbound.started`, with event ids of the adapter's), so the rule
engine makes or finds the record exactly as for S3, and the platform's later `outbound.started`
for the same session is one more event that finds the record already requested.
"""

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from integrations.exceptions import CrmNotFound
from integrations.providers.base import CrmProvider, Record
from integrations.services import connection_get_active, connection_provider
from records.models import OperationSettings, Queue, Session, Team
from records.outbound import (
    OpenRecord,
    Origin,
    OutboundOptions,
    OutboundSettings,
    RecordChoiceKind,
    StartRefusal,
    TicketIdMode,
    outbound_options,
    outbound_pick,
    start_refusal,
    ticket_dial_number,
    ticket_id_mode,
)
from records.selectors import session_agent_emails
from records.services.ingest import events_ingest
from records.vocabulary import Channel, EventType, SessionType

# The prefix of the event ids `start` stores: never a platform's (EVENTS.md leaves ids to the platform,
# and a platform reusing this prefix would only make its own event a duplicate of ours).
ADAPTER_EVENT_PREFIX = "adapter-start"


class OutboundRefused(Exception):
    """The request cannot be served as asked: the API answers `status` naming `field`."""

    def __init__(self, status: int, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.code = code
        self.message = message


class CrmUnavailable(Exception):
    """No active CRM connection (admin set-up missing)."""


@dataclass(frozen=True)
class AdapterAgent:
    """The agent an adapter token acts for."""

    email: str
    team: Team | None = None


@dataclass(frozen=True)
class PrepareRequest:
    phone_number: str = ""
    contact_id: str = ""
    record_id: str = ""
    ticket_id: str = ""
    entered_number: str = ""
    origin: str = ""


@dataclass(frozen=True)
class ContactView:
    id: str
    name: str
    phone: str | None
    email: str | None


@dataclass(frozen=True)
class RecordView:
    id: str
    subject: str
    status: str
    updated_at: str | None
    url: str | None


@dataclass(frozen=True)
class Prepared:
    phone_number: str | None
    contacts: tuple[ContactView, ...]
    contact_id: str | None
    open_records: tuple[RecordView, ...]
    record_id: str | None
    must_choose: tuple[str, ...]
    options: OutboundOptions
    outbound_number: str | None
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class StartRequest:
    session_id: str
    phone_number: str
    contact_id: str = ""
    record_choice: str = RecordChoiceKind.EXISTING
    record_id: str = ""
    entered_number: bool = False


@dataclass(frozen=True)
class Started:
    session_id: str
    record_id: str | None
    record_url: str | None
    contact_id: str | None
    pending: bool


def outbound_settings() -> OutboundSettings:
    settings = OperationSettings.load()
    return OutboundSettings(
        prompt_record_choice=settings.outbound_prompt_record_choice,
        allow_create_new=settings.outbound_allow_create_new,
        allow_no_record=settings.outbound_allow_no_record,
        allow_entered_number=settings.outbound_allow_entered_number,
    )


def agent_options(agent: AdapterAgent) -> OutboundOptions:
    team = agent.team
    mode = ticket_id_mode(enabled=bool(team and team.enable_ticket_id), required=bool(team and team.ticket_id_required))
    return outbound_options(outbound_settings(), mode)


def team_outbound_number(team: Team | None) -> str | None:
    """O3: the default outbound number of a queue the agent's team is assigned to."""
    if team is None:
        return None
    number = (
        Queue.objects.filter(teams=team)
        .exclude(default_outbound_number="")
        .order_by("platform_id")
        .values_list("default_outbound_number", flat=True)
        .first()
    )
    return number or None


def _provider() -> CrmProvider:
    connection = connection_get_active()
    if connection is None:
        raise CrmUnavailable("No active CRM connection: an admin must add one.")
    return connection_provider(connection)


def _record_view(provider: CrmProvider, record: Record) -> RecordView:
    return RecordView(
        id=record.id,
        subject=record.subject,
        status=record.status,
        updated_at=record.updated_at,
        url=provider.record_web_url(record),
    )


def _get_record(provider: CrmProvider, record_id: str, field: str) -> Record:
    try:
        return provider.get_record(record_id)
    except CrmNotFound:
        raise OutboundRefused(422, field, "record_not_found", f"Record {record_id} was not found in the CRM.") from None


def _allowed_ticket_id(options: OutboundOptions, request: PrepareRequest) -> str:
    """The ticket id the call is made from (seed 004), or OutboundRefused when the team's options forbid the call."""
    in_ticket_mode = options.ticket_id != TicketIdMode.OFF
    # A contact_id the agent picked among the dialed number's contacts (origin dialpad) is no click-to-call.
    from_contact = request.origin == Origin.CONTACT or (request.contact_id and request.origin != Origin.DIALPAD)
    if in_ticket_mode and from_contact:
        raise OutboundRefused(
            422,
            "origin",
            "incompatible_with_ticket_id_mode",
            "Click-to-call from a contact cannot be used with your team's ticket ID entry: call from the ticket.",
        )
    if in_ticket_mode and request.entered_number:
        raise OutboundRefused(
            422,
            "entered_number",
            "incompatible_with_ticket_id_mode",
            '"Enter a new number" cannot be used with your team\'s ticket ID entry.',
        )
    if request.entered_number and not options.use_entered_number:
        raise OutboundRefused(
            422, "entered_number", "not_allowed", '"Use the entered number" is not allowed by the settings.'
        )
    # In ticket-ID mode the record's Call button fills the ticket id (seed 004).
    ticket_id = request.ticket_id or (request.record_id if in_ticket_mode else "")
    if options.ticket_id == TicketIdMode.REQUIRED and not ticket_id:
        raise OutboundRefused(400, "ticket_id", "required", "Your team must enter a ticket ID for outbound calls.")
    return ticket_id


def outbound_prepare(*, agent: AdapterAgent, request: PrepareRequest) -> Prepared:
    """What the agent must choose before dialing (ADAPTER.md "Outbound: prepare")."""
    options = agent_options(agent)
    ticket_id = _allowed_ticket_id(options, request)

    provider = _provider()
    warnings: list[str] = []
    named_record: Record | None = None
    phone = request.phone_number or None
    contact_id = request.contact_id or None
    if ticket_id or request.record_id:
        record_id = ticket_id or request.record_id
        field = "ticket_id" if ticket_id else "record_id"
        named_record = _get_record(provider, record_id, field)
        if not provider.is_open(named_record):
            raise OutboundRefused(
                422,
                field,
                "record_closed",
                f"Record {named_record.id} is {named_record.status}: a call cannot be logged on a solved or "
                "closed record.",
            )
        contact_id = named_record.requester_id
        if not contact_id:
            warnings.append(f"Record {named_record.id} has no requester: the call creates a contact for the number.")
    contacts = []
    if contact_id:
        try:
            contact = provider.get_contact(contact_id)
        except CrmNotFound:
            raise OutboundRefused(
                422, "contact_id", "contact_not_found", f"Contact {contact_id} was not found."
            ) from None
        contacts = [contact]
        if ticket_id:
            contact_field = OperationSettings.load().outbound_ticket_phone_field
            dial, warning = ticket_dial_number(contact.fields, contact.phone, contact_field)
            phone = dial or phone
            warnings += [warning] if warning else []
        else:
            phone = phone or contact.phone
    elif phone:
        contacts = provider.find_contacts(phone=phone)
    if request.entered_number:
        # Dial the entered number; the call stays on the contact the origin found (never saved on it).
        phone = request.entered_number

    pick = outbound_pick(
        options,
        contact_ids=[contact.id for contact in contacts],
        named_contact_id=contact_id,
        open_records=[],
        named_record_id=named_record.id if named_record else None,
    )
    open_records: list[Record] = []
    if pick.contact_id and named_record is None:
        open_records = [record for record in provider.list_contact_records(pick.contact_id) if provider.is_open(record)]
        pick = outbound_pick(
            options,
            contact_ids=[contact.id for contact in contacts],
            named_contact_id=contact_id,
            open_records=[OpenRecord(record.id, record.updated_at or "") for record in open_records],
            named_record_id=None,
        )
    elif named_record is not None:
        open_records = [named_record]
    if not contacts and phone:
        warnings.append("No contact has this number: the call creates one.")
    return Prepared(
        phone_number=phone,
        contacts=tuple(ContactView(c.id, c.name, c.phone, c.email) for c in contacts),
        contact_id=pick.contact_id,
        open_records=tuple(_record_view(provider, record) for record in open_records),
        record_id=pick.record_id,
        must_choose=pick.must_choose,
        options=options,
        outbound_number=team_outbound_number(agent.team),
        warnings=tuple(warnings),
    )


def _refuse(refusal: StartRefusal) -> OutboundRefused:
    return OutboundRefused(422, refusal.field, refusal.code, refusal.message)


def outbound_start(*, agent: AdapterAgent, request: StartRequest) -> Started:
    """The agent pressed Call: check the choice against the settings, then record the call's start."""
    options = agent_options(agent)
    refusal = start_refusal(
        options,
        record_choice=request.record_choice,
        record_id=request.record_id or None,
        entered_number=request.entered_number,
        contact_has_open_record=None,
    )
    if refusal is not None:
        raise _refuse(refusal)
    existing = Session.objects.filter(external_id=request.session_id).first()
    agents = session_agent_emails(existing) if existing is not None else set()
    if agents and agent.email.lower() not in agents:
        raise OutboundRefused(409, "session_id", "session_taken", f"Session {request.session_id} is another agent's.")
    if request.entered_number and not request.contact_id:
        raise OutboundRefused(
            400, "contact_id", "required", '"Use the entered number" needs the contact the call is logged on.'
        )

    provider = _provider()
    record: Record | None = None
    if request.record_choice == RecordChoiceKind.EXISTING:
        record = _get_record(provider, request.record_id, "record_id")
        if not provider.is_open(record):
            raise OutboundRefused(
                422, "record_id", "record_closed", f"Record {record.id} is {record.status}: it cannot take the call."
            )
        if request.contact_id and record.requester_id and record.requester_id != request.contact_id:
            raise OutboundRefused(422, "record_id", "other_contact", f"Record {record.id} belongs to another contact.")
    elif request.record_choice == RecordChoiceKind.NEW and not options.create_new and request.contact_id:
        has_open = any(provider.is_open(r) for r in provider.list_contact_records(request.contact_id))
        refusal = start_refusal(
            options,
            record_choice=request.record_choice,
            record_id=None,
            entered_number=request.entered_number,
            contact_has_open_record=has_open,
        )
        if refusal is not None:
            raise _refuse(refusal)

    contact_id = request.contact_id or (record.requester_id if record else "") or ""
    _store_start(agent, request, contact_id, options)
    return Started(
        session_id=request.session_id,
        record_id=record.id if record else None,
        record_url=provider.record_web_url(record) if record else None,
        contact_id=contact_id or None,
        pending=request.record_choice == RecordChoiceKind.NEW,
    )


def _store_start(agent: AdapterAgent, request: StartRequest, contact_id: str, options: OutboundOptions) -> None:
    now = timezone.now()
    prefix = f"{ADAPTER_EVENT_PREFIX}:{request.session_id}"
    events: list[dict[str, Any]] = []
    if not Session.objects.filter(external_id=request.session_id, events__type=EventType.SESSION_CREATED).exists():
        created: dict[str, Any] = {
            "channel": Channel.VOICE,
            "session_type": SessionType.VOICE_OUTBOUND,
            "phone_number": request.phone_number,
        }
        if number := team_outbound_number(agent.team):
            created["dialed_number"] = number
        events.append(_event(f"{prefix}:created", request.session_id, EventType.SESSION_CREATED, now, created))
    started = {
        "agent": {"email": agent.email},
        "phone_number": request.phone_number,
        "contact_id": contact_id or None,
        "record_id": request.record_id or None,
        "choice": request.record_choice,
        "entered_number": request.entered_number,
    }
    events.append(_event(f"{prefix}:started", request.session_id, EventType.OUTBOUND_STARTED, now, started))
    events_ingest(events=events)


def _event(event_id: str, session_id: str, kind: str, at: Any, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "session_id": session_id,
        "type": kind,
        "occurred_at": at,
        "data": data,
        "extra": {"source": "adapter"},
    }
