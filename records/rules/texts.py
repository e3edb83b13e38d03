"""The text and field values the CRM receives: titles, comments, notes and custom fields (F2)."""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from records.rules.ruleset import ApiResponseFormat, RuleSet
from records.rules.state import SessionState
from records.vocabulary import SESSION_TYPES, Channel, SessionType


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


def format_seconds(value: Any) -> str:
    """A duration as "5m 36s" (or "24s"); "unknown" when the platform sent no number."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "unknown"
    seconds = int(value)
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def standard_data_comment(state: SessionState) -> str:
    """S14 (and S1's description): call ID, language, menu selection, plus what the SDK sent."""
    info = SESSION_TYPES.get(state.session_type)
    id_label = "Chat ID" if state.channel == Channel.CHAT else "Call ID"
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
    if state.channel == Channel.CHAT or customer.get("app_user_id") or "authenticated" in customer:
        lines += [f"User {key.replace('_', ' ')}: {value}" for key, value in sorted(customer.items())]
    if state.custom_data:
        lines.append("Custom data:")
        lines += [f"  {key}: {plain_value(value)}" for key, value in sorted(state.custom_data.items())]
    return "\n".join(lines)


def plain_value(value: Any) -> str:
    """A value as a comment shows it: strings as they are, anything else as sorted JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def call_finished_comment(data: Mapping[str, Any], call_id: str = "") -> str:
    # The call id tells the sessions on one record apart, and keeps two calls of the same length
    # from reading as one comment when a retry looks for what an earlier attempt added.
    lines = [
        "call_finished",
        *([f"Call ID: {call_id}"] if call_id else []),
        f"Call duration: {format_seconds(data.get('call_duration'))}",
        f"Hold time: {format_seconds(data.get('hold_time'))}",
        f"Wait time: {format_seconds(data.get('wait_time'))}",
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
    lines = [f"{name}:"] + [f"{key}: {plain_value(value)}" for key, value in sorted(payload.items())]
    return "\n".join(lines)


def phone_number_note(state: SessionState) -> str:
    """S14 (Kustomer): the caller's number with its country code, as a note."""
    return f"Phone number: {state.phone_number}"


# -- Custom fields (F2) ------------------------------------------------------------------------


def fields_at_start(state: SessionState) -> dict[str, Any]:
    info = SESSION_TYPES.get(state.session_type)
    values: dict[str, Any] = {"session_type": info.name if info else state.session_type}
    # "From" is the number the agent called from on an outbound call, else the customer's.
    from_number = state.dialed_number if state.session_type == SessionType.VOICE_OUTBOUND else state.phone_number
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
