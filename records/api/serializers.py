"""Validation of the platform event contract (shared/EVENTS.md): envelope, then data per type."""

from typing import Any

from rest_framework import serializers

from integrations.storable import unstorable_text
from records.phones import E164PhoneField
from records.vocabulary import SESSION_TYPES, Channel, EventType


class AgentSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField()


class QueueSerializer(serializers.Serializer[Any]):
    id = serializers.CharField(max_length=200, required=False)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    path = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=20)


class CustomerSerializer(serializers.Serializer[Any]):
    phone = E164PhoneField(required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    app_user_id = serializers.CharField(max_length=200, required=False, allow_blank=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    authenticated = serializers.BooleanField(required=False)


class FileSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=500)
    url = serializers.URLField(max_length=2000)


def _seconds() -> serializers.FloatField:
    return serializers.FloatField(required=False, min_value=0)


class SessionCreatedData(serializers.Serializer[Any]):
    channel = serializers.ChoiceField(choices=Channel.values)
    session_type = serializers.ChoiceField(choices=list(SESSION_TYPES))
    queue = QueueSerializer(required=False)
    menu_path = serializers.CharField(max_length=500, required=False, allow_blank=True)
    language = serializers.CharField(max_length=35, required=False, allow_blank=True)
    phone_number = E164PhoneField(required=False, allow_blank=True)
    dialed_number = E164PhoneField(required=False, allow_blank=True)
    customer = CustomerSerializer(required=False)
    custom_data = serializers.DictField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        expected = SESSION_TYPES[attrs["session_type"]].channel
        if attrs["channel"] != expected:
            raise serializers.ValidationError(
                {"channel": [f"session_type {attrs['session_type']} is a {expected} session, not {attrs['channel']}."]}
            )
        return attrs


class SessionQueuedData(serializers.Serializer[Any]):
    queue = QueueSerializer()


class SessionAssignedData(serializers.Serializer[Any]):
    agent = AgentSerializer()


class SessionConnectedData(serializers.Serializer[Any]):
    agent = AgentSerializer(required=False)


class MessageReceivedData(serializers.Serializer[Any]):
    sender = serializers.ChoiceField(choices=["consumer", "agent"])
    text = serializers.CharField(required=False, allow_blank=True, max_length=100_000)


class SessionTransferredData(serializers.Serializer[Any]):
    to_agent = AgentSerializer()
    queue = QueueSerializer(required=False)


class EmptyData(serializers.Serializer[Any]):
    pass


class SessionEndedData(serializers.Serializer[Any]):
    call_duration = _seconds()
    hold_time = _seconds()
    wait_time = _seconds()
    ended_by = serializers.CharField(max_length=50, required=False, allow_blank=True)


class SessionAbandonedData(serializers.Serializer[Any]):
    wait_time = _seconds()


class VoicemailLeftData(serializers.Serializer[Any]):
    recording_url = serializers.URLField(max_length=2000)
    duration = _seconds()


class VoicemailUpdatedData(serializers.Serializer[Any]):
    action = serializers.ChoiceField(choices=["read", "closed", "called_back"])
    agent = AgentSerializer(required=False)


class RecordingReadyData(serializers.Serializer[Any]):
    url = serializers.URLField(max_length=2000)


class TranscriptReadyData(serializers.Serializer[Any]):
    url = serializers.URLField(max_length=2000, required=False)
    text = serializers.CharField(required=False, allow_blank=True, max_length=1_000_000)


class CsatSubmittedData(serializers.Serializer[Any]):
    rating = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


SMARTACTION_KINDS = ["verification", "photo", "video", "text_input", "signature", "payment"]


class SmartActionCompletedData(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=SMARTACTION_KINDS)
    result = serializers.JSONField(required=False)
    files = FileSerializer(many=True, required=False)


class SmartActionFailedData(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=SMARTACTION_KINDS)
    error = serializers.CharField(max_length=2000)


class SessionCallbackData(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["hangup_and_callback", "callback_button"])
    agent = AgentSerializer(required=False)
    # The call being called back: its record is the one appended to (S7).
    original_session_id = serializers.CharField(max_length=200, required=False, allow_blank=True)


class ContactSelectedData(serializers.Serializer[Any]):
    contact_id = serializers.CharField(max_length=64)


class OutboundStartedData(serializers.Serializer[Any]):
    agent = AgentSerializer()
    phone_number = E164PhoneField()
    contact_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    record_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    choice = serializers.ChoiceField(choices=["existing", "new", "none"], required=False)
    entered_number = serializers.BooleanField(required=False)


class ApiResponseData(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    payload = serializers.DictField(required=False)


DATA_SERIALIZERS: dict[str, type[serializers.Serializer[Any]]] = {
    EventType.SESSION_CREATED: SessionCreatedData,
    EventType.SESSION_QUEUED: SessionQueuedData,
    EventType.SESSION_ASSIGNED: SessionAssignedData,
    EventType.SESSION_CONNECTED: SessionConnectedData,
    EventType.MESSAGE_RECEIVED: MessageReceivedData,
    EventType.SESSION_TRANSFERRED: SessionTransferredData,
    EventType.SESSION_HELD: EmptyData,
    EventType.SESSION_RESUMED: EmptyData,
    EventType.SESSION_ENDED: SessionEndedData,
    EventType.SESSION_ABANDONED: SessionAbandonedData,
    EventType.VOICEMAIL_LEFT: VoicemailLeftData,
    EventType.VOICEMAIL_UPDATED: VoicemailUpdatedData,
    EventType.RECORDING_READY: RecordingReadyData,
    EventType.TRANSCRIPT_READY: TranscriptReadyData,
    EventType.CSAT_SUBMITTED: CsatSubmittedData,
    EventType.SMARTACTION_COMPLETED: SmartActionCompletedData,
    EventType.SMARTACTION_FAILED: SmartActionFailedData,
    EventType.SESSION_CALLBACK: SessionCallbackData,
    EventType.OUTBOUND_STARTED: OutboundStartedData,
    EventType.API_RESPONSE: ApiResponseData,
    EventType.CONTACT_SELECTED: ContactSelectedData,
}

ENVELOPE_FIELDS = frozenset({"event_id", "session_id", "type", "occurred_at", "data"})


class EventSerializer(serializers.Serializer[Any]):
    """One event. `data` is validated by its type's serializer; unknown keys are kept as sent."""

    event_id = serializers.CharField(max_length=200)
    session_id = serializers.CharField(max_length=200)
    type = serializers.ChoiceField(choices=EventType.choices)
    occurred_at = serializers.DateTimeField()
    # DRF's metaclass pops declared fields, so this does not shadow Serializer.data at runtime.
    data = serializers.DictField(required=False, default=dict)  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One validator per type, reused for every event of a batch: building a serializer copies
        # all its fields, which cost more than the validation itself.
        self._data_validators: dict[str, serializers.Serializer[Any]] = {}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and (found := unstorable_text(data)):
            # PostgreSQL cannot hold it: refuse it here rather than fail at INSERT.
            where, problem = found
            raise serializers.ValidationError({where: [f"{problem} are not allowed."]})
        attrs: dict[str, Any] = super().to_internal_value(data)
        attrs["extra"] = {key: value for key, value in data.items() if key not in ENVELOPE_FIELDS}
        return attrs

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        event_type = attrs["type"]
        if event_type not in self._data_validators:
            self._data_validators[event_type] = DATA_SERIALIZERS[event_type]()
        try:
            validated = self._data_validators[event_type].run_validation(attrs["data"])
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"data": exc.detail}) from None
        # Normalised values (E.164 phones, numbers) win; extra keys stay as the platform sent them.
        attrs["data"] = {**attrs["data"], **_plain(validated)}
        return attrs


def validate_events(raw_events: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate a batch with one serializer; return (validated events, per-event errors)."""
    batch = EventSerializer(data=raw_events, many=True)
    if batch.is_valid():
        return list(batch.validated_data), []
    # DRF gives a list with one entry per event, or (3.16+) a dict of the invalid ones by index.
    details = batch.errors if isinstance(batch.errors, dict) else dict(enumerate(batch.errors))
    errors = [
        {
            "index": index,
            "event_id": raw_events[index].get("event_id") if isinstance(raw_events[index], dict) else None,
            "fields": flatten_errors(detail),
        }
        for index, detail in sorted(details.items())
        if detail
    ]
    return [], errors


def _plain(value: Any) -> Any:
    """validated_data holds OrderedDicts and ReturnDicts; the JSON column wants plain values."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class EventBatchSerializer(serializers.Serializer[Any]):
    """Documentation shape of a batch: `{"events": [...]}` of up to 500 events."""

    events = EventSerializer(many=True)


class EventsAcceptedSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField(help_text="Events stored by this call.")
    duplicates = serializers.IntegerField(help_text="Events already stored earlier (same event_id): not applied again.")


def flatten_errors(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors as {"data.queue.path": ["..."]}, so each message names its field."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = prefix if key == "non_field_errors" else (f"{prefix}.{key}" if prefix else str(key))
            for field_name, messages in flatten_errors(value, name).items():
                flat.setdefault(field_name, []).extend(messages)
    elif isinstance(errors, list) and errors and not all(isinstance(item, str) for item in errors):
        for index, value in enumerate(errors):
            if value:
                flat.update(flatten_errors(value, f"{prefix}[{index}]"))
    else:
        messages = errors if isinstance(errors, list) else [errors]
        flat[prefix or "event"] = [str(message) for message in messages]
    return flat
