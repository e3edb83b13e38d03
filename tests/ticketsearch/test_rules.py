"""The T1-T3 import rules as tables: no database, no HTTP."""

from datetime import UTC, datetime, timedelta

import pytest

from integrations.providers.importing import ImportedComment, ImportedTicket, ImportedUser
from ticketsearch.rules import (
    ExistingAgent,
    Skip,
    UserAction,
    decide_user,
    interactions_with_user,
    phone_digits_reversed,
    search_config,
    ticket_skip_reason,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def user(**changes: object) -> ImportedUser:
    fields: dict[str, object] = {
        "crm_id": "u1",
        "first_name": "Ana",
        "last_name": "Agent",
        "email": "ana@example.com",
        "is_active": True,
        "is_agent": True,
    }
    return ImportedUser(**(fields | changes))  # type: ignore[arg-type]


def agent(**changes: object) -> ExistingAgent:
    fields: dict[str, object] = {
        "id": 7,
        "email": "ana@example.com",
        "first_name": "Ana",
        "last_name": "Agent",
        "is_active": True,
        "from_other_channel": False,
        "crm_identity": (1, "u1"),
    }
    return ExistingAgent(**(fields | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("imported", "expected"),
    [
        (user(), None),
        (user(is_agent=False), Skip.NOT_AN_AGENT),
        (user(email=None), Skip.MISSING_EMAIL),
        (user(email="  "), Skip.MISSING_EMAIL),
        (user(email="not-an-email"), Skip.INVALID_EMAIL),
        (user(first_name=""), Skip.MISSING_NAME),
        (user(last_name=" "), Skip.MISSING_NAME),
        (user(first_name="ana@example.com"), Skip.EMAIL_AS_NAME),
        (user(last_name="ana@example.com"), Skip.EMAIL_AS_NAME),
        # An inactive agent is still imported: the email stays taken (T1: unique across inactive users).
        (user(is_active=False), None),
    ],
)
def test_T1_user_acceptance_rules(imported: ImportedUser, expected: Skip | None) -> None:
    decision = decide_user(imported, connection_id=1, linked=None, same_email=None)

    if expected is None:
        assert decision.action == UserAction.CREATE
    else:
        assert (decision.action, decision.reason) == (UserAction.SKIP, expected)


@pytest.mark.parametrize(
    ("imported", "linked", "same_email", "action", "reason"),
    [
        # Agents are created and updated only from the CRM.
        (user(), None, None, UserAction.CREATE, None),
        (user(), agent(), agent(), UserAction.UNCHANGED, None),
        (user(last_name="Renamed"), agent(), agent(), UserAction.UPDATE, None),
        (user(is_active=False), agent(), agent(), UserAction.UPDATE, None),
        # The email is taken by another agent, active or not, of this or another CRM.
        (user(), None, agent(crm_identity=(2, "x")), UserAction.SKIP, Skip.DUPLICATE_EMAIL),
        (user(), None, agent(crm_identity=(2, "x"), is_active=False), UserAction.SKIP, Skip.DUPLICATE_EMAIL),
        (user(email="ben@example.com"), agent(), agent(id=8), UserAction.SKIP, Skip.DUPLICATE_EMAIL),
        # Made by another channel: linked at the first import, never re-imported after it.
        (user(), None, agent(from_other_channel=True, crm_identity=None), UserAction.LINK, None),
        (user(last_name="Changed"), agent(from_other_channel=True), None, UserAction.SKIP, Skip.OTHER_CHANNEL_USER),
    ],
)
def test_T1_user_against_existing_agents(
    imported: ImportedUser,
    linked: ExistingAgent | None,
    same_email: ExistingAgent | None,
    action: UserAction,
    reason: Skip | None,
) -> None:
    decision = decide_user(imported, connection_id=1, linked=linked, same_email=same_email)

    assert (decision.action, decision.reason) == (action, reason)


def ticket(**changes: object) -> ImportedTicket:
    fields: dict[str, object] = {
        "crm_id": "t1",
        "subject": "Refund",
        "description": "",
        "status": "solved",
        "is_solved": True,
        "channel": "email",
        "assignee_id": "u1",
        "requester_id": "c1",
        "requester_name": "Dana",
        "requester_email": "dana@example.net",
        "requester_phone": "+14155550101",
        "tags": (),
        "created_at": NOW - timedelta(days=3),
        "updated_at": NOW - timedelta(days=1),
        "solved_at": NOW - timedelta(days=1),
        "web_url": "https://acme.zendesk.com/agent/tickets/1",
    }
    return ImportedTicket(**(fields | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("imported", "agent_id", "expected"),
    [
        (ticket(), 7, None),
        (ticket(status="closed"), 7, None),
        (ticket(status="open", is_solved=False), 7, Skip.NOT_SOLVED),
        (ticket(status="pending", is_solved=False), 7, Skip.NOT_SOLVED),
        (ticket(assignee_id=None), None, Skip.NO_AGENT),
        # The assignee was not imported (e.g. no email): their tickets are not imported either.
        (ticket(), None, Skip.AGENT_NOT_IMPORTED),
        (ticket(created_at=NOW - timedelta(days=90, seconds=1)), 7, Skip.OLDER_THAN_RETENTION),
        (ticket(created_at=NOW - timedelta(days=89, hours=23)), 7, None),
    ],
)
def test_T2_T3_ticket_acceptance_rules(imported: ImportedTicket, agent_id: int | None, expected: Skip | None) -> None:
    assert ticket_skip_reason(imported, agent_id=agent_id, now=NOW) == expected


def test_T2_only_interactions_with_user_information_are_kept() -> None:
    with_user = ImportedComment(crm_id="1", author_id="u1", body="hi", public=True, created_at=None)
    without = ImportedComment(crm_id="2", author_id=None, body="merged by a trigger", public=False, created_at=None)

    kept, dropped = interactions_with_user([with_user, without, with_user])

    assert (kept, dropped) == ([with_user, with_user], 1)


@pytest.mark.parametrize(
    ("phone", "expected"),
    [("+1 (415) 555-0101", "10105555141"), (None, ""), ("", ""), ("ext", "")],
)
def test_T4_phone_is_indexed_by_its_reversed_digits(phone: str | None, expected: str) -> None:
    assert phone_digits_reversed(phone) == expected


PG_CONFIGS = frozenset({"simple", "english", "german", "french", "spanish", "portuguese", "norwegian"})


@pytest.mark.parametrize(
    ("locale", "default_locale", "expected"),
    [
        ("en-US", "", "english"),
        ("en", "", "english"),
        ("de", "", "german"),
        ("DE-at", "", "german"),
        ("fr_CA", "", "french"),
        ("es-419", "", "spanish"),
        ("pt-BR", "", "portuguese"),
        ("nb-NO", "", "norwegian"),
        ("zh-CN", "en", "simple"),  # a language PostgreSQL cannot stem: words as written, not the default
        ("ja", "", "simple"),
        ("it", "", "simple"),  # a known language whose configuration this server lacks
        (None, "de", "german"),  # no locale from the CRM: the default setting
        ("", "fr-FR", "french"),
        ("not a locale", "es", "spanish"),
        (None, "", "simple"),
        (None, "xx", "simple"),
    ],
)
def test_T4_ticket_locale_picks_the_text_search_configuration(
    locale: str | None, default_locale: str, expected: str
) -> None:
    assert search_config(locale, available=PG_CONFIGS, default_locale=default_locale) == expected
