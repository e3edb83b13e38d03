"""`decide`: one event folded into the session, and the CRM actions it calls for, with the reason."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from records.rules.actions import UpdateRecord
from records.rules.creation import CreationPlan, CreationRefusal, creation_due, plan_creation, planned_assignee
from records.rules.follow_ups import follow_ups
from records.rules.ruleset import RecordMode, RuleSet
from records.rules.state import Decision, PlannedAction, SessionEvent, SessionState, fold
from records.vocabulary import Channel, EventType

WAITING_FOR_CREATED = "waiting for session.created before any record is made"


def decide(rules: RuleSet, state: SessionState, event: SessionEvent) -> Decision:
    """Fold one event into the session and say which CRM actions it calls for, and why."""
    state = fold(state, event)
    if not state.created:
        early = {"event_id": event.event_id, "type": event.type, "occurred_at": event.occurred_at.isoformat()}
        state = replace(state, early=(*state.early, early | {"data": dict(event.data)}))
        return Decision(state=state, actions=(), reason=WAITING_FOR_CREATED)

    actions: list[PlannedAction] = []
    reasons: list[str] = []
    state, planned = _follow_ups_now(rules, state, event)
    state = _answering_agent(state, event)
    if state.record_planned:
        state, planned = _fold_reassignment(state, planned)
    if planned and not state.record_planned:
        state = replace(state, deferred=state.deferred + tuple(planned))
        reasons.append("waits for the session's record")
    else:
        actions += planned

    plan = creation_due(rules, state, event)
    if isinstance(plan, CreationPlan):
        actions += plan_creation(rules, state, plan, event.event_id)
        actions += state.deferred
        assignee = "" if plan.mode == RecordMode.VOICEMAIL else planned_assignee(rules, state, plan)
        state = replace(state, record_planned=True, deferred=(), record_assignee=assignee, reassign_to="")
    elif isinstance(plan, CreationRefusal):
        state = replace(state, no_record_reason=f"{plan.rule}: {plan.why}", deferred=())
        reasons = [f"no record ({plan.rule}): {plan.why}"]

    reasons += [action.reason for action in actions]
    if not reasons:
        reasons.append(why_nothing(rules, state, event))
    return Decision(state=state, actions=tuple(actions), reason="; ".join(reasons))


def _follow_ups_now(
    rules: RuleSet, state: SessionState, event: SessionEvent
) -> tuple[SessionState, list[PlannedAction]]:
    """This event's follow-ups, after those of the events that came before session.created."""
    planned: list[PlannedAction] = []
    if event.type == EventType.SESSION_CREATED and state.early:
        for early_event in state.early:
            earlier = SessionEvent(
                event_id=early_event["event_id"],
                type=early_event["type"],
                occurred_at=datetime.fromisoformat(early_event["occurred_at"]),
                data=early_event["data"],
            )
            planned += follow_ups(rules, state, earlier)
        state = replace(state, early=())
    planned += follow_ups(rules, state, event)
    return state, planned


def _answering_agent(state: SessionState, event: SessionEvent) -> SessionState:
    """S2: the record goes to the agent who answers; one who was assigned but never answered does not keep it."""
    if event.type != EventType.SESSION_CONNECTED or not state.record_planned or not state.record_assignee:
        return state
    answered = ((event.data.get("agent") or {}).get("email") or "").lower()
    if not answered:
        return state
    # The same agent: nothing to change, and no call for it.
    return replace(state, reassign_to="" if answered == state.record_assignee else answered)


def _fold_reassignment(state: SessionState, planned: list[PlannedAction]) -> tuple[SessionState, list[PlannedAction]]:
    """Carry a pending reassignment in the first update the record gets anyway; note who it goes to."""
    folded = []
    for action in planned:
        update = action.payload
        if isinstance(update, UpdateRecord) and update.assignee_email:
            # A transfer names the new assignee itself (S9): nothing is pending after it.
            state = replace(state, record_assignee=update.assignee_email, reassign_to="")
        elif isinstance(update, UpdateRecord) and state.reassign_to:
            payload = replace(update, assignee_email=state.reassign_to)
            reason = f"{action.reason}; reassign to {state.reassign_to}, the agent who answered (S2)"
            action = replace(action, payload=payload, reason=reason)
            state = replace(state, record_assignee=state.reassign_to, reassign_to="")
        folded.append(action)
    return state, folded


# -- Why an event changed nothing in the CRM (shown on the event in the admin) ---------------------

# Each returns the words when they apply to this event, else None.
Silence = Callable[[RuleSet, SessionState, SessionEvent], str | None]


def _created_words(rules: RuleSet, state: SessionState, event: SessionEvent) -> str:
    if state.channel == Channel.VOICE:
        trigger = "connection (R3)" if rules.create_call_record_on_connect else "assignment"
    elif rules.delay_chat_until_messages:
        trigger = f"assignment and {rules.chat_min_messages} consumer message(s) (R4)"
    else:
        trigger = "assignment"
    return f"session recorded; its record is created at {trigger}"


def _message_words(rules: RuleSet, state: SessionState, event: SessionEvent) -> str | None:
    return None if state.record_planned else f"{state.consumer_messages} consumer message(s) so far"


def _assigned_words(rules: RuleSet, state: SessionState, event: SessionEvent) -> str | None:
    if state.record_planned:
        return "record already requested for this session"
    if rules.create_call_record_on_connect and state.channel == Channel.VOICE:
        return "assigned; the record waits for the connection (R3)"
    return None


def _connected_words(rules: RuleSet, state: SessionState, event: SessionEvent) -> str | None:
    if state.reassign_to:
        return f"answered by {state.reassign_to}: the record's next update reassigns it (S2)"
    return "record already requested for this session" if state.record_planned else None


def _outbound_words(rules: RuleSet, state: SessionState, event: SessionEvent) -> str | None:
    if not state.record_planned:
        return None
    # The adapter's start and the platform's own outbound.started describe one call (ADAPTER.md).
    return "the outbound call's record was already requested (the adapter's start): applied once"


SILENCES: Mapping[str, Silence] = {
    EventType.SESSION_CREATED: _created_words,
    EventType.MESSAGE_RECEIVED: _message_words,
    EventType.SESSION_CONNECTED: _connected_words,
    EventType.SESSION_ASSIGNED: _assigned_words,
    EventType.OUTBOUND_STARTED: _outbound_words,
    EventType.CONTACT_SELECTED: lambda rules, state, event: (
        f"the agent picked contact {state.selected_contact_id} (S5)"
    ),
    EventType.SESSION_CALLBACK: lambda rules, state, event: (
        f"call back of {state.callback.get('original_session_id') or 'an earlier call'} (S7)"
    ),
    EventType.API_RESPONSE: lambda rules, state, event: "API responses are not posted (S15 is off)",
}


def why_nothing(rules: RuleSet, state: SessionState, event: SessionEvent) -> str:
    if not state.created:
        return WAITING_FOR_CREATED
    if state.no_record_reason:
        return f"no record for this session ({state.no_record_reason})"
    words = SILENCES.get(event.type)
    return (words(rules, state, event) if words else None) or f"no CRM change for {event.type}"


def replay(rules: RuleSet, state: SessionState, events: Sequence[SessionEvent]) -> list[Decision]:
    """Decide a run of events in order (occurred_at is the caller's sort)."""
    decisions = []
    for event in events:
        decision = decide(rules, state, event)
        decisions.append(decision)
        state = decision.state
    return decisions
