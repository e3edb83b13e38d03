"""When the session's record is made, how the executor finds it, and the two actions that make it."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from records.rules.actions import CallbackOf, CreateRecord, EnsureContact, RecordPolicy
from records.rules.ruleset import AbandonedChats, RecordMode, RuleSet
from records.rules.state import PlannedAction, SessionEvent, SessionState
from records.rules.texts import fields_at_start, mapped_custom_data, render_title, standard_data_comment
from records.vocabulary import SESSION_TYPES, Channel, SessionType


@dataclass(frozen=True)
class CreationPlan:
    rule: str
    mode: RecordMode
    why: str
    assign: bool = True


@dataclass(frozen=True)
class CreationRefusal:
    rule: str
    why: str


Due = CreationPlan | CreationRefusal | None
# The agent's choice in the adapter for an outbound call (O1); anything else is S3's lookup.
_OUTBOUND_CHOICES: Mapping[str, CreationPlan | CreationRefusal] = {
    "none": CreationRefusal("O1", "the agent chose not to create a record for this outbound call"),
    "new": CreationPlan("O1", RecordMode.NEW, "the agent chose to create a new record"),
}
_OUTBOUND_LOOKUP = CreationPlan("S3", RecordMode.OUTBOUND, "outbound call")


def creation_due(rules: RuleSet, state: SessionState, event: SessionEvent) -> Due:
    """The plan that makes (or finds) the record now; a refusal when none will be made; None to wait."""
    if state.record_planned or state.no_record_reason or not state.created:
        return None
    if state.voicemail:
        return CreationPlan("S4", RecordMode.VOICEMAIL, "a voicemail always gets its own record", assign=False)
    if state.outbound:
        return _OUTBOUND_CHOICES.get(state.outbound.get("choice") or "", _OUTBOUND_LOOKUP)
    # Only an explicit abandon decides that no agent will come: an end without an assignment may
    # just have overtaken the assignment event, which then still makes the record.
    if state.abandoned and not (state.assigned or state.connected):
        return abandoned_plan(rules, state, event)
    channel_due = _CHANNEL_DUE.get(state.channel)
    return channel_due(rules, state, event) if channel_due else None


def _voice_due(rules: RuleSet, state: SessionState, event: SessionEvent) -> Due:
    if rules.create_call_record_on_connect:
        if state.connected:
            return inbound_plan(state, "R3", "the call was connected to the agent (R3)")
        if state.abandoned:
            return abandoned_plan(rules, state, event)
        return None
    if state.assigned or state.connected:
        return inbound_plan(state, "S2", "the call was assigned to an agent")
    return None


def _chat_due(rules: RuleSet, state: SessionState, event: SessionEvent) -> Due:
    if not (state.assigned or state.connected):
        return None
    if not rules.delay_chat_until_messages:
        return inbound_plan(state, "S1", "the chat was assigned to an agent")
    if state.consumer_messages >= rules.chat_min_messages:
        return inbound_plan(state, "R4", f"the consumer sent {state.consumer_messages} message(s) (R4)")
    if state.abandoned:
        return abandoned_plan(rules, state, event)
    return None


_CHANNEL_DUE: Mapping[str, Callable[[RuleSet, SessionState, SessionEvent], Due]] = {
    Channel.VOICE: _voice_due,
    Channel.CHAT: _chat_due,
}


def inbound_plan(state: SessionState, rule: str, why: str) -> CreationPlan:
    if state.callback:
        return CreationPlan("S7", RecordMode.CALLBACK, f"{why}; it is a call back ({state.callback.get('kind')})")
    return CreationPlan(rule, RecordMode.INBOUND, why)


def abandoned_plan(rules: RuleSet, state: SessionState, event: SessionEvent) -> CreationPlan | CreationRefusal:
    if state.channel == Channel.VOICE:
        return _abandoned_call_plan(rules)
    return _abandoned_chat_plan(rules, state, event)


def _abandoned_call_plan(rules: RuleSet) -> CreationPlan | CreationRefusal:
    """R5."""
    if rules.abandoned_call_records:
        return CreationPlan("R5", RecordMode.NEW, "the caller hung up before reaching an agent", assign=False)
    reason = "the caller hung up before reaching an agent and abandoned-call records are off (R5)"
    if rules.create_call_record_on_connect:
        reason = "the call never connected to an agent (R3) and abandoned-call records are off (R5)"
    return CreationRefusal("R5", reason)


def _abandoned_chat_plan(rules: RuleSet, state: SessionState, event: SessionEvent) -> CreationPlan | CreationRefusal:
    """R6."""
    wait = event.data.get("wait_time")
    short = isinstance(wait, int | float) and not isinstance(wait, bool) and wait < rules.short_abandon_seconds
    kind = f"short-abandoned chat ({wait:g}s < {rules.short_abandon_seconds}s)" if short else "abandoned chat"
    if rules.abandoned_chat_records == AbandonedChats.ALL:
        return CreationPlan("R6", RecordMode.NEW, f"{kind}: records for all abandoned chats", assign=False)
    if rules.abandoned_chat_records != AbandonedChats.MIN_MESSAGES:
        return CreationRefusal("R6", f"{kind}: abandoned-chat records are off")
    minimum = rules.abandoned_chat_min_messages
    if state.consumer_messages >= minimum:
        why = f"{kind} with {state.consumer_messages} consumer message(s), at least {minimum}"
        return CreationPlan("R6", RecordMode.NEW, why, assign=False)
    return CreationRefusal("R6", f"{kind} with {state.consumer_messages} of {minimum} consumer messages")


def contact_payload(state: SessionState) -> EnsureContact:
    """S16: the contact is found by app user id, email or phone, else created."""
    customer = state.customer
    email = customer.get("email") or ""
    web_anonymous = state.session_type.endswith("_web") and customer.get("authenticated") is False
    return EnsureContact(
        phone="" if web_anonymous else state.phone_number,
        email="" if web_anonymous else email,
        external_id=str(customer.get("app_user_id") or ""),
        name=customer.get("name") or state.phone_number or email or f"Web user {state.session_id}",
        # S5 applies to IVR callers only; other sessions identify their user.
        ask_agent_when_several=state.session_type == SessionType.VOICE_INBOUND_IVR,
        always_create=web_anonymous,
        contact_id=str(state.outbound.get("contact_id") or ""),
    )


def _contact_reason(payload: EnsureContact) -> str:
    if payload.contact_id:
        return f"the agent's contact {payload.contact_id} (outbound)"
    if payload.always_create:
        return "new contact for an unauthenticated web user (S16)"
    keys = [
        f"{key} {value}"
        for key, value in (("external_id", payload.external_id), ("email", payload.email), ("phone", payload.phone))
        if value
    ]
    return f"find the contact by {', '.join(keys) or 'nothing known'}, or create it (S16)"


def planned_assignee(rules: RuleSet, state: SessionState, plan: CreationPlan) -> str:
    if plan.mode == RecordMode.VOICEMAIL:
        return rules.voicemail_default_user_email
    return state.agent_email if plan.assign else ""


def plan_creation(rules: RuleSet, state: SessionState, plan: CreationPlan, event_id: str) -> list[PlannedAction]:
    info = SESSION_TYPES.get(state.session_type)
    contact = contact_payload(state)
    tags = (rules.product_tag,) if rules.add_product_tag and rules.product_tag else ()
    assignee = planned_assignee(rules, state, plan)
    record = CreateRecord(
        mode=plan.mode,
        subject=render_title(rules.title_template, state),
        session_type_name=info.name if info and rules.tag_session_type else "",
        tags=tags,
        first_comment=standard_data_comment(state),
        assignee_email=assignee,
        external_id=state.session_id,
        channel=state.channel,
        queue_id=state.queue_id,
        leaf_queue=state.leaf_queue,
        menu_path=state.menu_path,
        fields=fields_at_start(state),
        mapped_fields=mapped_custom_data(rules, state),
        mapped_keys={field_id: key for key, field_id in rules.custom_data_mapping.items()},
        policy=RecordPolicy(
            append_to_open_records=rules.append_to_open_records,
            append_to_recently_closed=rules.append_to_recently_closed,
            closed_within_days=rules.closed_within_days,
            never_append=rules.never_append,
        ),
        outbound_record_id=str(state.outbound.get("record_id") or ""),
        entered_number=state.phone_number if state.outbound.get("entered_number") else "",
        callback=CallbackOf(
            kind=str(state.callback.get("kind") or ""),
            original_session_id=str(state.callback.get("original_session_id") or ""),
        ),
        phone_number=state.phone_number,
        note=(
            "no CRM default user is set for voicemail records (S4): left unassigned"
            if plan.mode == RecordMode.VOICEMAIL and not assignee
            else ""
        ),
    )
    return [
        PlannedAction(
            payload=contact,
            rule="S16",
            reason=_contact_reason(contact),
            key="ensure_contact",
            event_id=event_id,
        ),
        PlannedAction(
            payload=record,
            rule=plan.rule,
            reason=f"{plan.why}: {MODE_WORDS[plan.mode]}",
            key="create_record",
            event_id=event_id,
        ),
    ]


MODE_WORDS: Mapping[str, str] = {
    RecordMode.INBOUND: "append to a matching open record or create one",
    RecordMode.OUTBOUND: "append to the contact's latest record if open, else create one",
    RecordMode.VOICEMAIL: "create a voicemail record",
    RecordMode.CALLBACK: "append to the original call's open record",
    RecordMode.NEW: "create a record",
}
