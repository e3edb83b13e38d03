"""Reads for QA search (T4): the filtered, keyset-paginated ticket search and a ticket's detail."""

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from integrations.models import CrmConnection
from integrations.providers.base import Capability
from integrations.services import connection_can
from ticketsearch.backends import Keyset, TicketHit, search_backend
from ticketsearch.filters import TicketFilter, ticket_query
from ticketsearch.models import Agent, Evaluation, ImportRun, Ticket

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# Parameters that are not filters.
PAGING_PARAMS = ("cursor", "page_size")


class InvalidSearch(Exception):
    """Bad search parameters: `errors` maps each parameter to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__(f"invalid search parameters: {', '.join(errors)}")
        self.errors = dict(errors)


@dataclass(frozen=True)
class SearchPage:
    # Each with its agent and, when the search had text, its highlights.
    tickets: list[TicketHit]
    next_cursor: str | None


def encode_cursor(ticket: Ticket | TicketHit) -> str:
    payload = json.dumps({"c": ticket.created_at.isoformat(), "i": ticket.id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """(created_at, id) of the last ticket of the previous page; ValueError when it is not one of ours."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created_at, ticket_id = datetime.fromisoformat(data["c"]), data["i"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValueError("not a cursor returned by this API") from exc
    if not isinstance(ticket_id, int) or created_at.tzinfo is None:
        raise ValueError("not a cursor returned by this API")
    return created_at, ticket_id


def _page_size(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE_SIZE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise InvalidSearch({"page_size": [f"A whole number from 1 to {MAX_PAGE_SIZE}."]})
    return int(value)


def ticket_search(*, params: Mapping[str, str]) -> SearchPage:
    """One page of tickets matching `params` (TicketFilter's parameters plus cursor and page_size), newest first.

    Keyset pagination on (created_at, id), through the search backend, which brings each hit's agent
    and highlights in the same round trip. Raises InvalidSearch.
    """
    unknown = sorted(set(params) - set(TicketFilter.base_filters) - set(PAGING_PARAMS))
    if unknown:
        raise InvalidSearch({name: ["Unknown parameter."] for name in unknown})
    page_size = _page_size(params.get("page_size"))
    query, errors = ticket_query(params)
    if query is None:
        raise InvalidSearch(errors)
    after = None
    if cursor := params.get("cursor"):
        try:
            created_at, ticket_id = decode_cursor(cursor)
        except ValueError as exc:
            raise InvalidSearch({"cursor": [str(exc)]}) from None
        after = Keyset(created_at=created_at, id=ticket_id)
    backend = search_backend()
    rows = backend.search(query, after=after, limit=page_size + 1)
    tickets, more = rows[:page_size], len(rows) > page_size
    return SearchPage(tickets=tickets, next_cursor=encode_cursor(tickets[-1]) if more else None)


def ticket_get(*, ticket_id: int) -> Ticket | None:
    """One ticket with everything the detail shows, or None (purged, or never imported)."""
    return Ticket.objects.filter(id=ticket_id).defer("search_vector").first()


def ticket_comment_authors(ticket: Ticket) -> dict[str, Agent]:
    """The agents among the ticket's comment authors, by CRM user id (customers are not imported)."""
    author_ids = {c.get("author_id") for c in ticket.comments if isinstance(c, dict) and c.get("author_id")}
    agents = Agent.objects.filter(connection_id=ticket.connection_id, crm_user_id__in=author_ids)
    return {agent.crm_user_id: agent for agent in agents}


def ticket_evaluations(*, ticket_id: int) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(ticket_id=ticket_id).select_related("reviewer").order_by("-created_at")


def connection_can_import(connection: CrmConnection) -> bool:
    """Whether the connection's CRM has a ticket import (its provider declares the capability)."""
    return connection_can(connection, Capability.TICKET_IMPORT)


def last_import_runs(*, connection: CrmConnection | None = None) -> list[tuple[CrmConnection, ImportRun | None]]:
    """Each importing connection (or the one given) with its latest import run, if any."""
    connections = CrmConnection.objects.order_by("pk")
    if connection is not None:
        connections = connections.filter(pk=connection.pk)
    importing = [item for item in connections if connection_can_import(item)]
    latest = {
        run.connection_id: run
        for run in ImportRun.objects.filter(connection__in=importing)
        .order_by("connection_id", "-started_at")
        .distinct("connection_id")
    }
    return [(item, latest.get(item.pk)) for item in importing]
