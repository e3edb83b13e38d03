"""The rule engine: what the CRM must get for each session event. Pure functions only.

No ORM, settings, clock, logging or HTTP here: records.services turns rows into these dataclasses,
calls `decide`, and carries out what comes back. Delays are rules, not sleeps: an action whose
condition is not met yet waits in the state until the event that satisfies it arrives.

Two decisions need CRM data and are made by the executor, but with pure functions from here:
which record a session lands on (`choose_record`) and which contact it belongs to.
"""

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from integrations.providers.base import Contact
from records.vocabulary import SESSION_TYPES, ActionKind, EventType

TITLE_VARIABLES = frozenset({"CALL_TYPE", "CALL_ID", "MENU_PATH", "PHONE_NUMBER", "LANGUAGE", "TIMESTAMP"})
DEFAULT_TITLE_TEMPLATE = "{CALL_TYPE} from {PHONE_NUMBER}"
# S7: a call shorter than this, followed by the agent's Call back button, goes on the same record.
CALLBACK_SHORT_CALL_SECONDS = 10


class RecordMode:
    """How the executor finds the session's record (see choose_record)."""

    INBOUND = "inbound"  # S6 with R1/R2/R9: append to a matching open record, else create
    OUTBOUND = "outbound"  # S3: the contact's latest record if open, else create
    VOICEMAIL = "voicemail"  # S4: always a new voicemail record
    CALLBACK = "callback"  # S7: the original call's open record
    NEW = "new"  # a new record, no lookup (abandoned sessions, the agent's "create new")


class AbandonedChats:
    """R6 choices."""

    OFF = "off"
    ALL = "all"
    MIN_MESSAGES = "min_messages"
    CHOICES = [(OFF, "Off: no records"), (ALL, "All abandoned chats"), (MIN_MESSAGES, "With at least N messages")]


class ApiResponseFormat:
    """S15 choices."""

    OFF = "off"
    KEY_VALUE = "key_value"
    JSON = "json"
    CHOICES = [(OFF, "Off"), (KEY_VALUE, "Key-value pairs"), (JSON, "JSON")]


def title_template_errors(template: str) -> list[str]:
    """Why a title template cannot be used (empty list when it can)."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return [f"Malformed template: {exc}."]
    errors = []
    unknown = sorted({name for name in fields if name not in TITLE_VARIABLES})
    if unknown:
        allowed = ", ".join(sorted(TITLE_VARIABLES))
        errors.append(f"Unknown variable(s): {', '.join(unknown)}. Use only: {allowed}.")
    if not template.strip():
        errors.append("The title template cannot be empty.")
    return errors


@dataclass(frozen=True)
class RuleSet:
    """The operation-management settings the rules read (R1-R9, S4, S11, S15), with their defaults."""

    # R1: append a call or chat to the contact's last open record in the same leaf queue.
    append_to_open_records: bool = True
    # R2: ... or to one closed within the last N days (then reopened).
    append_to_recently_closed: bool = False
    closed_within_days: int = 3
    # R9: never append calls or chats to existing records (overrides R1, R2 and S3's append).
    never_append: bool = False
    # R3: create call records when the agent is connected rather than at assignment.
    create_call_record_on_connect: bool = False
    # R4: create chat records once the consumer has sent N messages.
    delay_chat_until_messages: bool = False
    chat_min_messages: int = 1
    # R5: records for calls abandoned before reaching an agent.
    abandoned_call_records: bool = True
    # R6: records for abandoned chats, and what counts as a short abandon.
    abandoned_chat_records: str = AbandonedChats.OFF
    abandoned_chat_min_messages: int = 1
    short_abandon_seconds: int = 10
    # R7
    title_template: str = DEFAULT_TITLE_TEMPLATE
    # R8: tag each record with its session type, and optionally a fixed product tag.
    tag_session_type: bool = True
    add_product_tag: bool = False
    product_tag: str = "crmbridge"
    # S4: the CRM user voicemail records are assigned to (never a random agent).
    voicemail_default_user_email: str = ""
    # S15
    api_response_format: str = ApiResponseFormat.OFF
    # S11: custom data key sent by the SDK -> CRM field id.
    custom_data_mapping: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionEvent:
    event_id: str
    type: str
    occurred_at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True)
class PlannedAction:
    kind: str
    payload: Mapping[str, Any]
    rule: str
    reason: str
    # Unique within the session: the outbox's idempotency key is `<session row id>:<key>`.
    key: str
    # The event that called for it (a deferred comment keeps its own event).
    event_id: str = ""


@dataclass(frozen=True)
class SessionState:
    """Everything the rules need to know about a session, folded from its applied events."""

    session_id: str
    created: bool = False
    channel: str = ""
    session_type: str = ""
    phone_number: str = ""
    dialed_number: str = ""
    language: str = ""
    menu_path: str = ""
    queue_id: str = ""
    queue_name: str = ""
    queue_path: tuple[str, ...] = ()
    customer: Mapping[str, Any] = field(default_factory=dict)
    custom_data: Mapping[str, Any] = field(default_factory=dict)
    started_at: str = ""
    agent_email: str = ""
    assigned: bool = False
    connected: bool = False
    ended: bool = False
    abandoned: bool = False
    voicemail: bool = False
    consumer_messages: int = 0
    # outbound.started: what the agent chose in the adapter (O1/O2).
    outbound: Mapping[str, Any] = field(default_factory=dict)
    # session.callback: {kind, original_session_id} (S7).
    callback: Mapping[str, Any] = field(default_factory=dict)
    # contact.selected: the contact the agent picked among several (S5).
    selected_contact_id: str = ""
    record_planned: bool = False
    # The agent the record is (or is about to be) assigned to by this session's actions (S2, S9).
    record_assignee: str = ""
    # The agent who answered when that differs from record_assignee: the record's next update
    # carries the reassignment (S2), so it costs no call of its own.
    reassign_to: str = ""
    # Why no record will be made for this session (shown when later events find none).
    no_record_reason: str = ""
    # Comments decided before the record was: they follow its creation.
    deferred: tuple[PlannedAction, ...] = ()
    # Events that came before session.created: what they add depends on the session's type and
    # channel, so it is decided when session.created arrives.
    early: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, session_id: str, data: Mapping[str, Any]) -> "SessionState":
        if not data:
            return cls(session_id=session_id)
        values = dict(data)
        values["queue_path"] = tuple(values.get("queue_path") or ())
        values["deferred"] = tuple(PlannedAction(**action) for action in values.get("deferred") or ())
        values["early"] = tuple(values.get("early") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in values.items() if key in known})

    @property
    def leaf_queue(self) -> str:
        return " > ".join(self.queue_path) or self.queue_name


@dataclass(frozen=True)
class Decision:
    state: SessionState
    actions: tuple[PlannedAction, ...]
    # Why, in words: shown on the event in the admin.
    reason: str


# -- Text the CRM receives ---------------------------------------------------------------------


def render_title(template: str, state: SessionState) -> str:
    info = SESSION_TYPES.get(state.session_type)
    variables = {
        "CALL_TYPE": info.call_type if info else state.session_type,
        "CALL_ID": state.session_id,
        "MENU_PATH": state.menu_path,
        "PHONE_NUMBER": state.phone_number,
        "LANGUAGE": state.language,
        "TIMESTAMP": _format_timestamp(state.started_at),
    }
    return " ".join(template.format_map(variables).split())


def _format_timestamp(iso: str) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _format_seconds(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "unknown"
    seconds = int(value)
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def standard_data_comment(state: SessionState) -> str:
    """S14 (and S1's description): call ID, language, menu selection, plus what the SDK sent."""
    info = SESSION_TYPES.get(state.session_type)
    id_label = "Chat ID" if state.channel == "chat" else "Call ID"
    lines = [
        f"{id_label}: {state.session_id}",
        f"Session type: {info.call_type if info else state.session_type or 'unknown'}",
        f"Language: {state.language or 'unknown'}",
        f"Menu selection: {state.menu_path or 'none'}",
    ]
    if state.leaf_queue:
        lines.append(f"Queue: {state.leaf_queue}")
    if state.phone_number:
        lines.append(f"Phone number: {state.phone_number}")
    customer = {key: value for key, value in state.customer.items() if value not in (None, "")}
    if state.channel == "chat" or customer.get("app_user_id") or "authenticated" in customer:
        lines += [f"User {key.replace('_', ' ')}: {value}" for key, value in sorted(customer.items())]
    if state.custom_data:
        lines.append("Custom data:")
        lines += [f"  {key}: {_plain_value(value)}" for key, value in sorted(state.custom_data.items())]
    return "\n".join(lines)


def _plain_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def call_finished_comment(data: Mapping[str, Any], call_id: str = "") -> str:
    # The call id tells the sessions on one record apart, and keeps two calls of the same length
    # from reading as one comment when a retry looks for what an earlier attempt added.
    lines = [
        "call_finished",
        *([f"Call ID: {call_id}"] if call_id else []),
        f"Call duration: {_format_seconds(data.get('call_duration'))}",
        f"Hold time: {_format_seconds(data.get('hold_time'))}",
        f"Wait time: {_format_seconds(data.get('wait_time'))}",
    ]
    if data.get("ended_by"):
        lines.append(f"Ended by: {data['ended_by']}")
    return "\n".join(lines)


def api_response_comment(data: Mapping[str, Any], response_format: str) -> str:
    """S15: the API direct access point's answer, as key-value pairs or JSON."""
    name = data.get("name") or "API response"
    payload = data.get("payload") or {}
    if response_format == ApiResponseFormat.JSON:
        return f"{name}:\n{json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)}"
    lines = [f"{name}:"] + [f"{key}: {_plain_value(value)}" for key, value in sorted(payload.items())]
    return "\n".join(lines)


def phone_number_note(state: SessionState) -> str:
    """S14 (Kustomer): the caller's number with its country code, as a note."""
    return f"Phone number: {state.phone_number}"


# -- Custom fields (F2) ------------------------------------------------------------------------


def fields_at_start(state: SessionState) -> dict[str, Any]:
    info = SESSION_TYPES.get(state.session_type)
    values: dict[str, Any] = {"session_type": info.name if info else state.session_type}
    # "From" is the number the agent called from on an outbound call, else the customer's.
    from_number = state.dialed_number if state.session_type == "voice_outbound" else state.phone_number
    if from_number:
        values["from_phone_number"] = from_number
    return values


def fields_at_end(state: SessionState, data: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"call_id": state.session_id, "menu_selection": state.menu_path}
    if state.queue_name:
        values["queue_name"] = state.queue_name
    for key in ("call_duration", "hold_time", "wait_time"):
        if isinstance(data.get(key), int | float) and not isinstance(data.get(key), bool):
            values[key] = int(data[key])
    if "send_email_from_in_web" in state.custom_data:
        values["send_email_from_in_web"] = bool(state.custom_data["send_email_from_in_web"])
    return values


def mapped_custom_data(rules: RuleSet, state: SessionState) -> dict[str, Any]:
    """S11: SDK custom data -> {CRM field id: value} through the admin's mapping."""
    return {
        rules.custom_data_mapping[key]: value
        for key, value in state.custom_data.items()
        if key in rules.custom_data_mapping
    }


# -- Folding events ----------------------------------------------------------------------------


def _fold(state: SessionState, event: SessionEvent) -> SessionState:
    """The session's facts after this event, before any decision."""
    data = event.data
    agent_email = (data.get("agent") or {}).get("email") or (data.get("to_agent") or {}).get("email")
    changes: dict[str, Any] = {}
    if agent_email and event.type != EventType.VOICEMAIL_UPDATED:
        changes["agent_email"] = agent_email.lower()
    queue = data.get("queue")
    if isinstance(queue, Mapping):
        changes["queue_id"] = str(queue.get("id") or "")
        changes["queue_name"] = queue.get("name") or ""
        changes["queue_path"] = tuple(queue.get("path") or ())

    if event.type == EventType.SESSION_CREATED:
        customer = data.get("customer") or {}
        changes.update(
            created=True,
            channel=data.get("channel") or "",
            session_type=data.get("session_type") or "",
            phone_number=data.get("phone_number") or customer.get("phone") or state.phone_number,
            dialed_number=data.get("dialed_number") or "",
            language=data.get("language") or "",
            menu_path=data.get("menu_path") or "",
            customer=dict(customer),
            custom_data=dict(data.get("custom_data") or {}),
            started_at=event.occurred_at.isoformat(),
        )
    elif event.type == EventType.SESSION_ASSIGNED:
        changes["assigned"] = True
    elif event.type == EventType.SESSION_CONNECTED:
        changes["connected"] = True
    elif event.type == EventType.SESSION_ENDED:
        changes["ended"] = True
    elif event.type == EventType.SESSION_ABANDONED:
        changes.update(ended=True, abandoned=True)
    elif event.type == EventType.VOICEMAIL_LEFT:
        changes.update(voicemail=True, ended=True)
    elif event.type == EventType.MESSAGE_RECEIVED and data.get("sender") == "consumer":
        changes["consumer_messages"] = state.consumer_messages + 1
    elif event.type == EventType.OUTBOUND_STARTED:
        changes["outbound"] = {
            key: data.get(key) for key in ("contact_id", "record_id", "choice", "entered_number", "phone_number")
        }
        changes["phone_number"] = data.get("phone_number") or state.phone_number
        changes["assigned"] = True
    elif event.type == EventType.SESSION_CALLBACK:
        changes["callback"] = {"kind": data.get("kind"), "original_session_id": data.get("original_session_id") or ""}
    elif event.type == EventType.CONTACT_SELECTED:
        changes["selected_contact_id"] = str(data.get("contact_id") or "")
    return replace(state, **changes)


# -- When and how the record is made -----------------------------------------------------------


@dataclass(frozen=True)
class CreationPlan:
    rule: str
    mode: str
    why: str
    assign: bool = True


@dataclass(frozen=True)
class CreationRefusal:
    rule: str
    why: str


def _creation_due(rules: RuleSet, state: SessionState, event: SessionEvent) -> CreationPlan | CreationRefusal | None:
    """The plan that makes (or finds) the record now; a refusal when none will be made; None to wait."""
    if state.record_planned or state.no_record_reason or not state.created:
        return None
    if state.voicemail:
        return CreationPlan("S4", RecordMode.VOICEMAIL, "a voicemail always gets its own record", assign=False)
    if state.outbound:
        choice = state.outbound.get("choice") or ""
        if choice == "none":
            return CreationRefusal("O1", "the agent chose not to create a record for this outbound call")
        if choice == "new":
            return CreationPlan("O1", RecordMode.NEW, "the agent chose to create a new record")
        return CreationPlan("S3", RecordMode.OUTBOUND, "outbound call")
    # Only an explicit abandon decides that no agent will come: an end without an assignment may
    # just have overtaken the assignment event, which then still makes the record.
    if state.abandoned and not (state.assigned or state.connected):
        return _abandoned_plan(rules, state, event)
    if state.channel == "voice":
        if rules.create_call_record_on_connect:
            if state.connected:
                return _inbound_plan(state, "R3", "the call was connected to the agent (R3)")
            if state.abandoned:
                return _abandoned_plan(rules, state, event)
            return None
        if state.assigned or state.connected:
            return _inbound_plan(state, "S2", "the call was assigned to an agent")
        return None
    if state.channel == "chat":
        if not (state.assigned or state.connected):
            return None
        if rules.delay_chat_until_messages and state.consumer_messages < rules.chat_min_messages:
            if state.abandoned:
                return _abandoned_plan(rules, state, event)
            return None
        if rules.delay_chat_until_messages:
            return _inbound_plan(state, "R4", f"the consumer sent {state.consumer_messages} message(s) (R4)")
        return _inbound_plan(state, "S1", "the chat was assigned to an agent")
    return None


def _inbound_plan(state: SessionState, rule: str, why: str) -> CreationPlan:
    if state.callback:
        return CreationPlan("S7", RecordMode.CALLBACK, f"{why}; it is a call back ({state.callback.get('kind')})")
    return CreationPlan(rule, RecordMode.INBOUND, why)


def _abandoned_plan(rules: RuleSet, state: SessionState, event: SessionEvent) -> CreationPlan | CreationRefusal:
    if state.channel == "voice":
        if rules.abandoned_call_records:
            return CreationPlan("R5", RecordMode.NEW, "the caller hung up before reaching an agent", assign=False)
        reason = "the caller hung up before reaching an agent and abandoned-call records are off (R5)"
        if rules.create_call_record_on_connect:
            reason = "the call never connected to an agent (R3) and abandoned-call records are off (R5)"
        return CreationRefusal("R5", reason)
    wait = event.data.get("wait_time")
    short = isinstance(wait, int | float) and not isinstance(wait, bool) and wait < rules.short_abandon_seconds
    kind = f"short-abandoned chat ({wait:g}s < {rules.short_abandon_seconds}s)" if short else "abandoned chat"
    if rules.abandoned_chat_records == AbandonedChats.ALL:
        return CreationPlan("R6", RecordMode.NEW, f"{kind}: records for all abandoned chats", assign=False)
    if rules.abandoned_chat_records == AbandonedChats.MIN_MESSAGES:
        if state.consumer_messages >= rules.abandoned_chat_min_messages:
            minimum = rules.abandoned_chat_min_messages
            why = f"{kind} with {state.consumer_messages} consumer message(s), at least {minimum}"
            return CreationPlan("R6", RecordMode.NEW, why, assign=False)
        return CreationRefusal(
            "R6", f"{kind} with {state.consumer_messages} of {rules.abandoned_chat_min_messages} consumer messages"
        )
    return CreationRefusal("R6", f"{kind}: abandoned-chat records are off")


def _contact_payload(state: SessionState) -> dict[str, Any]:
    """S16: the contact is found by app user id, email or phone, else created."""
    customer = state.customer
    app_user_id = str(customer.get("app_user_id") or "")
    email = customer.get("email") or ""
    authenticated = customer.get("authenticated")
    web_anonymous = state.session_type.endswith("_web") and authenticated is False
    name = customer.get("name") or state.phone_number or email or f"Web user {state.session_id}"
    payload: dict[str, Any] = {
        "phone": "" if web_anonymous else state.phone_number,
        "email": "" if web_anonymous else email,
        "external_id": app_user_id,
        "name": name,
        # S5 applies to IVR callers only; other sessions identify their user.
        "ask_agent_when_several": state.session_type == "voice_inbound_ivr",
        "always_create": web_anonymous,
    }
    if state.outbound.get("contact_id"):
        payload["contact_id"] = str(state.outbound["contact_id"])
    return payload


def _contact_reason(payload: Mapping[str, Any]) -> str:
    if payload.get("contact_id"):
        return f"the agent's contact {payload['contact_id']} (outbound)"
    if payload.get("always_create"):
        return "new contact for an unauthenticated web user (S16)"
    keys = [f"{key} {payload[key]}" for key in ("external_id", "email", "phone") if payload.get(key)]
    return f"find the contact by {', '.join(keys) or 'nothing known'}, or create it (S16)"


def _planned_assignee(rules: RuleSet, state: SessionState, plan: CreationPlan) -> str:
    if plan.mode == RecordMode.VOICEMAIL:
        return rules.voicemail_default_user_email
    return state.agent_email if plan.assign else ""


def _plan_creation(rules: RuleSet, state: SessionState, plan: CreationPlan, event_id: str) -> list[PlannedAction]:
    info = SESSION_TYPES.get(state.session_type)
    contact = _contact_payload(state)
    tags = [rules.product_tag] if rules.add_product_tag and rules.product_tag else []
    assignee = _planned_assignee(rules, state, plan)
    record: dict[str, Any] = {
        "mode": plan.mode,
        "subject": render_title(rules.title_template, state),
        "session_type_name": info.name if info and rules.tag_session_type else "",
        "tags": tags,
        "first_comment": standard_data_comment(state),
        "assignee_email": assignee,
        "external_id": state.session_id,
        "channel": state.channel,
        "queue_id": state.queue_id,
        "leaf_queue": state.leaf_queue,
        "menu_path": state.menu_path,
        "fields": fields_at_start(state),
        "mapped_fields": mapped_custom_data(rules, state),
        "mapped_keys": {field_id: key for key, field_id in rules.custom_data_mapping.items()},
        "policy": {
            "append_to_open_records": rules.append_to_open_records,
            "append_to_recently_closed": rules.append_to_recently_closed,
            "closed_within_days": rules.closed_within_days,
            "never_append": rules.never_append,
        },
        "outbound_record_id": str(state.outbound.get("record_id") or ""),
        "entered_number": state.phone_number if state.outbound.get("entered_number") else "",
        "callback": dict(state.callback),
        "phone_number": state.phone_number,
    }
    if plan.mode == RecordMode.VOICEMAIL and not assignee:
        record["note"] = "no CRM default user is set for voicemail records (S4): left unassigned"
    return [
        PlannedAction(
            kind=ActionKind.ENSURE_CONTACT,
            payload=contact,
            rule="S16",
            reason=_contact_reason(contact),
            key="ensure_contact",
            event_id=event_id,
        ),
        PlannedAction(
            kind=ActionKind.CREATE_RECORD,
            payload=record,
            rule=plan.rule,
            reason=f"{plan.why}: {_mode_words(plan.mode)}",
            key="create_record",
            event_id=event_id,
        ),
    ]


def _mode_words(mode: str) -> str:
    return {
        RecordMode.INBOUND: "append to a matching open record or create one",
        RecordMode.OUTBOUND: "append to the contact's latest record if open, else create one",
        RecordMode.VOICEMAIL: "create a voicemail record",
        RecordMode.CALLBACK: "append to the original call's open record",
        RecordMode.NEW: "create a record",
    }[mode]


# -- What each later event adds ----------------------------------------------------------------


def _comment(
    event: SessionEvent, body: str, rule: str, reason: str, attachment: Mapping[str, Any] | None = None
) -> PlannedAction:
    payload: dict[str, Any] = {"body": body}
    if attachment:
        payload["attachment"] = dict(attachment)
    return PlannedAction(
        kind=ActionKind.ADD_COMMENT,
        payload=payload,
        rule=rule,
        reason=reason,
        key=f"comment:{event.event_id}",
        event_id=event.event_id,
    )


def _update(event: SessionEvent, payload: Mapping[str, Any], rule: str, reason: str, key: str = "") -> PlannedAction:
    return PlannedAction(
        kind=ActionKind.UPDATE_RECORD,
        payload=dict(payload),
        rule=rule,
        reason=reason,
        key=f"update:{key or event.event_id}",
        event_id=event.event_id,
    )


def _follow_ups(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    """What an event adds to the session's record once there is one (or will be)."""
    data = event.data
    kind = event.type
    if kind == EventType.SESSION_ENDED:
        actions = []
        if state.channel == "voice":
            body = call_finished_comment(data, state.session_id)
            actions.append(_comment(event, body, "S8", "the call ended: call_finished entry"))
        fields = fields_at_end(state, data)
        actions.append(_update(event, {"fields": fields}, "F2", "the session ended: fill the session's fields"))
        return actions
    if kind == EventType.RECORDING_READY:
        return [_comment(event, f"Call recording: {data.get('url', '')}", "S8", "the call recording is ready")]
    if kind == EventType.VOICEMAIL_LEFT:
        body = f"Voicemail: {data.get('recording_url', '')}\nDuration: {_format_seconds(data.get('duration'))}"
        return [_comment(event, body, "S4", "the voicemail recording")]
    if kind == EventType.SESSION_TRANSFERRED:
        email = ((data.get("to_agent") or {}).get("email") or "").lower()
        return [_update(event, {"assignee_email": email}, "S9", f"transferred: reassign to {email}")]
    if kind == EventType.TRANSCRIPT_READY:
        text = data.get("text") or ""
        url = data.get("url") or ""
        if state.channel == "chat":
            body = f"Chat transcript of {state.session_id}" + (f" ({url})" if url else "")
            attachment = {"filename": f"transcript-{state.session_id}.txt", "content_type": "text/plain", "text": text}
            return [_comment(event, body, "S14", "the chat transcript, attached as a file", attachment)]
        return [_comment(event, f"Transcript:\n{text}" + (f"\n{url}" if url else ""), "S14", "the call transcript")]
    if kind == EventType.CSAT_SUBMITTED:
        body = f"CSAT rating: {data.get('rating')}/5" + (f"\nComment: {data['comment']}" if data.get("comment") else "")
        fields = {"csat_rating": data.get("rating"), "csat_comment": data.get("comment") or ""}
        return [
            _comment(event, body, "S12", "the customer rated the session"),
            _update(event, {"fields": fields}, "F2", "CSAT fields", key=f"{event.event_id}:fields"),
        ]
    if kind == EventType.SMARTACTION_COMPLETED:
        lines = [f"SmartAction {data.get('kind')} completed"]
        if data.get("result") not in (None, ""):
            lines.append(f"Result: {_plain_value(data.get('result'))}")
        lines += [f"File: {item.get('name') or 'file'} {item.get('url', '')}" for item in data.get("files") or ()]
        actions = [_comment(event, "\n".join(lines), "S10", "SmartAction results and shared files")]
        smart_fields = {}
        if data.get("kind") == "verification":
            smart_fields["verification_result"] = _plain_value(data.get("result"))
        if data.get("kind") == "text_input":
            smart_fields["customer_text_input"] = _plain_value(data.get("result"))
        if smart_fields:
            reason = "SmartAction fields"
            actions.append(_update(event, {"fields": smart_fields}, "F2", reason, key=f"{event.event_id}:fields"))
        return actions
    if kind == EventType.SMARTACTION_FAILED:
        body = f"SmartAction {data.get('kind')} failed: {data.get('error')}"
        return [_comment(event, body, "S10", "a SmartAction failed on the user's side")]
    if kind == EventType.VOICEMAIL_UPDATED:
        action = data.get("action")
        who = (data.get("agent") or {}).get("email") or "an agent"
        words = {"read": "read", "closed": "closed", "called_back": "called back"}.get(str(action), str(action))
        comment = _comment(event, f"Voicemail {words} by {who}", "S13", f"the voicemail was {words}")
        if action == "closed":
            close = _update(event, {"resolve": True}, "S13", "the voicemail was closed", key=f"{event.event_id}:close")
            return [comment, close]
        return [comment]
    if kind == EventType.API_RESPONSE:
        if rules.api_response_format == ApiResponseFormat.OFF:
            return []
        body = api_response_comment(data, rules.api_response_format)
        return [_comment(event, body, "S15", f"API direct access point answer ({rules.api_response_format})")]
    return []


def decide(rules: RuleSet, state: SessionState, event: SessionEvent) -> Decision:
    """Fold one event into the session and say which CRM actions it calls for, and why."""
    state = _fold(state, event)
    actions: list[PlannedAction] = []
    reasons: list[str] = []

    if not state.created:
        early = {"event_id": event.event_id, "type": event.type, "occurred_at": event.occurred_at.isoformat()}
        state = replace(state, early=(*state.early, early | {"data": dict(event.data)}))
        return Decision(state=state, actions=(), reason="waiting for session.created before any record is made")
    follow_ups = []
    if event.type == EventType.SESSION_CREATED and state.early:
        for early_event in state.early:
            earlier = SessionEvent(
                event_id=early_event["event_id"],
                type=early_event["type"],
                occurred_at=datetime.fromisoformat(early_event["occurred_at"]),
                data=early_event["data"],
            )
            follow_ups += _follow_ups(rules, state, earlier)
        state = replace(state, early=())
    follow_ups += _follow_ups(rules, state, event)
    state = _answering_agent(state, event)
    if state.record_planned:
        state, follow_ups = _fold_reassignment(state, follow_ups)
    if follow_ups and not state.record_planned:
        state = replace(state, deferred=state.deferred + tuple(follow_ups))
        reasons.append("waits for the session's record")
    else:
        actions += follow_ups

    plan = _creation_due(rules, state, event)
    if isinstance(plan, CreationPlan):
        actions += _plan_creation(rules, state, plan, event.event_id)
        actions += state.deferred
        assignee = "" if plan.mode == RecordMode.VOICEMAIL else _planned_assignee(rules, state, plan)
        state = replace(state, record_planned=True, deferred=(), record_assignee=assignee, reassign_to="")
    elif isinstance(plan, CreationRefusal):
        state = replace(state, no_record_reason=f"{plan.rule}: {plan.why}", deferred=())
        reasons = [f"no record ({plan.rule}): {plan.why}"]

    reasons += [action.reason for action in actions]
    if not reasons:
        reasons.append(_why_nothing(rules, state, event))
    return Decision(state=state, actions=tuple(actions), reason="; ".join(reasons))


def _answering_agent(state: SessionState, event: SessionEvent) -> SessionState:
    """S2: the record goes to the agent who answers; one who was assigned but never answered does not keep it."""
    if event.type != EventType.SESSION_CONNECTED or not state.record_planned or not state.record_assignee:
        return state
    answered = ((event.data.get("agent") or {}).get("email") or "").lower()
    if not answered:
        return state
    # The same agent: nothing to change, and no call for it.
    return replace(state, reassign_to="" if answered == state.record_assignee else answered)


def _fold_reassignment(
    state: SessionState, follow_ups: list[PlannedAction]
) -> tuple[SessionState, list[PlannedAction]]:
    """Carry a pending reassignment in the first update the record gets anyway; note who it goes to."""
    folded = []
    for action in follow_ups:
        if action.kind == ActionKind.UPDATE_RECORD and action.payload.get("assignee_email"):
            # A transfer names the new assignee itself (S9): nothing is pending after it.
            state = replace(state, record_assignee=str(action.payload["assignee_email"]), reassign_to="")
        elif action.kind == ActionKind.UPDATE_RECORD and state.reassign_to:
            payload = {**action.payload, "assignee_email": state.reassign_to}
            reason = f"{action.reason}; reassign to {state.reassign_to}, the agent who answered (S2)"
            action = replace(action, payload=payload, reason=reason)
            state = replace(state, record_assignee=state.reassign_to, reassign_to="")
        folded.append(action)
    return state, folded


def _why_nothing(rules: RuleSet, state: SessionState, event: SessionEvent) -> str:
    if not state.created:
        return "waiting for session.created before any record is made"
    if state.no_record_reason:
        return f"no record for this session ({state.no_record_reason})"
    if event.type == EventType.SESSION_CREATED:
        if state.channel == "voice":
            trigger = "connection (R3)" if rules.create_call_record_on_connect else "assignment"
        elif rules.delay_chat_until_messages:
            trigger = f"assignment and {rules.chat_min_messages} consumer message(s) (R4)"
        else:
            trigger = "assignment"
        return f"session recorded; its record is created at {trigger}"
    if event.type == EventType.MESSAGE_RECEIVED and not state.record_planned:
        return f"{state.consumer_messages} consumer message(s) so far"
    if event.type == EventType.SESSION_CONNECTED and state.reassign_to:
        return f"answered by {state.reassign_to}: the record's next update reassigns it (S2)"
    if event.type in (EventType.SESSION_ASSIGNED, EventType.SESSION_CONNECTED) and state.record_planned:
        return "record already requested for this session"
    if event.type == EventType.SESSION_ASSIGNED and rules.create_call_record_on_connect and state.channel == "voice":
        return "assigned; the record waits for the connection (R3)"
    if event.type == EventType.CONTACT_SELECTED:
        return f"the agent picked contact {state.selected_contact_id} (S5)"
    if event.type == EventType.SESSION_CALLBACK:
        return f"call back of {state.callback.get('original_session_id') or 'an earlier call'} (S7)"
    if event.type == EventType.API_RESPONSE:
        return "API responses are not posted (S15 is off)"
    return f"no CRM change for {event.type}"


def replay(rules: RuleSet, state: SessionState, events: Sequence[SessionEvent]) -> list[Decision]:
    """Decide a run of events in order (occurred_at is the caller's sort)."""
    decisions = []
    for event in events:
        decision = decide(rules, state, event)
        decisions.append(decision)
        state = decision.state
    return decisions


# -- Choices among CRM candidates (made in the executor, decided here) ------------------------


@dataclass(frozen=True)
class Candidate:
    """One of the contact's CRM records, with what the product knows of the session that made it."""

    record_id: str
    status: str
    is_open: bool
    can_reopen: bool
    updated_at: datetime | None
    # When the CRM solved or closed it (Zendesk's solved_at metric, Kustomer's last done); R2
    # counts from this, never from the last update (an automation's tag or survey moves that).
    closed_at: datetime | None = None
    # From the latest of our sessions linked to the record; empty when no session of ours made it.
    queue_id: str = ""
    leaf_queue: str = ""
    menu_path: str = ""
    channel: str = ""
    voicemail: bool = False


@dataclass(frozen=True)
class RecordChoice:
    record_id: str | None
    reopen: bool
    reason: str

    @property
    def creates(self) -> bool:
        return self.record_id is None


@dataclass(frozen=True)
class RecordRequest:
    mode: str
    channel: str = ""
    queue_id: str = ""
    leaf_queue: str = ""
    menu_path: str = ""
    session_type: str = ""
    append_to_open_records: bool = True
    append_to_recently_closed: bool = False
    closed_within_days: int = 3
    never_append: bool = False
    outbound_record_id: str = ""
    # S7: the original session's record, and how long that call lasted.
    callback_kind: str = ""
    original_record_id: str = ""
    original_call_seconds: float | None = None


def record_request(
    payload: Mapping[str, Any],
    *,
    session_type: str,
    original_record_id: str = "",
    original_call_seconds: float | None = None,
) -> RecordRequest:
    """The record lookup a create_record action asks for (its payload), for choose_record."""
    policy = payload.get("policy") or {}
    callback = payload.get("callback") or {}
    return RecordRequest(
        mode=payload.get("mode") or RecordMode.NEW,
        channel=payload.get("channel") or "",
        queue_id=payload.get("queue_id") or "",
        leaf_queue=payload.get("leaf_queue") or "",
        menu_path=payload.get("menu_path") or "",
        session_type=session_type,
        append_to_open_records=bool(policy.get("append_to_open_records", True)),
        append_to_recently_closed=bool(policy.get("append_to_recently_closed", False)),
        closed_within_days=int(policy.get("closed_within_days") or 3),
        never_append=bool(policy.get("never_append", False)),
        outbound_record_id=payload.get("outbound_record_id") or "",
        callback_kind=callback.get("kind") or "",
        original_record_id=original_record_id,
        original_call_seconds=original_call_seconds,
    )


def _describe(candidate: Candidate) -> str:
    return f"record {candidate.record_id} ({candidate.status})"


def choose_record(request: RecordRequest, candidates: Sequence[Candidate], now: datetime) -> RecordChoice:
    """Which record the session lands on: an existing one (maybe reopened) or a new one, and why."""
    newest_first = sorted(candidates, key=lambda c: c.updated_at or datetime.min.replace(tzinfo=now.tzinfo))
    newest_first.reverse()
    by_id = {candidate.record_id: candidate for candidate in candidates}

    if request.mode == RecordMode.NEW:
        return RecordChoice(None, False, "new record")
    if request.mode == RecordMode.VOICEMAIL:
        open_ones = sum(1 for candidate in candidates if candidate.is_open)
        return RecordChoice(None, False, f"new voicemail record even with {open_ones} open record(s) (S4)")

    if request.mode == RecordMode.CALLBACK:
        original = by_id.get(request.original_record_id)
        short = (
            request.original_call_seconds is not None and request.original_call_seconds < CALLBACK_SHORT_CALL_SECONDS
        )
        if request.callback_kind == "callback_button" and not short:
            return _choose_outbound(request, newest_first, by_id, "call back after a call of 10 s or more: ")
        if original is not None and original.is_open:
            how = "hang up and call back" if request.callback_kind == "hangup_and_callback" else "a call under 10 s"
            return RecordChoice(
                original.record_id, False, f"appended to {_describe(original)}: call back after {how} (S7)"
            )
        missing = "is not open" if original else "is unknown"
        return RecordChoice(None, False, f"new record: the original call's record {missing} (S7)")

    if request.never_append:
        return RecordChoice(None, False, "new record: appending to existing records is off (R9)")

    if request.mode == RecordMode.OUTBOUND:
        return _choose_outbound(request, newest_first, by_id, "")

    if not request.append_to_open_records:
        return RecordChoice(None, False, "new record: appending to open records is off (R1)")
    same = [
        candidate
        for candidate in newest_first
        if candidate.queue_id == request.queue_id
        and candidate.menu_path == request.menu_path
        and candidate.channel == request.channel
        and not candidate.voicemail
    ]
    queue, menu = request.leaf_queue or "none", request.menu_path or "none"
    match = f"same contact, queue {queue}, menu {menu}, channel {request.channel}"
    for candidate in same:
        if candidate.is_open:
            return RecordChoice(candidate.record_id, False, f"appended to {_describe(candidate)}: {match} (R1/S6)")
    # S4: a voicemail record can be reused by a later IVR call.
    if request.session_type == "voice_inbound_ivr":
        for candidate in newest_first:
            if candidate.voicemail and candidate.is_open:
                return RecordChoice(candidate.record_id, False, f"appended to voicemail {_describe(candidate)} (S4)")
    r2 = ""
    if request.append_to_recently_closed:
        since = now - timedelta(days=request.closed_within_days)
        within = f"closed within {request.closed_within_days} days"
        # Most recently closed first: that is the one the customer is calling back about.
        closed = sorted(
            ((c.closed_at, c) for c in same if not c.is_open and c.closed_at is not None),
            key=lambda pair: pair[0],
            reverse=True,
        )
        for closed_at, candidate in closed:
            if candidate.can_reopen and closed_at >= since:
                closed_on = closed_at.strftime("%Y-%m-%d %H:%M UTC")
                reason = (
                    f"appended to {_describe(candidate)}, {within} (closed {closed_on}), and reopened: {match} (R2)"
                )
                return RecordChoice(candidate.record_id, True, reason)
        if closed:
            closed_at, latest = closed[0]
            when = closed_at.strftime("%Y-%m-%d")
            r2 = f"; no record {within} can be reopened (R2): the latest, record {latest.record_id}, was closed {when}"
    others = ", ".join(_describe(candidate) for candidate in newest_first[:5]) or "none"
    return RecordChoice(None, False, f"new record: no open record with {match} (contact's records: {others}){r2}")


def _choose_outbound(
    request: RecordRequest, newest_first: Sequence[Candidate], by_id: Mapping[str, Candidate], prefix: str
) -> RecordChoice:
    if request.never_append:
        return RecordChoice(None, False, f"{prefix}new record: appending to existing records is off (R9)")
    if request.outbound_record_id:
        chosen = by_id.get(request.outbound_record_id)
        if chosen is not None and chosen.is_open:
            return RecordChoice(
                chosen.record_id, True, f"{prefix}appended to the agent's choice {_describe(chosen)} (O1)"
            )
        return RecordChoice(
            None, False, f"{prefix}new record: the chosen record {request.outbound_record_id} is not open"
        )
    if not newest_first:
        return RecordChoice(None, False, f"{prefix}new record: the contact has no record (S3)")
    latest = newest_first[0]
    if latest.is_open:
        return RecordChoice(
            latest.record_id, True, f"{prefix}appended to the latest {_describe(latest)}, set open (S3)"
        )
    return RecordChoice(None, False, f"{prefix}new record: the latest {_describe(latest)} is not open (S3)")


def choose_contact(contacts: Sequence[Contact]) -> Contact | None:
    """Several contacts share the number: the most recently created one (S5's fallback)."""
    # Ids break ties within a second: CRMs hand them out in increasing order.
    return max(contacts, key=lambda contact: (contact.created_at or "", contact.id.zfill(40)), default=None)
