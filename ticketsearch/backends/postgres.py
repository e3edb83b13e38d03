"""The PostgreSQL search backend: full text on the generated search_vector, filters on indexed columns.

Keyset pagination on (created_at, id): page 1,000 costs what page 1 does, and a created_at bound
lets the planner skip the partitions outside it.
"""

import html
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower

from ticketsearch.backends import AgentSummary, Keyset, TicketHit, TicketQuery
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
# What the highlights read besides the subject; selected only when the search has text.
HIGHLIGHTED_FIELDS = ("description", "comments_text", "transcript")


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


def _any_of(field: str, values: tuple[str, ...]) -> Q:
    """`field = a OR field = b`: btree_gin serves `=` inside the search index, but not `= ANY(array)`."""
    condition = Q()
    for value in values:
        condition |= Q(**{field: value})
    return condition


# The page's columns, then the agent's and the highlights, over the page only: the subquery's LIMIT
# is applied before anything else, so ts_headline reads the `limit` rows returned (the page and the
# one that tells whether another follows), never every match.
PAGE_SQL = """
SELECT {list_columns}, agent.first_name, agent.last_name, agent.email, {{highlights}}
FROM ({{page}}) page LEFT JOIN ticketsearch_agent agent ON agent.id = page.agent_id
ORDER BY page.created_at DESC, page.id DESC
""".format(list_columns=", ".join(f"page.{name}" for name in LIST_FIELDS))
# Each ticket's words marked as its own language reads them (its search_config), with private-use
# sentinels removed from the text first and used as the marks (see highlight_html).
HIGHLIGHTS_SQL = f"""
ts_headline(
    page.search_config::regconfig,
    replace(replace(page.subject, '{_START_SENTINEL}', ''), '{_STOP_SENTINEL}', ''),
    websearch_to_tsquery(page.search_config::regconfig, %s),
    %s
),
ts_headline(
    page.search_config::regconfig,
    replace(
        replace(concat(page.description, E'\\n', page.comments_text, E'\\n', page.transcript), '{_START_SENTINEL}', ''),
        '{_STOP_SENTINEL}',
        ''
    ),
    websearch_to_tsquery(page.search_config::regconfig, %s),
    %s
)
"""
# The subject whole, its every match marked; of the rest, the two best fragments.
SUBJECT_HEADLINE_OPTIONS = f"StartSel='{_START_SENTINEL}', StopSel='{_STOP_SENTINEL}', HighlightAll=true"
TEXT_HEADLINE_OPTIONS = (
    f"StartSel='{_START_SENTINEL}', StopSel='{_STOP_SENTINEL}', MaxWords=18, MinWords=6, MaxFragments=2, "
    "FragmentDelimiter=' … '"
)


def hit_from_row(row: tuple[Any, ...], *, highlighted: bool) -> TicketHit:
    """One row of PAGE_SQL as a TicketHit: the list's fields in LIST_FIELDS order, then agent and highlights."""
    fields = dict(zip(LIST_FIELDS, row[: len(LIST_FIELDS)], strict=True))
    first_name, last_name, email, subject_hl, text_hl = row[len(LIST_FIELDS) :]
    agent_id = fields["agent_id"]
    agent = None
    if agent_id is not None and email is not None:
        agent = AgentSummary(id=agent_id, name=f"{first_name} {last_name}".strip(), email=email)
    highlights = None
    if highlighted:
        highlights = {"subject": highlight_html(subject_hl or ""), "text": highlight_html(text_hl or "")}
    return TicketHit(**fields, agent=agent, highlights=highlights)


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

    def search(self, query: TicketQuery, *, after: Keyset | None, limit: int) -> list[TicketHit]:
        """The page, its agents and its highlights in one statement (PAGE_SQL), read as plain rows.

        Profiled at 1M tickets (docs/benchmarks.md), the page used to take five statements (the
        language parses, the page, one ts_headline query per language, the agents) and model
        instances for every row; the round trips and the ORM cost more than the page's own plan.
        """
        queryset = self.restrict(Ticket.objects.all(), query).order_by("-created_at", "-id")
        if after is not None:
            # A row comparison is an index condition on (created_at DESC, id DESC): the scan starts at the
            # cursor instead of filtering out the newer rows of its day; the plain bound prunes newer days.
            after_cursor = RawSQL(
                '("ticketsearch_ticket"."created_at", "ticketsearch_ticket"."id") < (%s, %s)',
                (after.created_at, after.id),
                output_field=BooleanField(),
            )
            queryset = queryset.filter(after_cursor, created_at__lte=after.created_at)
        text = query.text.strip()
        columns = (*LIST_FIELDS, *HIGHLIGHTED_FIELDS) if text else LIST_FIELDS
        try:
            page_sql, page_params = queryset.values_list(*columns)[:limit].query.sql_with_params()
        except EmptyResultSet:
            # A condition nothing can meet (no word left of the text): Django compiles no SQL for it.
            return []
        highlights_sql, highlights_params = "NULL, NULL", []
        if text:
            highlights_sql = HIGHLIGHTS_SQL
            highlights_params = [text, SUBJECT_HEADLINE_OPTIONS, text, TEXT_HEADLINE_OPTIONS]
        sql = PAGE_SQL.format(page=page_sql, highlights=highlights_sql)
        with connection.cursor() as cursor:
            cursor.execute(sql, [*highlights_params, *page_params])
            return [hit_from_row(row, highlighted=bool(text)) for row in cursor.fetchall()]
