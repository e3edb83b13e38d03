"""The adapter API's bodies (ADAPTER.md). Field names are the external contract: add, never rename."""

from typing import Any

from rest_framework import serializers

from records.outbound import Origin, RecordChoiceKind
from records.phones import E164PhoneField

ORIGIN_FIELDS = ("phone_number", "contact_id", "record_id", "ticket_id")


class PrepareInputSerializer(serializers.Serializer[Any]):
    phone_number = E164PhoneField(
        required=False, max_length=20, help_text="E.164: click-to-call from a contact's number, or the dialpad."
    )
    contact_id = serializers.CharField(required=False, max_length=64, help_text="The contact of a contact card.")
    record_id = serializers.CharField(required=False, max_length=64, help_text="The Call button on a record.")
    ticket_id = serializers.CharField(required=False, max_length=64, help_text="Team ticket-ID entry (O3).")
    entered_number = E164PhoneField(
        required=False,
        max_length=20,
        help_text='E.164. "Use the entered number": dial it, log the call on the contact the origin found.',
    )
    origin = serializers.ChoiceField(choices=Origin.CHOICES, required=False, help_text="Where the click came from.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ORIGIN_FIELDS if attrs.get(name)]
        if not given:
            raise serializers.ValidationError(
                {
                    name: ["Give exactly one origin: phone_number, contact_id, record_id or ticket_id."]
                    for name in ORIGIN_FIELDS
                }
            )
        if len(given) > 1:
            raise serializers.ValidationError(
                {name: [f"Give only one origin, not {' and '.join(given)}."] for name in given}
            )
        return attrs


class ContactSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    name = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    email = serializers.CharField(allow_null=True)


class OpenRecordSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    subject = serializers.CharField()
    status = serializers.CharField()
    updated_at = serializers.CharField(allow_null=True)
    url = serializers.CharField(allow_null=True, help_text="The record's page in the CRM.")


class OptionsSerializer(serializers.Serializer[Any]):
    choose_record = serializers.BooleanField(help_text="Prompt the agent to choose an open record from a list.")
    create_new = serializers.BooleanField(help_text='"Create new record" may be chosen.')
    no_record = serializers.BooleanField(help_text='"Do not create a record" may be chosen.')
    use_entered_number = serializers.BooleanField(help_text='"Use the entered number" may be used.')
    ticket_id = serializers.ChoiceField(choices=["off", "optional", "required"], help_text="Team ticket-ID entry.")


class PrepareOutputSerializer(serializers.Serializer[Any]):
    phone_number = serializers.CharField(allow_null=True, help_text="The number the call dials.")
    contacts = ContactSerializer(many=True, help_text="Every contact with that number (none, one or several).")
    contact_id = serializers.CharField(allow_null=True)
    open_records = OpenRecordSerializer(many=True, help_text="The contact's open records, newest first.")
    record_id = serializers.CharField(allow_null=True, help_text="The default pick.")
    must_choose = serializers.ListField(child=serializers.ChoiceField(choices=["contact", "record"]))
    options = OptionsSerializer()
    outbound_number = serializers.CharField(
        allow_null=True, help_text="The default outbound number of the team's queue."
    )
    warnings = serializers.ListField(child=serializers.CharField())


class StartInputSerializer(serializers.Serializer[Any]):
    session_id = serializers.CharField(max_length=200, help_text="The platform's id of the call being placed.")
    phone_number = E164PhoneField(max_length=20, help_text="E.164: the number dialed.")
    contact_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    record_choice = serializers.ChoiceField(choices=RecordChoiceKind.CHOICES)
    record_id = serializers.CharField(required=False, allow_blank=True, max_length=64, help_text="With `existing`.")
    entered_number = serializers.BooleanField(
        required=False, default=False, help_text='True: "Use the entered number" (written in a record comment).'
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["record_choice"] == RecordChoiceKind.EXISTING and not attrs.get("record_id"):
            raise serializers.ValidationError({"record_id": ["Name the record for record_choice existing."]})
        return attrs


class StartOutputSerializer(serializers.Serializer[Any]):
    session_id = serializers.CharField()
    record_id = serializers.CharField(allow_null=True)
    record_url = serializers.CharField(allow_null=True)
    contact_id = serializers.CharField(allow_null=True)
    pending = serializers.BooleanField(help_text="True while a new record is being made: screen pop delivers it.")


class ScreenPopSerializer(serializers.Serializer[Any]):
    pop_id = serializers.IntegerField(source="id", help_text="Pass it as `after` to wait for the next pop.")
    session_id = serializers.CharField(source="session.external_id")
    record_id = serializers.CharField()
    record_url = serializers.CharField(allow_blank=True)
    contact_id = serializers.CharField(allow_blank=True)
    channel = serializers.CharField(allow_blank=True)


class SessionActionSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)


class SessionSerializer(serializers.Serializer[Any]):
    session_id = serializers.CharField()
    channel = serializers.CharField(allow_blank=True)
    session_type = serializers.CharField(allow_blank=True)
    phone_number = serializers.CharField(allow_blank=True)
    record_id = serializers.CharField(allow_null=True)
    record_url = serializers.CharField(allow_null=True)
    contact_id = serializers.CharField(allow_null=True)
    answering_agent = serializers.CharField(allow_blank=True)
    ended = serializers.BooleanField()
    actions = SessionActionSerializer(many=True, help_text="The session's CRM actions and their status.")
