"""The rule engine: what the CRM must get for each session event. Pure functions only.

No ORM, settings, clock, logging or HTTP here: records.services turns rows into these dataclasses,
calls `decide`, and carries out what comes back. Delays are rules, not sleeps: an action whose
condition is not met yet waits in the state until the event that satisfies it arrives.
"""

import string
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from records.vocabulary import SESSION_TYPES, ActionKind, EventType

TITLE_VARIABLES = frozenset({"CALL_TYPE", "CALL_ID", "MENU_PATH", "PHONE_NUMBER", "LANGUAGE", "TIMESTAMP"})
DEFAULT_TITLE_TEMPLATE = "{CALL_TYPE} from {PHONE_NUMBER}"


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
    """The operation-management settings the rules read (R1-R9), with their defaults."""

    title_template: str = DEFAULT_TITLE_TEMPLATE
    # R3: create call records when the agent is connected rather than at assignment.
    create_call_record_on_connect: bool = False
    # R8: tag each record with its session type, and optionally a fixed product tag.
    tag_session_type: bool = True
    product_tag: str = ""


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
    language: str = ""
    menu_path: str = ""
    queue_name: str = ""
    queue_path: tuple[str, ...] = ()
    customer: Mapping[str, Any] = field(default_factory=dict)
    started_at: str = ""
    agent_email: str = ""
    assigned: bool = False
    connected: bool = False
    ended: bool = False
    record_planned: bool = False
    # Comments decided before the record was: they follow its creation.
    deferred: tuple[PlannedAction, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, session_id: str, data: Mapping[str, Any]) -> "SessionState":
        if not data:
            return cls(session_id=session_id)
        values = dict(data)
        values["queue_path"] = tuple(values.get("queue_path") or ())
        values["deferred"] = tuple(PlannedAction(**action) for action in values.get("deferred") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass(frozen=True)
class Decision:
    state: SessionState
    actions: tuple[PlannedAction, ...]
    # Why, in words: shown on the event in the admin.
    reason: str


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
    """S14: call ID, language and inbound menu selection, plus what identifies the session."""
    info = SESSION_TYPES.get(state.session_type)
    id_label = "Chat ID" if state.channel == "chat" else "Call ID"
    lines = [
        f"{id_label}: {state.session_id}",
        f"Session type: {info.call_type if info else state.session_type or 'unknown'}",
        f"Language: {state.language or 'unknown'}",
        f"Menu selection: {state.menu_path or 'none'}",
    ]
    if state.queue_path or state.queue_name:
        lines.append(f"Queue: {' > '.join(state.queue_path) or state.queue_name}")
    if state.phone_number:
        lines.append(f"Phone number: {state.phone_number}")
    return "\n".join(lines)


def call_finished_comment(data: Mapping[str, Any]) -> str:
    lines = [
        "call_finished",
        f"Call duration: {_format_seconds(data.get('call_duration'))}",
        f"Hold time: {_format_seconds(data.get('hold_time'))}",
        f"Wait time: {_format_seconds(data.get('wait_time'))}",
    ]
    if data.get("ended_by"):
        lines.append(f"Ended by: {data['ended_by']}")
    return "\n".join(lines)


def _fold(state: SessionState, event: SessionEvent) -> SessionState:
    """The session's facts after this event, before any decision."""
    data = event.data
    agent_email = (data.get("agent") or {}).get("email") or (data.get("to_agent") or {}).get("email")
    changes: dict[str, Any] = {}
    if agent_email:
        changes["agent_email"] = agent_email.lower()
    queue = data.get("queue")
    if isinstance(queue, Mapping):
        changes["queue_name"] = queue.get("name") or ""
        changes["queue_path"] = tuple(queue.get("path") or ())

    if event.type == EventType.SESSION_CREATED:
        customer = data.get("customer") or {}
        changes.update(
            created=True,
            channel=data.get("channel") or "",
            session_type=data.get("session_type") or "",
            phone_number=data.get("phone_number") or customer.get("phone") or "",
            language=data.get("language") or "",
            menu_path=data.get("menu_path") or "",
            customer=dict(customer),
            started_at=event.occurred_at.isoformat(),
        )
    elif event.type == EventType.SESSION_ASSIGNED:
        changes["assigned"] = True
    elif event.type == EventType.SESSION_CONNECTED:
        changes["connected"] = True
    elif event.type in (EventType.SESSION_ENDED, EventType.SESSION_ABANDONED):
        changes["ended"] = True
    return replace(state, **changes)


def _creation_due(rules: RuleSet, state: SessionState) -> str | None:
    """The rule that makes the record now, or None while creation must still wait."""
    if state.record_planned or not state.created:
        return None
    if state.channel == "voice" and rules.create_call_record_on_connect:
        return "R3" if state.connected else None
    # Default trigger: assignment. A connect without a prior assignment event still counts.
    if state.assigned or state.connected:
        return "S1" if state.channel == "chat" else "S2"
    return None


def _plan_creation(rules: RuleSet, state: SessionState, rule: str, event_id: str) -> list[PlannedAction]:
    info = SESSION_TYPES.get(state.session_type)
    customer = state.customer
    contact_name = customer.get("name") or state.phone_number or customer.get("email") or state.session_id
    trigger = "connected to the agent (R3)" if rule == "R3" else "assigned to an agent"
    return [
        PlannedAction(
            kind=ActionKind.ENSURE_CONTACT,
            payload={
                "phone": state.phone_number,
                "email": customer.get("email") or "",
                "name": contact_name,
            },
            rule="S16",
            reason=f"find the contact by {'phone ' + state.phone_number if state.phone_number else 'email'}, "
            "or create it",
            key="ensure_contact",
            event_id=event_id,
        ),
        PlannedAction(
            kind=ActionKind.CREATE_RECORD,
            payload={
                "subject": render_title(rules.title_template, state),
                "session_type_name": info.name if info and rules.tag_session_type else "",
                "tags": [rules.product_tag] if rules.product_tag else [],
                "first_comment": standard_data_comment(state),
                "assignee_email": state.agent_email,
                "external_id": state.session_id,
            },
            rule=rule,
            reason=f"new {state.channel or 'session'} record: the session was {trigger}",
            key="create_record",
            event_id=event_id,
        ),
    ]


def _comment(event: SessionEvent, body: str, rule: str, reason: str) -> PlannedAction:
    return PlannedAction(
        kind=ActionKind.ADD_COMMENT,
        payload={"body": body},
        rule=rule,
        reason=reason,
        key=f"comment:{event.event_id}",
        event_id=event.event_id,
    )


def _comments_for(event: SessionEvent) -> list[PlannedAction]:
    if event.type == EventType.SESSION_ENDED:
        return [_comment(event, call_finished_comment(event.data), "S8", "the session ended: call_finished entry")]
    if event.type == EventType.RECORDING_READY:
        body = f"Call recording: {event.data.get('url', '')}"
        return [_comment(event, body, "S8", "the call recording is ready")]
    return []


def decide(rules: RuleSet, state: SessionState, event: SessionEvent) -> Decision:
    """Fold one event into the session and say which CRM actions it calls for, and why."""
    state = _fold(state, event)
    actions: list[PlannedAction] = []
    reasons: list[str] = []

    comments = _comments_for(event)
    if comments and not state.record_planned:
        state = replace(state, deferred=state.deferred + tuple(comments))
        reasons.append("comment waits for the record to be created")
    else:
        actions += comments

    creation_rule = _creation_due(rules, state)
    if creation_rule:
        actions += _plan_creation(rules, state, creation_rule, event.event_id)
        actions += state.deferred
        state = replace(state, record_planned=True, deferred=())

    reasons += [action.reason for action in actions]
    if not reasons:
        reasons.append(_why_nothing(rules, state, event))
    return Decision(state=state, actions=tuple(actions), reason="; ".join(reasons))


def _why_nothing(rules: RuleSet, state: SessionState, event: SessionEvent) -> str:
    if not state.created:
        return "waiting for session.created before any record is made"
    if event.type == EventType.SESSION_CREATED:
        trigger = (
            "connection (R3)" if state.channel == "voice" and rules.create_call_record_on_connect else "assignment"
        )
        return f"session recorded; its record is created at {trigger}"
    if event.type in (EventType.SESSION_ASSIGNED, EventType.SESSION_CONNECTED) and state.record_planned:
        return "record already requested for this session"
    if event.type == EventType.SESSION_ABANDONED:
        return "abandoned before assignment: no record"
    return f"no CRM change for {event.type}"


def replay(rules: RuleSet, state: SessionState, events: Sequence[SessionEvent]) -> list[Decision]:
    """Decide a run of events in order (occurred_at is the caller's sort)."""
    decisions = []
    for event in events:
        decision = decide(rules, state, event)
        decisions.append(decision)
        state = decision.state
    return decisions
