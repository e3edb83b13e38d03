"""The one phone validator: the event API, the adapter API, the configuration file and the admin.

A number is stored and matched as E.164 (+14155550100): a "+" and its country code are required;
spaces, dashes and brackets a person typed are dropped.
"""

from typing import Any

import phonenumbers
from rest_framework import serializers

E164_MESSAGE = "Enter a valid phone number with its country code, e.g. +14155550100."


def to_e164(value: str) -> str | None:
    """The number in E.164, or None when it is no possible number with a country code."""
    try:
        number = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class E164PhoneField(serializers.CharField):
    """A phone number with its country code, stored and matched as E.164 (+14155550100)."""

    default_error_messages = {"invalid_phone": E164_MESSAGE}

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        number = to_e164(value)
        if number is None:
            self.fail("invalid_phone")
        return number
