"""The operation-management settings the rules read, their choices, and the title template's words."""

import enum
import string
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.db import models

TITLE_VARIABLES = frozenset({"CALL_TYPE", "CALL_ID", "MENU_PATH", "PHONE_NUMBER", "LANGUAGE", "TIMESTAMP"})
DEFAULT_TITLE_TEMPLATE = "{CALL_TYPE} from {PHONE_NUMBER}"
# S7: a call shorter than this, followed by the agent's Call back button, goes on the same record.
CALLBACK_SHORT_CALL_SECONDS = 10
# R2's default window, for the settings row, the rules and a record request alike.
DEFAULT_CLOSED_WITHIN_DAYS = 3


class RecordMode(enum.StrEnum):
    """How the executor finds the session's record (see choose_record)."""

    INBOUND = "inbound"  # S6 with R1/R2/R9: append to a matching open record, else create
    OUTBOUND = "outbound"  # S3: the contact's latest record if open, else create
    VOICEMAIL = "voicemail"  # S4: always a new voicemail record
    CALLBACK = "callback"  # S7: the original call's open record
    NEW = "new"  # a new record, no lookup (abandoned sessions, the agent's "create new")


class AbandonedChats(models.TextChoices):
    """R6 choices."""

    OFF = "off", "Off: no records"
    ALL = "all", "All abandoned chats"
    MIN_MESSAGES = "min_messages", "With at least N messages"


class ApiResponseFormat(models.TextChoices):
    """S15 choices."""

    OFF = "off", "Off"
    KEY_VALUE = "key_value", "Key-value pairs"
    JSON = "json", "JSON"


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
    closed_within_days: int = DEFAULT_CLOSED_WITHIN_DAYS
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
