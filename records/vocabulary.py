"""The platform's words (shared/EVENTS.md): event types, channels, session types and their names."""

from dataclasses import dataclass

from django.db import models

from integrations.providers.base import CustomFieldSpec, CustomFieldType


class EventType(models.TextChoices):
    SESSION_CREATED = "session.created"
    SESSION_QUEUED = "session.queued"
    SESSION_ASSIGNED = "session.assigned"
    SESSION_CONNECTED = "session.connected"
    MESSAGE_RECEIVED = "message.received"
    SESSION_TRANSFERRED = "session.transferred"
    SESSION_HELD = "session.held"
    SESSION_RESUMED = "session.resumed"
    SESSION_ENDED = "session.ended"
    SESSION_ABANDONED = "session.abandoned"
    VOICEMAIL_LEFT = "voicemail.left"
    VOICEMAIL_UPDATED = "voicemail.updated"
    RECORDING_READY = "recording.ready"
    TRANSCRIPT_READY = "transcript.ready"
    CSAT_SUBMITTED = "csat.submitted"
    SMARTACTION_COMPLETED = "smartaction.completed"
    SMARTACTION_FAILED = "smartaction.failed"
    SESSION_CALLBACK = "session.callback"
    OUTBOUND_STARTED = "outbound.started"
    API_RESPONSE = "api.response"
    # The agent picked one of several contacts matching the caller (S5).
    CONTACT_SELECTED = "contact.selected"


class Channel(models.TextChoices):
    VOICE = "voice", "Voice"
    CHAT = "chat", "Chat"


CHANNEL_CHOICES = Channel.choices


class SessionType(models.TextChoices):
    VOICE_INBOUND_IVR = "voice_inbound_ivr", "Voice Inbound (IVR)"
    VOICE_INBOUND_APP = "voice_inbound_app", "Voice Inbound (App)"
    VOICE_INBOUND_WEB = "voice_inbound_web", "Voice Inbound (Web)"
    VOICE_SCHEDULED_APP = "voice_scheduled_app", "Voice Scheduled (App)"
    VOICE_SCHEDULED_WEB = "voice_scheduled_web", "Voice Scheduled (Web)"
    VOICE_OUTBOUND = "voice_outbound", "Voice Outbound"
    CHAT_INBOUND_WEB = "chat_inbound_web", "Messaging Inbound (Web Chat)"
    CHAT_INBOUND_APP = "chat_inbound_app", "Messaging Inbound (App Chat)"
    CHAT_INBOUND_SMS = "chat_inbound_sms", "Messaging Inbound (SMS)"


@dataclass(frozen=True)
class SessionTypeInfo:
    channel: str
    # The session-type name: the source of the R8 tag, styled per CRM.
    name: str
    # The CALL_TYPE title variable (R7).
    call_type: str


SESSION_TYPES: dict[str, SessionTypeInfo] = {
    SessionType.VOICE_INBOUND_IVR: SessionTypeInfo(Channel.VOICE, "Voice Inbound (IVR)", "IVR Call"),
    SessionType.VOICE_INBOUND_APP: SessionTypeInfo(Channel.VOICE, "Voice Inbound (App)", "Inbound Call (App)"),
    SessionType.VOICE_INBOUND_WEB: SessionTypeInfo(Channel.VOICE, "Voice Inbound (Web)", "Inbound Call (Web)"),
    SessionType.VOICE_SCHEDULED_APP: SessionTypeInfo(Channel.VOICE, "Voice Scheduled (App)", "Voice Scheduled (App)"),
    SessionType.VOICE_SCHEDULED_WEB: SessionTypeInfo(Channel.VOICE, "Voice Scheduled (Web)", "Scheduled Call (Web)"),
    SessionType.VOICE_OUTBOUND: SessionTypeInfo(Channel.VOICE, "Voice Outbound", "Outbound Call"),
    SessionType.CHAT_INBOUND_WEB: SessionTypeInfo(Channel.CHAT, "Messaging Inbound (Web Chat)", "Chat (Web)"),
    SessionType.CHAT_INBOUND_APP: SessionTypeInfo(Channel.CHAT, "Messaging Inbound (App Chat)", "Chat (App)"),
    SessionType.CHAT_INBOUND_SMS: SessionTypeInfo(Channel.CHAT, "Messaging Inbound (SMS)", "SMS"),
}

SESSION_TYPE_CHOICES = SessionType.choices


class ActionKind(models.TextChoices):
    """What a CRM action does; the rule engine plans these, the executor carries them out."""

    ENSURE_CONTACT = "ensure_contact", "Find or create contact"
    CREATE_RECORD = "create_record", "Find or create record"
    ADD_COMMENT = "add_comment", "Add internal comment"
    UPDATE_RECORD = "update_record", "Update record"
    # O4: the CRM's own screen pop (Zendesk Talk Partner Edition display API) for the answering agent.
    DISPLAY_RECORD = "display_record", "Open the record on the agent's screen"


# The actions every later one of the session needs: while one has failed, the rest wait.
BLOCKING_KINDS = frozenset({ActionKind.ENSURE_CONTACT, ActionKind.CREATE_RECORD})

# F2: the product's record fields, created in the CRM by the admin's "Create custom fields" (F1).
RECORD_FIELDS: tuple[CustomFieldSpec, ...] = (
    CustomFieldSpec("session_type", "Session type"),
    CustomFieldSpec("from_phone_number", "From phone number"),
    CustomFieldSpec("call_duration", "Call duration (s)", CustomFieldType.INTEGER),
    CustomFieldSpec("wait_time", "Wait time (s)", CustomFieldType.INTEGER),
    CustomFieldSpec("hold_time", "Hold time (s)", CustomFieldType.INTEGER),
    CustomFieldSpec("queue_name", "Queue name"),
    CustomFieldSpec("call_id", "Call/chat ID"),
    CustomFieldSpec("csat_rating", "CSAT rating", CustomFieldType.INTEGER),
    CustomFieldSpec("csat_comment", "CSAT comment"),
    CustomFieldSpec("menu_selection", "Customer menu selection"),
    CustomFieldSpec("send_email_from_in_web", "Send email from In-Web", CustomFieldType.BOOLEAN),
    CustomFieldSpec("verification_result", "SmartAction verification result"),
    CustomFieldSpec("customer_text_input", "Customer text input"),
)
RECORD_FIELD_CHOICES = [(spec.key, spec.title) for spec in RECORD_FIELDS]
