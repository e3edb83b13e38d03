"""The PostgreSQL search backend: full text on the generated search_vector, filters on indexed columns.

Keyset pagination on (created_at, id): page 1,000 costs what page 1 does, and a created_at bound
lets the planner skip the partitions outside it.
"""

import html
from typing import Any

from django.contrib.postgres.search import SearchHeadline, SearchQuery
from django.db import connection
from django.db.models import BooleanField, Exists, F, OuterRef, Q, QuerySet, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Concat, Lower, Replace

from ticketsearch.backends import Keyset, TicketQuery
from ticketsearch.models import Evaluation, SearchLanguage, Ticket

# The text search configuration when no ticket has been stored yet (each ticket's own is in its
# search_config column, migration 0007).
FALLBACK_CONFIG = "simple"
# How highlights mark the matching words.
START_MARK, STOP_MARK = "<mark>", "</mark>"
# What ts_headline is asked to mark them with: private-use characters, removed from the text first,
# so that after the whole fragment is HTML-escaped they are the only places a tag can appear.
_START_SENTINEL, _STOP_SENTINEL = "\ue000", "\ue001"
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
    "search_config",
)


def text_query(q: str, config: str) -> SearchQuery:
    """Web-search syntax: words are ANDed, "quoted phrases", `or`, and `-word` to exclude."""
    return SearchQuery(q, search_type="websearch", config=config)


def text_tsquery(q: str) -> str | None:
    """The words as one tsquery over every language in play; None when no language finds a word in them.

    Each ticket's vector holds `lang <oid of its configuration>` (migration 0007), so the words
    parsed by each language's stemmer are asked only of that language's tickets:
    `('lang 13164' & 'refund') | ('lang 3748' & 'refunds')`. Pairing each parse with its own tickets
    keeps `-word` exact (another language's parse would not exclude the English stem), and the
    whole search stays one `@@` on search_vector, served by the multicolumn GIN index together with
    the other filters. The parses come from PostgreSQL itself (one small query), so they are exactly
    what its stemmers make of the words.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT cfg.oid, websearch_to_tsquery(cfg.oid::regconfig, %s)::text
            FROM {SearchLanguage._meta.db_table} language JOIN pg_ts_config cfg ON cfg.cfgname = language.config
            ORDER BY cfg.cfgname
            """,  # noqa: S608
            [q],
        )
        every = cursor.fetchall()
        # A language finding no word (all stopwords to it) has no branch: its tickets cannot match.
        parses = [(oid, parsed) for oid, parsed in every if parsed]
        if not parses:
            cursor.execute("SELECT websearch_to_tsquery(%s::regconfig, %s)::text", [FALLBACK_CONFIG, q])
            (parsed,) = cursor.fetchone()
            return parsed or None
    # Languages that read the words alike share one branch; when all do (a name, a number, a word no
    # stemmer changes), every ticket is in one of them and the markers would only cost index reads.
    by_parse: dict[str, list[int]] = {}
    for oid, parsed in parses:
        by_parse.setdefault(parsed, []).append(oid)
    if len(by_parse) == 1 and len(parses) == len(every):
        return parses[0][1]
    branches = []
    for parsed, oids in by_parse.items():
        languages = " | ".join(f"'lang {oid}'" for oid in oids)
        branches.append(f"(({languages}) & ({parsed}))")
    return " | ".join(branches)


def text_condition(q: str) -> Q | RawSQL:
    """`search_vector @@` the words in every language in play (text_tsquery); nothing when no word is left."""
    tsquery = text_tsquery(q)
    if tsquery is None:
        return Q(pk__in=[])
    return RawSQL('"ticketsearch_ticket"."search_vector" @@ %s::tsquery', (tsquery,), output_field=BooleanField())


def highlight_html(fragment: str) -> str:
    """A ts_headline fragment made safe to show: customer text escaped, only our `<mark>` tags left."""
    return html.escape(fragment).replace(_START_SENTINEL, START_MARK).replace(_STOP_SENTINEL, STOP_MARK)


def _without_sentinels(expression: Any) -> Replace:
    return Replace(Replace(expression, Value(_START_SENTINEL), Value("")), Value(_STOP_SENTINEL), Value(""))


def _any_of(field: str, values: tuple[str, ...]) -> Q:
    """`field = a OR field = b`: btree_gin serves `=` inside the search index, but not `= ANY(array)`."""
    condition = Q()
    for value in values:
        condition |= Q(**{field: value})
    return condition


class PostgresTicketSearch:
    def restrict(self, queryset: QuerySet[Ticket], query: TicketQuery) -> QuerySet[Ticket]:
        if query.text.strip():
            queryset = queryset.filter(text_condition(query.text))
        if query.crm_kinds:
            queryset = queryset.filter(_any_of("crm_kind", query.crm_kinds))
        if query.connection_id is not None:
            queryset = queryset.filter(connection_id=query.connection_id)
        if query.channels:
            queryset = queryset.filter(_any_of("channel", query.channels))
        if query.statuses:
            queryset = queryset.filter(_any_of("status", query.statuses))
        if query.agent_id is not None:
            queryset = queryset.filter(agent_id=query.agent_id)
        if query.agent_email:
            queryset = queryset.filter(agent__email__iexact=query.agent_email)
        if query.requester_email:
            # lower() = lower(): the expression index ticketsearch_ticket_requester serves it.
            requester = query.requester_email.lower()
            queryset = queryset.alias(requester_ci=Lower("requester_email")).filter(requester_ci=requester)
        if query.phone_suffix:
            # "Ends with" on the reversed digits is a prefix match, served by a text_pattern_ops index.
            queryset = queryset.filter(requester_phone_rev__startswith=query.phone_suffix[::-1])
        if query.created_from is not None:
            queryset = queryset.filter(created_at__gte=query.created_from)
        if query.created_to is not None:
            queryset = queryset.filter(created_at__lt=query.created_to)
        if query.tags:
            queryset = queryset.filter(tags__contains=list(query.tags))
        if query.reviewed is not None:
            reviewed = Exists(Evaluation.objects.filter(ticket_id=OuterRef("id")))
            queryset = queryset.filter(reviewed if query.reviewed else ~reviewed)
        return queryset

    def search(self, query: TicketQuery, *, after: Keyset | None, limit: int) -> list[Ticket]:
        queryset = self.restrict(Ticket.objects.all(), query).only(*LIST_FIELDS).order_by("-created_at", "-id")
        if after is not None:
            # A row comparison is an index condition on (created_at DESC, id DESC): the scan starts at the
            # cursor instead of filtering out the newer rows of its day; the plain bound prunes newer days.
            after_cursor = RawSQL(
                '("ticketsearch_ticket"."created_at", "ticketsearch_ticket"."id") < (%s, %s)',
                (after.created_at, after.id),
                output_field=BooleanField(),
            )
            queryset = queryset.filter(after_cursor, created_at__lte=after.created_at)
        return list(queryset[:limit])

    def highlights(self, query: TicketQuery, tickets: list[Ticket]) -> dict[int, dict[str, str]]:
        """The matching text of these tickets only: ts_headline reads whole documents, so never for the rest.

        Each ticket's text is marked as its own language reads the words (one query per language).
        """
        if not tickets or not query.text.strip():
            return {}
        by_config: dict[str, list[Ticket]] = {}
        for ticket in tickets:
            by_config.setdefault(ticket.search_config, []).append(ticket)
        found: dict[int, dict[str, str]] = {}
        for config, group in by_config.items():
            found |= self._highlights(query.text, config, group)
        return found

    def _highlights(self, q: str, config: str, tickets: list[Ticket]) -> dict[int, dict[str, str]]:
        search = text_query(q, config)
        text = Concat(
            F("description"), Value("\n"), F("comments_text"), Value("\n"), F("transcript"), output_field=TextField()
        )
        rows = (
            Ticket.objects.filter(id__in=[t.id for t in tickets], created_at__in={t.created_at for t in tickets})
            .annotate(
                subject_hl=SearchHeadline(
                    _without_sentinels(F("subject")),
                    search,
                    config=config,
                    highlight_all=True,
                    start_sel=_START_SENTINEL,
                    stop_sel=_STOP_SENTINEL,
                ),
                text_hl=SearchHeadline(
                    _without_sentinels(text),
                    search,
                    config=config,
                    max_fragments=2,
                    max_words=18,
                    min_words=6,
                    fragment_delimiter=" … ",
                    start_sel=_START_SENTINEL,
                    stop_sel=_STOP_SENTINEL,
                ),
            )
            .values_list("id", "subject_hl", "text_hl")
        )
        return {
            ticket_id: {"subject": highlight_html(subject), "text": highlight_html(body)}
            for ticket_id, subject, body in rows
        }
