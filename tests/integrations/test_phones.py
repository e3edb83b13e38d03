"""The phone matcher: any stored format of the caller's number matches, other numbers do not."""

import pytest

from integrations.phones import matching, national_number, parse_e164, same_number


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("+14155550100", True),
        ("(415) 555-0100", True),
        ("415.555.0100", True),
        ("+1 415 555 0100", True),
        ("1-415-555-0100", True),
        ("4155550101", False),
        ("+44 20 7946 0958", False),
        ("", False),
        (None, False),
        ("not a number", False),
    ],
)
def test_same_number_reads_local_formats_in_the_callers_region(stored: str | None, expected: bool) -> None:
    assert same_number(stored, "+14155550100") is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("+14155550100", "+14155550100"), ("+44 20 7946 0958", "+442079460958"), ("12", None), ("", None)],
)
def test_parse_e164(value: str, expected: str | None) -> None:
    assert parse_e164(value) == expected


@pytest.mark.parametrize(
    ("e164", "digits"),
    [("+14155550100", "4155550100"), ("+442079460958", "2079460958"), ("+390612345678", "0612345678")],
)
def test_national_number_is_what_every_stored_format_shares(e164: str, digits: str) -> None:
    assert national_number(e164) == digits


def test_matching_keeps_exact_matches_first_and_drops_other_numbers() -> None:
    candidates: list[tuple[str, list[str | None]]] = [
        ("a", ["(415) 555-0100"]),
        ("b", ["+14155550199"]),
        ("c", [None, "+14155550100"]),
    ]

    assert [name for name, _ in matching(candidates, "+14155550100", lambda item: item[1])] == ["c", "a"]
