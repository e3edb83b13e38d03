"""Reads for QA search (T4): the filtered, keyset-paginated ticket search and a ticket's detail."""

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.postgres.search import SearchHeadline
from django.db.models import BooleanField, F, QuerySet, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Concat

from integrations.models import CrmConnection
from integrations.providers.importing import TicketImportSource
from integrations.providers.registry import PROVIDERS
from ticketsearch.filters import SEARCH_CONFIG, TicketFilter, text_query
from ticketsearch.models import Agent, Evaluation, ImportRun, Ticket

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# Parameters that are not filters.
PAGING_PARAMS = ("cursor", "page_size")
# How ts_headline marks the matching words.
START_MARK, STOP_MARK = "<mark>", "</mark>"
# What the list shows of a ticket; the heavy text columns stay in the table until the detail asks.
LIST_FIELDS = (
    "id",
    "created_at",
    "connection_id",
    "crm_kind",
    "crm_ticket_id",
    "subject",
    "status",
    "channel",
    "agent_id",
    "requester_name",
    "requester_email",
    "requester_phone",
    "tags",
    "recording_urls",
    "crm_url",
    "solved_at",
)


class InvalidSearch(Exception):
    """Bad search parameters: `errors` maps each parameter to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__(f"invalid search parameters: {', '.join(errors)}")
        self.errors = dict(errors)


@dataclass(frozen=True)
class SearchPage:
    tickets: list[Ticket]
    next_cursor: str | None
    # Ticket id -> {"subject": ..., "text": ...} with the matches marked, when the search had text.
    highlights: dict[int, dict[str, str]] = field(default_factory=dict)
    agents: dict[int, Agent] = field(default_factory=dict)


def encode_cursor(ticket: Ticket) -> str:
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


def ticket_search(*, params: Mapping[str, str], base: QuerySet[Ticket] | None = None) -> SearchPage:
    """One page of tickets matching `params` (TicketFilter's parameters plus cursor and page_size), newest first.

    Keyset pagination on (created_at, id): page 1,000 costs what page 1 does, and the created_at
    bound lets the planner skip the partitions of newer days. Raises InvalidSearch.
    """
    unknown = sorted(set(params) - set(TicketFilter.base_filters) - set(PAGING_PARAMS))
    if unknown:
        raise InvalidSearch({name: ["Unknown parameter."] for name in unknown})
    page_size = _page_size(params.get("page_size"))
    filterset = TicketFilter(data=params, queryset=base if base is not None else Ticket.objects.all())
    if not filterset.is_valid():
        raise InvalidSearch(
            {name: [str(message) for message in messages] for name, messages in filterset.errors.items()}
        )
    queryset = filterset.qs.only(*LIST_FIELDS).order_by("-created_at", "-id")
    cursor = params.get("cursor")
    if cursor:
        try:
            created_at, ticket_id = decode_cursor(cursor)
        except ValueError as exc:
            raise InvalidSearch({"cursor": [str(exc)]}) from None
        # A row comparison is an index condition on (created_at DESC, id DESC): the scan starts at the
        # cursor instead of filtering out the newer rows of its day; the plain bound prunes newer days.
        after_cursor = RawSQL(
            '("ticketsearch_ticket"."created_at", "ticketsearch_ticket"."id") < (%s, %s)',
            (created_at, ticket_id),
            output_field=BooleanField(),
        )
        queryset = queryset.filter(after_cursor, created_at__lte=created_at)
    rows = list(queryset[: page_size + 1])
    tickets, more = rows[:page_size], len(rows) > page_size
    q = (params.get("q") or "").strip()
    return SearchPage(
        tickets=tickets,
        next_cursor=encode_cursor(tickets[-1]) if more else None,
        highlights=_highlights(tickets, q) if q else {},
        agents=Agent.objects.in_bulk({t.agent_id for t in tickets if t.agent_id}),
    )


def _highlights(tickets: list[Ticket], q: str) -> dict[int, dict[str, str]]:
    """The matching text of the page's tickets only: ts_headline reads whole documents, so never for the rest."""
    if not tickets:
        return {}
    query = text_query(q)
    text = Concat(
        F("description"), Value("\n"), F("comments_text"), Value("\n"), F("transcript"), output_field=TextField()
    )
    rows = (
        Ticket.objects.filter(id__in=[t.id for t in tickets], created_at__in={t.created_at for t in tickets})
        .annotate(
            subject_hl=SearchHeadline(
                "subject", query, config=SEARCH_CONFIG, highlight_all=True, start_sel=START_MARK, stop_sel=STOP_MARK
            ),
            text_hl=SearchHeadline(
                text,
                query,
                config=SEARCH_CONFIG,
                max_fragments=2,
                max_words=18,
                min_words=6,
                fragment_delimiter=" … ",
                start_sel=START_MARK,
                stop_sel=STOP_MARK,
            ),
        )
        .values_list("id", "subject_hl", "text_hl")
    )
    return {ticket_id: {"subject": subject, "text": body} for ticket_id, subject, body in rows}


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
    """Whether the connection's CRM has a ticket import (its provider is a TicketImportSource)."""
    provider = PROVIDERS.get(connection.kind)
    return provider is not None and issubclass(provider, TicketImportSource)


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
