"""What each event after the record's creation adds to it: one planner per event type."""

from collections.abc import Callable, Mapping

from records.rules.actions import AddComment, TranscriptFile, UpdateRecord
from records.rules.ruleset import ApiResponseFormat, RuleSet
from records.rules.state import PlannedAction, SessionEvent, SessionState
from records.rules.texts import api_response_comment, call_finished_comment, fields_at_end, format_seconds, plain_value
from records.vocabulary import Channel, EventType

FollowUp = Callable[[RuleSet, SessionState, SessionEvent], list[PlannedAction]]


def comment_action(
    event: SessionEvent, body: str, rule: str, reason: str, attachment: TranscriptFile | None = None
) -> PlannedAction:
    return PlannedAction(
        payload=AddComment(body=body, attachment=attachment),
        rule=rule,
        reason=reason,
        key=f"comment:{event.event_id}",
        event_id=event.event_id,
    )


def update_action(event: SessionEvent, payload: UpdateRecord, rule: str, reason: str, key: str = "") -> PlannedAction:
    return PlannedAction(
        payload=payload,
        rule=rule,
        reason=reason,
        key=f"update:{key or event.event_id}",
        event_id=event.event_id,
    )


def _ended(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    actions = []
    if state.channel == Channel.VOICE:
        body = call_finished_comment(event.data, state.session_id)
        actions.append(comment_action(event, body, "S8", "the call ended: call_finished entry"))
    fields = fields_at_end(state, event.data)
    actions.append(
        update_action(event, UpdateRecord(fields=fields), "F2", "the session ended: fill the session's fields")
    )
    return actions


def _recording(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    body = f"Call recording: {event.data.get('url', '')}"
    return [comment_action(event, body, "S8", "the call recording is ready")]


def _voicemail_left(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    data = event.data
    body = f"Voicemail: {data.get('recording_url', '')}\nDuration: {format_seconds(data.get('duration'))}"
    return [comment_action(event, body, "S4", "the voicemail recording")]


def _transferred(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    email = ((event.data.get("to_agent") or {}).get("email") or "").lower()
    return [update_action(event, UpdateRecord(assignee_email=email), "S9", f"transferred: reassign to {email}")]


def _transcript(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    text = event.data.get("text") or ""
    url = event.data.get("url") or ""
    if state.channel == Channel.CHAT:
        body = f"Chat transcript of {state.session_id}" + (f" ({url})" if url else "")
        attachment = TranscriptFile(filename=f"transcript-{state.session_id}.txt", text=text)
        return [comment_action(event, body, "S14", "the chat transcript, attached as a file", attachment)]
    body = f"Transcript:\n{text}" + (f"\n{url}" if url else "")
    return [comment_action(event, body, "S14", "the call transcript")]


def _csat(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    data = event.data
    body = f"CSAT rating: {data.get('rating')}/5" + (f"\nComment: {data['comment']}" if data.get("comment") else "")
    fields = {"csat_rating": data.get("rating"), "csat_comment": data.get("comment") or ""}
    return [
        comment_action(event, body, "S12", "the customer rated the session"),
        update_action(event, UpdateRecord(fields=fields), "F2", "CSAT fields", key=f"{event.event_id}:fields"),
    ]


# F2: the SmartAction kinds whose result also fills a record field.
SMARTACTION_FIELDS: Mapping[str, str] = {
    "verification": "verification_result",
    "text_input": "customer_text_input",
}


def _smartaction_completed(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    data = event.data
    lines = [f"SmartAction {data.get('kind')} completed"]
    if data.get("result") not in (None, ""):
        lines.append(f"Result: {plain_value(data.get('result'))}")
    lines += [f"File: {item.get('name') or 'file'} {item.get('url', '')}" for item in data.get("files") or ()]
    actions = [comment_action(event, "\n".join(lines), "S10", "SmartAction results and shared files")]
    field_id = SMARTACTION_FIELDS.get(str(data.get("kind")))
    if field_id:
        fields = {field_id: plain_value(data.get("result"))}
        actions.append(
            update_action(
                event, UpdateRecord(fields=fields), "F2", "SmartAction fields", key=f"{event.event_id}:fields"
            )
        )
    return actions


def _smartaction_failed(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    body = f"SmartAction {event.data.get('kind')} failed: {event.data.get('error')}"
    return [comment_action(event, body, "S10", "a SmartAction failed on the user's side")]


VOICEMAIL_ACTION_WORDS: Mapping[str, str] = {"read": "read", "closed": "closed", "called_back": "called back"}


def _voicemail_updated(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    action = event.data.get("action")
    who = (event.data.get("agent") or {}).get("email") or "an agent"
    words = VOICEMAIL_ACTION_WORDS.get(str(action), str(action))
    comment = comment_action(event, f"Voicemail {words} by {who}", "S13", f"the voicemail was {words}")
    if action != "closed":
        return [comment]
    close = update_action(
        event, UpdateRecord(resolve=True), "S13", "the voicemail was closed", key=f"{event.event_id}:close"
    )
    return [comment, close]


def _api_response(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    if rules.api_response_format == ApiResponseFormat.OFF:
        return []
    body = api_response_comment(event.data, rules.api_response_format)
    return [comment_action(event, body, "S15", f"API direct access point answer ({rules.api_response_format})")]


FOLLOW_UPS: Mapping[str, FollowUp] = {
    EventType.SESSION_ENDED: _ended,
    EventType.RECORDING_READY: _recording,
    EventType.VOICEMAIL_LEFT: _voicemail_left,
    EventType.SESSION_TRANSFERRED: _transferred,
    EventType.TRANSCRIPT_READY: _transcript,
    EventType.CSAT_SUBMITTED: _csat,
    EventType.SMARTACTION_COMPLETED: _smartaction_completed,
    EventType.SMARTACTION_FAILED: _smartaction_failed,
    EventType.VOICEMAIL_UPDATED: _voicemail_updated,
    EventType.API_RESPONSE: _api_response,
}


def follow_ups(rules: RuleSet, state: SessionState, event: SessionEvent) -> list[PlannedAction]:
    """What an event adds to the session's record once there is one (or will be)."""
    planner = FOLLOW_UPS.get(event.type)
    return planner(rules, state, event) if planner else []
