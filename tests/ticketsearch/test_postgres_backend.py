"""The PostgreSQL search backend's pure parts: a page row read into a TicketHit (no database)."""

from datetime import UTC, datetime
from typing import Any

import pytest

from ticketsearch.backends import AgentSummary
from ticketsearch.backends.postgres import LIST_FIELDS, hit_from_row

CREATED = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
LIST_VALUES: dict[str, Any] = {
    "id": 7,
    "created_at": CREATED,
    "connection_id": 1,
    "crm_kind": "zendesk",
    "crm_ticket_id": "40",
    "subject": "<b>Router</b>",
    "status": "solved",
    "channel": "voice",
    "agent_id": 3,
    "requester_name": "Dana",
    "requester_email": "dana@example.net",
    "requester_phone": "+1 555 0101",
    "tags": ["vip"],
    "recording_urls": [],
    "crm_url": "https://acme.zendesk.com/agent/tickets/40",
    "solved_at": None,
    "search_config": "english",
}
MARKED = "<b>\ue000Router\ue001</b>"
ESCAPED = "&lt;b&gt;<mark>Router</mark>&lt;/b&gt;"
TEXT, TEXT_ESCAPED = "a \ue000router\ue001 & <i>co</i>", "a <mark>router</mark> &amp; &lt;i&gt;co&lt;/i&gt;"


def row(*, agent_id: int | None = 3, agent: tuple[Any, Any, Any], highlights: tuple[Any, Any]) -> tuple[Any, ...]:
    values = LIST_VALUES | {"agent_id": agent_id}
    return (*(values[name] for name in LIST_FIELDS), *agent, *highlights)


@pytest.mark.parametrize(
    ("agent_id", "agent", "expected"),
    [
        (3, ("Zoe", "Agent", "zoe@example.com"), AgentSummary(id=3, name="Zoe Agent", email="zoe@example.com")),
        (3, ("Zoe", "", "zoe@example.com"), AgentSummary(id=3, name="Zoe", email="zoe@example.com")),
        (None, (None, None, None), None),  # no agent on the ticket
        (3, (None, None, None), None),  # the agent's row is gone: the LEFT JOIN found none
    ],
)
def test_hit_from_row_reads_the_agent(agent_id: int | None, agent: tuple[Any, Any, Any], expected: Any) -> None:
    hit = hit_from_row(row(agent_id=agent_id, agent=agent, highlights=(None, None)), highlighted=False)

    assert hit.agent == expected
    assert (hit.id, hit.created_at, hit.agent_id, hit.tags) == (7, CREATED, agent_id, ["vip"])


@pytest.mark.parametrize(
    ("highlighted", "highlights", "expected"),
    [
        (True, (MARKED, TEXT), {"subject": ESCAPED, "text": TEXT_ESCAPED}),
        (True, (MARKED, None), {"subject": ESCAPED, "text": ""}),  # no text beside the subject
        (False, (None, None), None),  # the search had no text
    ],
)  # fmt: skip
def test_hit_from_row_escapes_the_highlights_but_the_marks(
    highlighted: bool, highlights: tuple[Any, Any], expected: dict[str, str] | None
) -> None:
    hit = hit_from_row(row(agent=(None, None, None), highlights=highlights), highlighted=highlighted)

    assert hit.highlights == expected
    assert hit.subject == "<b>Router</b>"  # the result's own subject is the stored one
