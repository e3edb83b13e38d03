"""Matching a caller's E.164 number against phones a CRM stored in whatever format a person typed.

CRMs keep a phone as entered: `(415) 555-0100`, `415-555-0100`, `+1 415 555 0100`, `4155550100`.
A provider searches the CRM on the national significant number (the digits every one of those
formats shares), then keeps only the candidates whose stored phone, parsed with the caller's
country as the default, is the caller's number; a phone stored exactly as the caller's E.164
ranks first. Duplicate contacts from phone formats are the most common complaint against such
integrations, so a near miss (same last digits, another country) is never taken as a match.
"""

from collections.abc import Iterable
from enum import IntEnum

import phonenumbers

from integrations.providers.base import Contact


class PhoneMatch(IntEnum):
    """How well a stored phone matches the caller; higher ranks first."""

    NONE = 0
    # The same number written another way (spaces, dashes, no country code).
    SAME_NUMBER = 1
    # Stored exactly as the caller's E.164.
    EXACT = 2


def _parse(value: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None


def national_number(e164: str) -> str:
    """The national significant number of an E.164 number (`+14155550100` -> `4155550100`).

    A number phonenumbers cannot read falls back to its digits, so a search still has a key.
    """
    parsed = _parse(e164, None)
    if parsed is None:
        return "".join(character for character in e164 if character.isdigit())
    return phonenumbers.national_significant_number(parsed)


def phone_match(stored: str | None, e164: str) -> PhoneMatch:
    """Whether a phone as the CRM stored it is the caller's number, read in the caller's country."""
    if not stored or not stored.strip():
        return PhoneMatch.NONE
    if stored.strip() == e164:
        return PhoneMatch.EXACT
    caller = _parse(e164, None)
    if caller is None:
        return PhoneMatch.NONE
    region = phonenumbers.region_code_for_number(caller)
    parsed = _parse(stored, region)
    if parsed is None:
        return PhoneMatch.NONE
    same = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == phonenumbers.format_number(
        caller, phonenumbers.PhoneNumberFormat.E164
    )
    return PhoneMatch.SAME_NUMBER if same else PhoneMatch.NONE


def best_match(stored: Iterable[str | None], e164: str) -> PhoneMatch:
    """The best match among a contact's phones (Kustomer keeps several, shared ones included)."""
    return max((phone_match(phone, e164) for phone in stored), default=PhoneMatch.NONE)


def rank_contacts(candidates: Iterable[tuple[PhoneMatch, Contact]]) -> list[Contact]:
    """The contacts that match, exact phones first and newest first within each rank."""
    matching = [(match, contact) for match, contact in candidates if match]
    # Sorts are stable: newest first, then by rank.
    matching.sort(key=lambda item: item[1].created_at or "", reverse=True)
    matching.sort(key=lambda item: item[0], reverse=True)
    return [contact for _, contact in matching]
