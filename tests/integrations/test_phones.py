"""Table tests of phone matching: a caller's E.164 against phones as CRMs store them."""

import pytest

from integrations.providers.base import Contact
from integrations.providers.phones import PhoneMatch, best_match, national_number, phone_match, rank_contacts

CALLER = "+14155550100"


@pytest.mark.parametrize(
    ("stored", "match"),
    [
        ("+14155550100", PhoneMatch.EXACT),
        (" +14155550100 ", PhoneMatch.EXACT),
        ("(415) 555-0100", PhoneMatch.SAME_NUMBER),
        ("415-555-0100", PhoneMatch.SAME_NUMBER),
        ("+1 415 555 0100", PhoneMatch.SAME_NUMBER),
        ("4155550100", PhoneMatch.SAME_NUMBER),
        ("1 (415) 555-0100", PhoneMatch.SAME_NUMBER),
        ("415.555.0100", PhoneMatch.SAME_NUMBER),
        # The same last digits in another country, a shorter number, another number, nothing.
        ("+44 4155 550100", PhoneMatch.NONE),
        ("555-0100", PhoneMatch.NONE),
        ("(415) 555-0101", PhoneMatch.NONE),
        ("call me", PhoneMatch.NONE),
        ("", PhoneMatch.NONE),
        (None, PhoneMatch.NONE),
    ],
)
def test_phone_match(stored: str | None, match: PhoneMatch) -> None:
    assert phone_match(stored, CALLER) == match


@pytest.mark.parametrize(
    ("stored", "caller", "match"),
    [
        # A national format is read in the caller's country: the trunk 0 of a UK number.
        ("020 7946 0958", "+442079460958", PhoneMatch.SAME_NUMBER),
        ("06 1234 5678", "+390612345678", PhoneMatch.SAME_NUMBER),
        ("020 7946 0958", "+12079460958", PhoneMatch.NONE),
    ],
)
def test_phone_match_reads_a_national_format_in_the_callers_country(
    stored: str, caller: str, match: PhoneMatch
) -> None:
    assert phone_match(stored, caller) == match


@pytest.mark.parametrize(
    ("e164", "national"),
    [("+14155550100", "4155550100"), ("+442079460958", "2079460958"), ("+390612345678", "0612345678")],
)
def test_national_number(e164: str, national: str) -> None:
    assert national_number(e164) == national


def test_best_match_takes_the_best_of_a_contacts_phones() -> None:
    assert best_match(["+44 20 7946 0958", "(415) 555-0100", None], CALLER) == PhoneMatch.SAME_NUMBER
    assert best_match(["(415) 555-0100", CALLER], CALLER) == PhoneMatch.EXACT
    assert best_match([], CALLER) == PhoneMatch.NONE


@pytest.mark.parametrize(
    ("stored", "matches"),
    [
        ("1-415-555-0100", True),
        ("4155550101", False),
        ("+44 20 7946 0958", False),
        ("", False),
        (None, False),
        ("not a number", False),
    ],
)
def test_phone_match_reads_local_formats_in_the_callers_region(stored: str | None, matches: bool) -> None:
    assert (phone_match(stored, CALLER) != PhoneMatch.NONE) is matches


def test_rank_contacts_keeps_exact_matches_first_and_drops_other_numbers() -> None:
    # What all four providers do with their phone search's candidates (Salesforce's Phone and
    # MobilePhone, Freshdesk's phone and mobile, Kustomer's phones, Zendesk's phone).
    candidates: list[tuple[str, list[str | None]]] = [
        ("a", ["(415) 555-0100"]),
        ("b", ["+14155550199"]),
        ("c", [None, CALLER]),
    ]

    ranked = rank_contacts((best_match(stored, CALLER), Contact(id=name, name=name)) for name, stored in candidates)

    assert [contact.id for contact in ranked] == ["c", "a"]
