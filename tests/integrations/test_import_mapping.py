"""Table tests: how Kustomer and Freshdesk records map onto the import's dataclasses (no I/O)."""

from typing import Any

import pytest

from integrations.providers.base import ConnectionSettings
from integrations.providers.freshdesk import FreshdeskProvider, imported_agent, imported_conversation
from integrations.providers.kustomer import KustomerProvider, imported_message, imported_user, search_time


def provider_settings(kind: str) -> ConnectionSettings:
    return ConnectionSettings(kind=kind, base_url="https://acme.example", config={}, secrets={"api_token": "k"})


@pytest.mark.parametrize(("source", "channel"), [
    (1, "email"), (2, "other"), (3, "voice"), (7, "chat"), (9, "other"), (10, "email"), (13, "whatsapp"),
    (101, "other"), (None, "other"),
])  # fmt: skip
def test_freshdesk_ticket_source_files_the_ticket_under_a_qa_channel(source: Any, channel: str) -> None:
    provider = FreshdeskProvider(provider_settings("freshdesk"))
    ticket = {"id": 7, "status": 5, "source": source, "updated_at": "2026-11-01T10:00:00Z"}

    assert provider.imported_ticket(ticket).channel == channel


@pytest.mark.parametrize(("status", "solved", "word"), [
    (2, False, "open"), (3, False, "pending"), (4, True, "resolved"), (5, True, "closed"), (6, False, "6"),
])  # fmt: skip
def test_freshdesk_resolved_and_closed_are_solved(status: int, solved: bool, word: str) -> None:
    provider = FreshdeskProvider(provider_settings("freshdesk"))

    ticket = provider.imported_ticket({"id": 1, "status": status, "updated_at": "2026-11-01T10:00:00Z"})

    assert (ticket.is_solved, ticket.status) == (solved, word)
    assert (ticket.solved_at is not None) == solved


@pytest.mark.parametrize(("item", "author"), [
    ({"id": 1, "user_id": 43000000005, "body_text": "Hi"}, "43000000005"),
    ({"id": 2, "user_id": None, "body_text": "Automation"}, None),
])  # fmt: skip
def test_freshdesk_conversation_author(item: dict[str, Any], author: str | None) -> None:
    assert imported_conversation(item).author_id == author


@pytest.mark.parametrize(("agent", "active", "names"), [
    ({"id": 1, "contact": {"name": "Zoe Quality", "email": "z@x.com"}}, True, ("Zoe", "Quality")),
    ({"id": 2, "deactivated": True, "contact": {"name": "Old Timer Senior"}}, False, ("Old", "Timer Senior")),
    ({"id": 3, "contact": {"name": "Mononym"}}, True, ("Mononym", "")),
])  # fmt: skip
def test_freshdesk_agent(agent: dict[str, Any], active: bool, names: tuple[str, str]) -> None:
    user = imported_agent(agent)

    assert (user.is_active, (user.first_name, user.last_name), user.is_agent) == (active, names, True)


def message(direction: str, **attributes: Any) -> dict[str, Any]:
    return {
        "id": "m1",
        "attributes": {"direction": direction, "body": "text", **attributes},
        "relationships": {"customer": {"data": {"id": "cust"}}, "createdBy": {"data": {"id": "agent"}}},
    }


@pytest.mark.parametrize(("item", "author"), [
    (message("in"), "cust"),
    (message("out"), "agent"),
    # A workflow's auto-reply: no user wrote it.
    (message("out", auto=True), None),
    ({"id": "m2", "attributes": {"direction": "out"}, "relationships": {}}, None),
])  # fmt: skip
def test_kustomer_message_author(item: dict[str, Any], author: str | None) -> None:
    assert imported_message(item).author_id == author


@pytest.mark.parametrize(("attributes", "agent", "active"), [
    ({"name": "Ana Agent", "userType": "user"}, True, True),
    ({"name": "CRM Bridge API", "userType": "machine"}, False, True),
    ({"name": "Gone Agent", "deleted": True}, True, False),
])  # fmt: skip
def test_kustomer_user(attributes: dict[str, Any], agent: bool, active: bool) -> None:
    user = imported_user({"id": "u1", "attributes": attributes})

    assert (user.is_agent, user.is_active) == (agent, active)


@pytest.mark.parametrize(("channels", "channel"), [
    (["voice"], "voice"), (["instagram", "email"], "email"), (["twitter-dm"], "other"), ([], "other"),
])  # fmt: skip
def test_kustomer_conversation_channel(channels: list[str], channel: str) -> None:
    provider = KustomerProvider(provider_settings("kustomer"))
    conversation = {
        "id": "c1",
        "attributes": {"status": "done", "channels": channels, "updatedAt": "2026-11-01T10:00:00.000Z"},
    }

    assert provider.imported_ticket(conversation, {}).channel == channel


def test_kustomer_search_time_is_utc_with_milliseconds() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2026, 10, 1, 2, 3, 4, 567_000, tzinfo=timezone(timedelta(hours=2)))

    assert search_time(moment) == "2026-10-01T00:03:04.567Z"
    assert search_time(moment.astimezone(UTC)) == "2026-10-01T00:03:04.567Z"
