"""Matching a caller's E.164 number against phone numbers a CRM stores in any format (pure).

CRMs keep phone fields as the agent typed them ("(415) 555-0100", "+1 415 555 0100",
"4155550100"). A lookup therefore searches on the national significant number (the digits every
format shares), then parses each candidate's stored numbers and keeps those equal in E.164;
an exact stored match ranks first.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import phonenumbers

T = TypeVar("T")


def parse_e164(value: str, *, region: str | None = None) -> str | None:
    """`value` in E.164, or None when it is not a possible phone number.

    A number without a country code is read in `region` (the caller's own, when known).
    """
    if not value or not value.strip():
        return None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def national_number(e164: str) -> str:
    """The national significant number of an E.164 number: the digits to search a CRM on."""
    try:
        return str(phonenumbers.national_significant_number(phonenumbers.parse(e164, None)))
    except phonenumbers.NumberParseException:
        return "".join(char for char in e164 if char.isdigit())


def region_of(e164: str) -> str | None:
    """The region an E.164 number belongs to (US for +1 415...), to read local formats in."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or None
    except phonenumbers.NumberParseException:
        return None


def same_number(stored: str | None, e164: str) -> bool:
    """Whether a stored phone (any format) is the E.164 number `e164`."""
    if not stored:
        return False
    return parse_e164(stored, region=region_of(e164)) == e164


def matching(candidates: Iterable[T], e164: str, phones: Callable[[T], Sequence[str | None]]) -> list[T]:
    """The candidates with a stored phone equal to `e164`: those storing it exactly first, order kept."""
    exact: list[T] = []
    parsed: list[T] = []
    for candidate in candidates:
        stored = phones(candidate)
        if e164 in stored:
            exact.append(candidate)
        elif any(same_number(value, e164) for value in stored):
            parsed.append(candidate)
    return exact + parsed
