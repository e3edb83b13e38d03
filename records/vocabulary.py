"""The platform's words (shared/EVENTS.md): event types, channels, session types and their names."""

from dataclasses import dataclass

from django.db import models


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


CHANNEL_CHOICES = [("voice", "Voice"), ("chat", "Chat")]


@dataclass(frozen=True)
class SessionTypeInfo:
    channel: str
    # The session-type name: the source of the R8 tag, styled per CRM.
    name: str
    # The CALL_TYPE title variable (R7).
    call_type: str


SESSION_TYPES: dict[str, SessionTypeInfo] = {
    "voice_inbound_ivr": SessionTypeInfo("voice", "Voice Inbound (IVR)", "IVR Call"),
    "voice_inbound_app": SessionTypeInfo("voice", "Voice Inbound (App)", "Inbound Call (App)"),
    "voice_inbound_web": SessionTypeInfo("voice", "Voice Inbound (Web)", "Inbound Call (Web)"),
    "voice_scheduled_app": SessionTypeInfo("voice", "Voice Scheduled (App)", "Voice Scheduled (App)"),
    "voice_scheduled_web": SessionTypeInfo("voice", "Voice Scheduled (Web)", "Scheduled Call (Web)"),
    "voice_outbound": SessionTypeInfo("voice", "Voice Outbound", "Outbound Call"),
    "chat_inbound_web": SessionTypeInfo("chat", "Messaging Inbound (Web Chat)", "Chat (Web)"),
    "chat_inbound_app": SessionTypeInfo("chat", "Messaging Inbound (App Chat)", "Chat (App)"),
    "chat_inbound_sms": SessionTypeInfo("chat", "Messaging Inbound (SMS)", "SMS"),
}

SESSION_TYPE_CHOICES = [(key, info.name) for key, info in SESSION_TYPES.items()]


class ActionKind(models.TextChoices):
    """What a CRM action does; the rule engine plans these, the executor carries them out."""

    ENSURE_CONTACT = "ensure_contact", "Find or create contact"
    CREATE_RECORD = "create_record", "Create record"
    ADD_COMMENT = "add_comment", "Add internal comment"
