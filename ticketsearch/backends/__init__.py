"""The search backend seam: every QA search (the API, the admin list) asks one TicketSearchBackend.

A query is a typed TicketQuery (parsed and validated by ticketsearch.filters); the backend answers
with tickets, newest first, after a keyset position. PostgreSQL (ticketsearch.backends.postgres)
is the one backend today; an OpenSearch backend for centers past one database is one more module
implementing the same three methods (docs/ticketsearch.md describes its design).
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


@dataclass(frozen=True)
class Keyset:
    """The position after the last ticket of a page, newest first: (created_at, id) descending."""

    created_at: datetime
    id: int


class TicketSearchBackend(Protocol):
    def search(self, query: TicketQuery, *, after: Keyset | None, limit: int) -> list[Ticket]:
        """Up to `limit` matching tickets after `after`, newest first, with the list's fields loaded."""

    def highlights(self, query: TicketQuery, tickets: list[Ticket]) -> dict[int, dict[str, str]]:
        """For each of these tickets, its subject and best text fragments with the matches in <mark>,
        everything else HTML-escaped."""

    def restrict(self, queryset: QuerySet[Ticket], query: TicketQuery) -> QuerySet[Ticket]:
        """`queryset` narrowed to the matching tickets (the admin's list, with its own filters and paging)."""


def search_backend() -> TicketSearchBackend:
    from ticketsearch.backends.postgres import PostgresTicketSearch

    return PostgresTicketSearch()
