"""Import of CRM agents and solved tickets for QA search (T1-T2), one connection at a time.

A run reads users, then tickets, page by page from the connection's provider. Each page is saved
in one transaction together with the cursor after it, so a run that dies resumes where the last
page was saved and a second run reads only what changed. Tickets are upserted in bulk (COPY into a
staging table, then one INSERT ... ON CONFLICT on (connection, CRM ticket id, created_at)), so a
ticket read twice is one row. What is skipped is counted per reason on the ImportRun.
"""

import dataclasses
import functools
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from time import monotonic
from typing import Any

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from integrations.exceptions import CrmError
from integrations.models import CrmConnection
from integrations.providers.base import Capability
from integrations.providers.importing import (
    CommentPage,
    ImportedComment,
    ImportedTicket,
    ImportedTicketComment,
    ImportedUser,
    TicketImportSource,
)
from integrations.providers.registry import PROVIDERS
from integrations.ratelimit import WorkClass
from integrations.services import connection_circuit_check, connection_circuit_record, connection_provider
from ticketsearch import rules
from ticketsearch.models import Agent, AgentOrigin, CrmComment, ImportRun, ImportState, SearchLanguage
from ticketsearch.rules import RETENTION, ExistingAgent, Skip, UserAction
from ticketsearch.services.retention import COMMENT_TABLE, TABLE, partitions_ensure, partitions_existing

logger = logging.getLogger(__name__)

# Progress callback: (phase "users" | "tickets", items just processed, total the CRM announced or None).
Progress = Callable[[str, int, int | None], None]
# Namespace of the PostgreSQL advisory lock that keeps two imports of one connection apart.
LOCK_NAMESPACE = 4_040_001

TICKET_COLUMNS = (
    "created_at",
    "connection_id",
    "crm_kind",
    "crm_ticket_id",
    "subject",
    "description",
    "status",
    "channel",
    "agent_id",
    "agent_crm_id",
    "requester_crm_id",
    "requester_name",
    "requester_email",
    "requester_phone",
    "requester_phone_rev",
    "tags",
    "comments",
    "comments_text",
    "transcript",
    "recording_urls",
    "crm_url",
    "crm_updated_at",
    "solved_at",
    "imported_at",
    "search_config",
)
# How COPY writes each value of a staging row (TICKET_COLUMNS order), in PostgreSQL's binary format
# (half the time of the text format on the client and the server: no timestamp or array parsing).
# Comments are JSON already serialized and search_config a configuration's name, staged as text and
# cast by the upsert (a binary jsonb or regconfig value has another layout).
COPY_TYPES = [
    *("timestamptz", "int8", "text", "text", "text", "text", "text", "text", "int8", "text", "text", "text"),
    *("text", "text", "text", "text[]", "text", "text", "text", "text[]", "text", "timestamptz", "timestamptz"),
    *("timestamptz", "text"),
]
_STAGE_DDL = """
CREATE TEMP TABLE ticketsearch_stage (
    created_at timestamptz, connection_id bigint, crm_kind varchar(20), crm_ticket_id varchar(64),
    subject text, description text, status varchar(40), channel varchar(40), agent_id bigint,
    agent_crm_id varchar(64), requester_crm_id varchar(64), requester_name text, requester_email text,
    requester_phone varchar(40), requester_phone_rev varchar(40), tags text[], comments text,
    comments_text text, transcript text, recording_urls text[], crm_url text, crm_updated_at timestamptz,
    solved_at timestamptz, imported_at timestamptz, search_config text
) ON COMMIT DROP
"""
_UPDATED = [c for c in TICKET_COLUMNS if c not in ("created_at", "connection_id", "crm_ticket_id")]
# The staged values as the table's types (the two staged as text, COPY_TYPES says why).
_STAGED = [
    {"comments": "comments::jsonb", "search_config": "search_config::regconfig"}.get(c, c) for c in TICKET_COLUMNS
]
# Rows whose CRM state did not change are left alone: a re-read page rewrites nothing.
_UPSERT = f"""
INSERT INTO {TABLE} ({", ".join(TICKET_COLUMNS)})
SELECT {", ".join(_STAGED)} FROM ticketsearch_stage
ON CONFLICT (connection_id, crm_ticket_id, created_at) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATED)}
WHERE {TABLE}.crm_updated_at IS DISTINCT FROM EXCLUDED.crm_updated_at
   OR {TABLE}.agent_id IS DISTINCT FROM EXCLUDED.agent_id
"""  # noqa: S608
# How many staged tickets are stored already (RETURNING xmax, the usual "was it an insert" test, is
# not allowed on a partitioned table).
_ALREADY_STORED = f"""
SELECT count(*) FROM {TABLE} JOIN ticketsearch_stage USING (connection_id, crm_ticket_id, created_at)
"""  # noqa: S608


COMMENT_COLUMNS = (
    "connection_id",
    "crm_ticket_id",
    "crm_comment_id",
    "author_id",
    "body",
    "public",
    "created_at",
    "recording_url",
    "transcript",
)
_COMMENT_STAGE_DDL = """
CREATE TEMP TABLE ticketsearch_comment_stage (
    connection_id bigint, crm_ticket_id varchar(64), crm_comment_id varchar(64), author_id varchar(64),
    body text, public boolean, created_at timestamptz, recording_url text, transcript text
) ON COMMIT DROP
"""
_COMMENT_UPSERT = f"""
INSERT INTO {COMMENT_TABLE} ({", ".join(COMMENT_COLUMNS)})
SELECT {", ".join(COMMENT_COLUMNS)} FROM ticketsearch_comment_stage
ON CONFLICT (connection_id, crm_ticket_id, crm_comment_id) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in COMMENT_COLUMNS[3:])}
"""  # noqa: S608


class ImportNotSupported(Exception):
    """The connection's CRM has no import (its provider is not a TicketImportSource)."""


class ImportAlreadyRunning(Exception):
    """Another import of the same connection holds the lock; this one did nothing."""


# Written on a run found still "running" by the next run of its connection: holding the lock now
# means the run's own session (and its lock) is gone.
ABANDONED_ERROR = "The worker stopped (killed, or at its hard time limit) before the run finished; resumed."


@dataclass
class _Counts:
    run: ImportRun
    skipped: Counter[str]

    def save(self) -> None:
        self.run.skipped = dict(sorted(self.skipped.items()))
        self.run.save(
            update_fields=[
                "users_fetched",
                "users_created",
                "users_updated",
                "tickets_fetched",
                "tickets_imported",
                "tickets_updated",
                "tickets_removed",
                "comments_skipped",
                "skipped",
            ]
        )


@contextmanager
def _import_lock(connection_id: int) -> Iterator[None]:
    """A session-level advisory lock, held for the whole run (which spans many transactions)."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, connection_id])
        (locked,) = cursor.fetchone()
    if not locked:
        raise ImportAlreadyRunning(f"an import of connection {connection_id} is already running")
    try:
        yield
    finally:
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, connection_id])


def tickets_import(
    *,
    connection: CrmConnection,
    trigger: str,
    since: datetime | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
    deadline: float | None = None,
) -> ImportRun:
    """Import the connection's agents and solved tickets changed since its cursor.

    `since` ignores the stored cursors and reads everything changed from that time (a first import
    starts 90 days back). Past `deadline` (a time.monotonic() value) no further page is started:
    the run ends *interrupted* and the next one resumes after its last saved page. Raises
    ImportNotSupported, ImportAlreadyRunning, CircuitOpen (the connection's circuit is open: nothing
    started), or the provider's CrmError after recording it on the
    run (status failed); anything else that stops it (a soft time limit) leaves it interrupted.
    Pages saved before either stay saved.
    """
    # Below live session work in the shared request budget (integrations.ratelimit).
    provider = connection_provider(connection, work_class=WorkClass.IMPORT)
    if not provider.can(Capability.TICKET_IMPORT) or not isinstance(provider, TicketImportSource):
        raise ImportNotSupported(f"{connection.get_kind_display()} connections cannot be imported yet")
    # A CRM that is down pauses its import as it pauses live work: no run is started meanwhile.
    connection_circuit_check(connection)
    now = now or timezone.now()
    with _import_lock(connection.pk):
        state, _ = ImportState.objects.get_or_create(connection=connection)
        ImportRun.objects.filter(connection=connection, status=ImportRun.Status.RUNNING).update(
            status=ImportRun.Status.INTERRUPTED, error=ABANDONED_ERROR, finished_at=timezone.now()
        )
        run = ImportRun.objects.create(connection=connection, trigger=trigger, since=since)
        counts = _Counts(run=run, skipped=Counter())
        start = since or now - RETENTION

        def out_of_time() -> bool:
            return deadline is not None and monotonic() >= deadline

        try:
            users_cursor = None if since else state.users_cursor or None
            for user_page in provider.iter_users(cursor=users_cursor, since=start):
                with transaction.atomic():
                    _save_users(user_page.items, connection=connection, counts=counts, now=now)
                    state.users_cursor = user_page.cursor
                    state.save(update_fields=["users_cursor", "updated_at"])
                    counts.save()
                if progress:
                    progress("users", len(user_page.items), user_page.total)
                if out_of_time():
                    return _interrupted(run, "Stopped at its time limit while reading users; resumes from its cursor.")

            tickets_cursor = None if since else state.tickets_cursor or None
            partitions = set(partitions_existing())
            stream = (
                _CommentStream(provider, connection=connection, state=state, since=since, start=start, now=now)
                if provider.comments_in_bulk
                else None
            )
            for ticket_page in provider.iter_tickets(cursor=tickets_cursor, since=start):
                kept = _decide_tickets(ticket_page.items, connection=connection, counts=counts, now=now)
                if stream is not None:
                    loaded = stream.comments_for([ticket for ticket, _ in kept])
                else:
                    # Read only for the tickets kept: a request (or more) per ticket.
                    loaded = provider.load_comments([ticket for ticket, _ in kept])
                with transaction.atomic():
                    _commit_without_waiting_for_disk()
                    _save_tickets(
                        list(zip(loaded, (agent for _, agent in kept), strict=True)),
                        connection=connection,
                        counts=counts,
                        now=now,
                        partitions=partitions,
                    )
                    _remove_reopened(ticket_page.items, connection=connection, counts=counts)
                    state.tickets_cursor = ticket_page.cursor
                    state.save(update_fields=["tickets_cursor", "updated_at"])
                    counts.save()
                if progress:
                    progress("tickets", len(ticket_page.items), ticket_page.total)
                if out_of_time():
                    return _interrupted(
                        run, "Stopped at its time limit while reading tickets; resumes from its cursor."
                    )
        except CrmError as exc:
            run.status = ImportRun.Status.FAILED
            run.error = f"{exc.__class__.__name__}: {exc}"[:4000]
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "error", "finished_at"])
            logger.warning("ticketsearch.import.failed %s: %s", connection.pk, exc, extra={"run": run.pk})
            raise
        except BaseException as exc:
            # A soft time limit inside a request, or our own database: the run is not "running" any
            # more. Best effort: when the database itself is gone, the next run marks it instead.
            try:
                _interrupted(run, f"{exc.__class__.__name__}: {exc}")
            except Exception:
                logger.warning("ticketsearch.import.unmarked %s", run.pk, exc_info=True)
            raise
        # The CRM answered every page: a half-open circuit closes on it, as on a live action.
        connection_circuit_record(connection, success=True)
        run.status = ImportRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
        state.last_run_at = run.finished_at
        state.save(update_fields=["last_run_at", "updated_at"])
    return run


class _CommentStream:
    """The CRM's comment stream, read just far enough for each page of tickets, and the comment store.

    A ticket's comments are all made before its last update, so once the stream is complete up
    to the page's latest update, the store holds every comment of the page's tickets. Each page of
    comments is saved with the stream's cursor after it, like the tickets.
    """

    def __init__(
        self,
        provider: TicketImportSource,
        *,
        connection: CrmConnection,
        state: ImportState,
        since: datetime | None,
        start: datetime,
        now: datetime,
    ) -> None:
        self.connection, self.state = connection, state
        self.oldest = now - RETENTION
        cursor = None if since else state.comments_cursor or None
        self.pages: Iterator[CommentPage] = provider.iter_comments(cursor=cursor, since=start)
        self.complete_until: datetime | None = None
        self.done = False

    def comments_for(self, tickets: list[ImportedTicket]) -> list[ImportedTicket]:
        if not tickets:
            return tickets
        self._read_until(max(ticket.updated_at for ticket in tickets))
        comments: dict[str, list[ImportedComment]] = {}
        rows = (
            CrmComment.objects.filter(connection=self.connection, crm_ticket_id__in=[t.crm_id for t in tickets])
            .order_by("created_at", "id")
            .values_list(
                "crm_ticket_id", "crm_comment_id", "author_id", "body", "public", "created_at", "recording_url",
                "transcript",
            )
        )  # fmt: skip
        for ticket_id, comment_id, author_id, body, public, created_at, recording_url, transcript in rows:
            comments.setdefault(ticket_id, []).append(
                ImportedComment(comment_id, author_id, body, public, created_at, recording_url, transcript)
            )
        return [dataclasses.replace(t, comments=tuple(comments.get(t.crm_id, ()))) for t in tickets]

    def _read_until(self, needed: datetime) -> None:
        while not self.done and (self.complete_until is None or self.complete_until <= needed):
            page = next(self.pages, None)
            if page is None:
                self.done = True
                return
            with transaction.atomic():
                _save_comments(page.items, connection=self.connection, oldest=self.oldest)
                self.state.comments_cursor = page.cursor
                self.state.save(update_fields=["comments_cursor", "updated_at"])
            self.complete_until = page.complete_until


def _save_comments(comments: list[ImportedTicketComment], *, connection: CrmConnection, oldest: datetime) -> None:
    # One row per comment even when a page boundary repeated it; older than 90 days: its ticket is gone.
    unique = {
        (item.ticket_crm_id, item.comment.crm_id): item
        for item in comments
        if item.comment.created_at is not None and item.comment.created_at >= oldest
    }
    if not unique:
        return
    with db_connection.cursor() as cursor:
        cursor.execute(_COMMENT_STAGE_DDL)
        with cursor.cursor.copy(f"COPY ticketsearch_comment_stage ({', '.join(COMMENT_COLUMNS)}) FROM STDIN") as copy:
            for item in unique.values():
                c = item.comment
                copy.write_row(
                    (connection.pk, item.ticket_crm_id, c.crm_id, c.author_id, c.body, c.public, c.created_at,
                     c.recording_url, c.transcript)
                )  # fmt: skip
        cursor.execute(_COMMENT_UPSERT)
        cursor.execute("DROP TABLE ticketsearch_comment_stage")


def _commit_without_waiting_for_disk() -> None:
    """The page's transaction commits without waiting for its WAL to reach the disk (1-5 ms a page).

    Safe for an import: a crash can lose only whole last pages together with the cursor saved in
    them, so the next run reads those pages again; nothing outside the database saw them.
    """
    with db_connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")


def _interrupted(run: ImportRun, error: str) -> ImportRun:
    run.status = ImportRun.Status.INTERRUPTED
    run.error = error[:4000]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    logger.info("ticketsearch.import.interrupted %s: %s", run.connection_id, error, extra={"run": run.pk})
    return run


# -- Users (T1) ------------------------------------------------------------------------------------


def _existing(agent: Agent) -> ExistingAgent:
    identity = (agent.connection_id, agent.crm_user_id) if agent.connection_id and agent.crm_user_id else None
    return ExistingAgent(
        id=agent.pk,
        email=agent.email.lower(),
        first_name=agent.first_name,
        last_name=agent.last_name,
        is_active=agent.is_active,
        from_other_channel=agent.origin == AgentOrigin.OTHER_CHANNEL,
        crm_identity=identity,
    )


def _save_users(users: list[ImportedUser], *, connection: CrmConnection, counts: _Counts, now: datetime) -> None:
    counts.run.users_fetched += len(users)
    emails = {rules.normalize_email(user.email) for user in users} - {""}
    agents = {
        agent.pk: agent
        for agent in Agent.objects.filter(connection=connection, crm_user_id__in=[u.crm_id for u in users])
    }
    agents |= {agent.pk: agent for agent in Agent.objects.annotate(email_ci=Lower("email")).filter(email_ci__in=emails)}
    by_identity = {agent.crm_user_id: agent for agent in agents.values() if agent.connection_id == connection.pk}
    by_email = {agent.email.lower(): agent for agent in agents.values()}
    for user in users:
        email = rules.normalize_email(user.email)
        linked = by_identity.get(user.crm_id)
        same_email = by_email.get(email)
        decision = rules.decide_user(
            user,
            connection_id=connection.pk,
            linked=_existing(linked) if linked else None,
            same_email=_existing(same_email) if same_email else None,
        )
        if decision.action == UserAction.SKIP:
            assert decision.reason is not None
            counts.skipped[decision.reason.value] += 1
            continue
        if decision.action == UserAction.UNCHANGED:
            continue
        agent = linked or same_email or Agent(origin=AgentOrigin.CRM)
        agent.email, agent.first_name, agent.last_name = email, user.first_name.strip(), user.last_name.strip()
        agent.is_active = user.is_active
        if decision.action == UserAction.CREATE:
            agent.connection, agent.crm_user_id = connection, user.crm_id
            agent.save()
            counts.run.users_created += 1
        else:
            if decision.action == UserAction.LINK:
                agent.connection, agent.crm_user_id, agent.linked_at = connection, user.crm_id, now
            agent.save()
            counts.run.users_updated += 1
        by_identity[user.crm_id] = agent
        by_email[email] = agent


# -- Tickets (T1-T3) -------------------------------------------------------------------------------


def _decide_tickets(
    tickets: list[ImportedTicket], *, connection: CrmConnection, counts: _Counts, now: datetime
) -> list[tuple[ImportedTicket, int]]:
    """The tickets to store, each with its agent's id; the others counted by skip reason."""
    counts.run.tickets_fetched += len(tickets)
    assignees = {ticket.assignee_id for ticket in tickets if ticket.assignee_id}
    agent_ids = dict(
        Agent.objects.filter(connection=connection, crm_user_id__in=assignees).values_list("crm_user_id", "pk")
    )
    kept: dict[str, tuple[ImportedTicket, int]] = {}
    for ticket in tickets:
        agent_id = agent_ids.get(ticket.assignee_id or "")
        reason = rules.ticket_skip_reason(ticket, agent_id=agent_id, now=now)
        if reason is not None:
            counts.skipped[reason.value] += 1
            continue
        assert agent_id is not None
        # A ticket read twice in one page (it changed while being exported) is stored once, as last read.
        kept[ticket.crm_id] = (ticket, agent_id)
    return list(kept.values())


@functools.cache
def _available_search_configs() -> frozenset[str]:
    """The text search configurations this PostgreSQL has (pg_ts_config), read once per process."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT cfgname FROM pg_ts_config")
        return frozenset(row[0] for row in cursor.fetchall())


def ticket_search_config(ticket: ImportedTicket) -> str:
    """The text search configuration this ticket is stemmed with (its CRM language, else the setting)."""
    return rules.search_config(
        ticket.language,
        available=_available_search_configs(),
        default_locale=settings.TICKETSEARCH_DEFAULT_LANGUAGE,
    )


def _record_search_languages(configs: set[str]) -> None:
    """Make the configurations a page's tickets are stemmed with known to the search: one statement a page."""
    SearchLanguage.objects.bulk_create([SearchLanguage(config=c) for c in sorted(configs)], ignore_conflicts=True)


def _ticket_row(
    ticket: ImportedTicket, agent_id: int, connection: CrmConnection, now: datetime, config: str
) -> tuple[tuple[Any, ...], int]:
    """The staging row of a ticket (in TICKET_COLUMNS order, for COPY_TYPES), and the comments left out."""
    comments, dropped = rules.interactions_with_user(ticket.comments)
    transcripts = [*ticket.transcripts, *(c.transcript for c in comments if c.transcript)]
    row = (
        ticket.created_at,
        connection.pk,
        connection.kind,
        ticket.crm_id,
        ticket.subject,
        ticket.description,
        ticket.status,
        ticket.channel,
        agent_id,
        ticket.assignee_id or "",
        ticket.requester_id or "",
        ticket.requester_name,
        ticket.requester_email or "",
        ticket.requester_phone or "",
        rules.phone_digits_reversed(ticket.requester_phone),
        list(ticket.tags),
        json.dumps(
            [
                {
                    "id": c.crm_id,
                    "author_id": c.author_id,
                    "body": c.body,
                    "public": c.public,
                    "created_at": c.created_at.isoformat() if c.created_at else None,
                    "recording_url": c.recording_url,
                }
                for c in comments
            ]
        ),
        "\n\n".join(c.body for c in comments),
        "\n\n".join(transcripts),
        [c.recording_url for c in comments if c.recording_url],
        ticket.web_url,
        ticket.updated_at,
        ticket.solved_at,
        now,
        config,
    )
    return row, dropped


def _save_tickets(
    tickets: list[tuple[ImportedTicket, int]],
    *,
    connection: CrmConnection,
    counts: _Counts,
    now: datetime,
    partitions: set[str],
) -> None:
    if not tickets:
        return
    partitions_ensure(days={ticket.created_at.astimezone(UTC).date() for ticket, _ in tickets}, existing=partitions)
    configs = [ticket_search_config(ticket) for ticket, _ in tickets]
    _record_search_languages(set(configs))
    with db_connection.cursor() as cursor:
        cursor.execute(_STAGE_DDL)
        with cursor.cursor.copy(
            f"COPY ticketsearch_stage ({', '.join(TICKET_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            # Declared once, so psycopg does not look up a dumper for every value of every row (2x faster).
            copy.set_types(COPY_TYPES)
            for (ticket, agent_id), config in zip(tickets, configs, strict=True):
                row, dropped = _ticket_row(ticket, agent_id, connection, now, config)
                counts.run.comments_skipped += dropped
                copy.write_row(row)
        cursor.execute(_ALREADY_STORED)
        (stored,) = cursor.fetchone()
        cursor.execute(_UPSERT)
        written = cursor.rowcount
        # Dropped now, not only at commit: the caller's transaction may be an outer one's savepoint.
        cursor.execute("DROP TABLE ticketsearch_stage")
    new = len(tickets) - stored
    counts.run.tickets_imported += new
    counts.run.tickets_updated += written - new


def _remove_reopened(tickets: list[ImportedTicket], *, connection: CrmConnection, counts: _Counts) -> None:
    """A stored ticket the CRM reopened is no longer solved: it leaves the search until solved again."""
    reopened = [ticket for ticket in tickets if not ticket.is_solved]
    if not reopened:
        return
    with db_connection.cursor() as cursor:
        # The creation times let the planner skip the partitions of days none of them was created on.
        cursor.execute(
            f"DELETE FROM {TABLE} WHERE connection_id = %s AND created_at = ANY(%s) AND crm_ticket_id = ANY(%s)",  # noqa: S608
            [connection.pk, [t.created_at for t in reopened], [t.crm_id for t in reopened]],
        )
        counts.run.tickets_removed += cursor.rowcount


def connections_to_import() -> list[int]:
    """Connections the schedule imports: a CRM with an import, not switched off in its ImportState."""
    kinds = [kind for kind, provider in PROVIDERS.items() if provider.can(Capability.TICKET_IMPORT)]
    disabled = ImportState.objects.filter(enabled=False).values("connection_id")
    return list(
        CrmConnection.objects.filter(kind__in=kinds)
        .exclude(pk__in=disabled)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def skip_reasons() -> list[str]:
    """Every skip reason, for the admin and the command's summary."""
    return [reason.value for reason in Skip]
