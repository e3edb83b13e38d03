"""The rule engine: what the CRM must get for each session event. Pure functions only.

No ORM, settings, clock, logging or HTTP here: records.services turns rows into these dataclasses,
calls `decide`, and carries out what comes back. Delays are rules, not sleeps: an action whose
condition is not met yet waits in the state until the event that satisfies it arrives.

Two decisions need CRM data and are made by the executor, but with pure functions from here:
which record a session lands on (`choose_record`) and which contact it belongs to.

The modules, each dispatching on event type or record mode by a table:
- `actions`: what each planned action asks the executor for (one frozen dataclass per kind);
- `ruleset`: the settings the rules read (RuleSet), their choices, the title template's words;
- `state`: the session (SessionState), its events, planned actions, and `fold` (FOLDS);
- `creation`: when the record is made and how it is found (`creation_due`, `plan_creation`);
- `follow_ups`: what each later event adds to the record (FOLLOW_UPS);
- `texts`: titles, comments and field values the CRM receives;
- `decide`: `decide` and `replay`, and why an event changed nothing (SILENCES);
- `choices`: `choose_record` (one chooser per record mode) and `choose_contact`.
"""

from records.rules.actions import (
    PAYLOAD_TYPES,
    ActionPayload,
    AddComment,
    CallbackOf,
    CreateRecord,
    DisplayRecord,
    EnsureContact,
    MalformedPayload,
    RecordPolicy,
    TranscriptFile,
    UpdateRecord,
    action_payload,
)
from records.rules.choices import Candidate, RecordChoice, RecordRequest, choose_contact, choose_record, record_request
from records.rules.creation import CreationPlan, CreationRefusal, creation_due, plan_creation
from records.rules.decide import decide, replay, why_nothing
from records.rules.follow_ups import follow_ups
from records.rules.ruleset import (
    CALLBACK_SHORT_CALL_SECONDS,
    DEFAULT_CLOSED_WITHIN_DAYS,
    DEFAULT_TITLE_TEMPLATE,
    TITLE_VARIABLES,
    AbandonedChats,
    ApiResponseFormat,
    RecordMode,
    RuleSet,
    title_template_errors,
)
from records.rules.state import Decision, PlannedAction, SessionEvent, SessionState, fold
from records.rules.texts import (
    api_response_comment,
    call_finished_comment,
    fields_at_end,
    fields_at_start,
    format_seconds,
    mapped_custom_data,
    phone_number_note,
    plain_value,
    render_title,
    standard_data_comment,
)

__all__ = [
    "CALLBACK_SHORT_CALL_SECONDS",
    "DEFAULT_CLOSED_WITHIN_DAYS",
    "DEFAULT_TITLE_TEMPLATE",
    "PAYLOAD_TYPES",
    "TITLE_VARIABLES",
    "AbandonedChats",
    "ActionPayload",
    "AddComment",
    "ApiResponseFormat",
    "CallbackOf",
    "Candidate",
    "CreateRecord",
    "CreationPlan",
    "CreationRefusal",
    "Decision",
    "DisplayRecord",
    "EnsureContact",
    "MalformedPayload",
    "PlannedAction",
    "RecordChoice",
    "RecordMode",
    "RecordPolicy",
    "RecordRequest",
    "RuleSet",
    "SessionEvent",
    "SessionState",
    "TranscriptFile",
    "UpdateRecord",
    "action_payload",
    "api_response_comment",
    "call_finished_comment",
    "choose_contact",
    "choose_record",
    "creation_due",
    "decide",
    "fields_at_end",
    "fields_at_start",
    "fold",
    "follow_ups",
    "format_seconds",
    "mapped_custom_data",
    "phone_number_note",
    "plain_value",
    "plan_creation",
    "record_request",
    "render_title",
    "replay",
    "standard_data_comment",
    "title_template_errors",
    "why_nothing",
]
