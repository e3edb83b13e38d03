"""The search backend seam: every QA search (the API, the admin list) asks one TicketSearchBackend.

A query is a typed TicketQuery (parsed and validated by ticketsearch.filters); the backend answers
with hits, newest first, after a keyset position: each one the list's fields of a ticket, its agent,
and (when the query has text) its highlights, all from one round trip. PostgreSQL
(ticketsearch.backends.postgres) is the one backend today; an OpenSearch backend for centers past
one database is one more module implementing the same two methods (docs/ticketsearch.md describes
its design).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.db.models import QuerySet

from ticketsearch.models import Ticket


@dataclass(frozen=True)
class TicketQuery:
    """What a QA reviewer asks for; every field set narrows the search."""

    text: str = ""
    crm_kinds: tuple[str, ...] = ()
    connection_id: int | None = None
    channels: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    agent_id: int | None = None
    agent_email: str | None = None
    requester_email: str | None = None
    # The last digits of the requester's phone, digits only.
    phone_suffix: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    # All must be present.
    tags: tuple[str, ...] = ()
    # True: only tickets with an evaluation; False: only those without.
    reviewed: bool | None = None


@dataclass(frozen=True, slots=True)
class AgentSummary:
    """What a search result shows of its agent."""

    id: int
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class TicketHit:
    """One search result: what the list shows of a ticket, read as plain values (no model instance).

    `highlights` is {"subject": ..., "text": ...} with the matches in <mark> and everything else
    HTML-escaped, when the query had text; None otherwise.
    """

    id: int
    created_at: datetime
    connection_id: int
    crm_kind: str
    crm_ticket_id: str
    subject: str
    status: str
    channel: str
    agent_id: int | None
    requester_name: str
    requester_email: str
    requester_phone: str
    tags: list[str]
    recording_urls: list[str]
    crm_url: str
    solved_at: datetime | None
    search_config: str
    agent: AgentSummary | None
    highlights: dict[str, str] | None


@dataclass(frozen=True)
class Keyset:
    """The position after the last ticket of a page, newest first: (created_at, id) descending."""

    created_at: datetime
    id: int


class TicketSearchBackend(Protocol):
    def search(self, query: TicketQuery, *, after: Keyset | None, limit: int) -> list[TicketHit]:
        """Up to `limit` matching tickets after `after`, newest first, with their agents and, when the
        query has text, their subject and best text fragments with the matches in <mark>.

        Highlights come with the hits because both backends make them in the same request: PostgreSQL
        in the statement that finds the page (ts_headline over those rows only), OpenSearch from its
        highlighter in the search response.
        """

    def restrict(self, queryset: QuerySet[Ticket], query: TicketQuery) -> QuerySet[Ticket]:
        """`queryset` narrowed to the matching tickets (the admin's list, with its own filters and paging)."""


def search_backend() -> TicketSearchBackend:
    from ticketsearch.backends.postgres import PostgresTicketSearch

    return PostgresTicketSearch()
