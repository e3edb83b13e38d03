"""The session as the rules see it, and how each event folds into it (facts only, no decision)."""

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from records.rules.actions import ActionPayload, action_payload
from records.vocabulary import EventType


@dataclass(frozen=True)
class SessionEvent:
    event_id: str
    type: str
    occurred_at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True)
class PlannedAction:
    payload: ActionPayload
    rule: str
    reason: str
    # Unique within the session: the outbox's idempotency key is `<session row id>:<key>`.
    key: str
    # The event that called for it (a deferred comment keeps its own event).
    event_id: str = ""

    @property
    def kind(self) -> str:
        return self.payload.KIND

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "payload": self.payload.to_json(),
            "rule": self.rule,
            "reason": self.reason,
            "key": self.key,
            "event_id": self.event_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "PlannedAction":
        return cls(
            payload=action_payload(data["kind"], data["payload"]),
            rule=data["rule"],
            reason=data["reason"],
            key=data["key"],
            event_id=data.get("event_id") or "",
        )


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
        return {**asdict(self), "deferred": [action.to_json() for action in self.deferred]}

    @classmethod
    def from_json(cls, session_id: str, data: Mapping[str, Any]) -> "SessionState":
        if not data:
            return cls(session_id=session_id)
        values = dict(data)
        values["queue_path"] = tuple(values.get("queue_path") or ())
        values["deferred"] = tuple(PlannedAction.from_json(action) for action in values.get("deferred") or ())
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


# -- Folding events ----------------------------------------------------------------------------

# The facts one event type adds to the session: (state before, event) -> the fields that change.
Fold = Callable[[SessionState, SessionEvent], dict[str, Any]]


def _sets(**facts: Any) -> Fold:
    """A fold that sets fixed facts whatever the event carries."""

    def fold(state: SessionState, event: SessionEvent) -> dict[str, Any]:
        return dict(facts)

    return fold


def _fold_created(state: SessionState, event: SessionEvent) -> dict[str, Any]:
    data = event.data
    customer = data.get("customer") or {}
    return {
        "created": True,
        "channel": data.get("channel") or "",
        "session_type": data.get("session_type") or "",
        "phone_number": data.get("phone_number") or customer.get("phone") or state.phone_number,
        "dialed_number": data.get("dialed_number") or "",
        "language": data.get("language") or "",
        "menu_path": data.get("menu_path") or "",
        "customer": dict(customer),
        "custom_data": dict(data.get("custom_data") or {}),
        "started_at": event.occurred_at.isoformat(),
    }


def _fold_message(state: SessionState, event: SessionEvent) -> dict[str, Any]:
    if event.data.get("sender") != "consumer":
        return {}
    return {"consumer_messages": state.consumer_messages + 1}


def _fold_outbound(state: SessionState, event: SessionEvent) -> dict[str, Any]:
    data = event.data
    return {
        "outbound": {
            key: data.get(key) for key in ("contact_id", "record_id", "choice", "entered_number", "phone_number")
        },
        "phone_number": data.get("phone_number") or state.phone_number,
        "assigned": True,
    }


def _fold_callback(state: SessionState, event: SessionEvent) -> dict[str, Any]:
    data = event.data
    return {"callback": {"kind": data.get("kind"), "original_session_id": data.get("original_session_id") or ""}}


def _fold_contact_selected(state: SessionState, event: SessionEvent) -> dict[str, Any]:
    return {"selected_contact_id": str(event.data.get("contact_id") or "")}


FOLDS: Mapping[str, Fold] = {
    EventType.SESSION_CREATED: _fold_created,
    EventType.SESSION_ASSIGNED: _sets(assigned=True),
    EventType.SESSION_CONNECTED: _sets(connected=True),
    EventType.SESSION_ENDED: _sets(ended=True),
    EventType.SESSION_ABANDONED: _sets(ended=True, abandoned=True),
    EventType.VOICEMAIL_LEFT: _sets(voicemail=True, ended=True),
    EventType.MESSAGE_RECEIVED: _fold_message,
    EventType.OUTBOUND_STARTED: _fold_outbound,
    EventType.SESSION_CALLBACK: _fold_callback,
    EventType.CONTACT_SELECTED: _fold_contact_selected,
}


def _common_facts(event: SessionEvent) -> dict[str, Any]:
    """What any event may carry: the agent (except a voicemail's handler) and the queue."""
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
    return changes


def fold(state: SessionState, event: SessionEvent) -> SessionState:
    """The session's facts after this event, before any decision."""
    changes = _common_facts(event)
    event_fold = FOLDS.get(event.type)
    if event_fold is not None:
        changes.update(event_fold(state, event))
    return replace(state, **changes)
