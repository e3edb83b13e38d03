"""Import of CRM agents and solved tickets for QA search (T1-T2), one connection at a time.

A run reads users, then tickets, page by page from the connection's provider. Each page is saved
in one transaction together with the cursor after it, so a run that dies resumes where the last
page was saved and a second run reads only what changed. Tickets are upserted in bulk (COPY into a
staging table, then one INSERT ... ON CONFLICT on (connection, CRM ticket id, created_at)), so a
ticket read twice is one row. What is skipped is counted per reason on the ImportRun.
"""

import dataclasses
import functools
import gc
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from time import monotonic
from typing import Any, Generic, TypeVar

import orjson
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
    ImportPage,
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

T = TypeVar("T")

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
# cast by the upsert (a binary jsonb or regconfig value has another layout). Empty tags and
# recordings are staged as NULL (psycopg makes a binary array in Python: 3 us a row for nothing).
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
    {
        "comments": "comments::jsonb",
        "search_config": "search_config::regconfig",
        "tags": "coalesce(tags, '{}')",
        "recording_urls": "coalesce(recording_urls, '{}')",
    }.get(c, c)
    for c in TICKET_COLUMNS
]
# The upsert, in one round trip: first the tickets not stored yet are inserted and taken off the
# stage (the count of new ones), then the rest, which are stored already, are updated where their
# CRM state changed (the count of updated ones; a re-read page rewrites nothing), and the staging
# table is dropped (now, not only at commit: the caller's transaction may be an outer one's
# savepoint). On a first import the second part finds the stage empty. A count of the stored ones
# by a join beforehand made the planner hash the whole table on every page (163 ms a page at
# 67,000 tickets); RETURNING xmax, the usual "was it an insert" test, is no documented contract.
_KEY = "connection_id, crm_ticket_id, created_at"
_UPSERT = f"""
WITH inserted AS (
    INSERT INTO {TABLE} ({", ".join(TICKET_COLUMNS)})
    SELECT {", ".join(_STAGED)} FROM ticketsearch_stage
    ON CONFLICT ({_KEY}) DO NOTHING
    RETURNING {_KEY}
)
DELETE FROM ticketsearch_stage s USING inserted i
WHERE s.connection_id = i.connection_id AND s.crm_ticket_id = i.crm_ticket_id AND s.created_at = i.created_at;

INSERT INTO {TABLE} ({", ".join(TICKET_COLUMNS)})
SELECT {", ".join(_STAGED)} FROM ticketsearch_stage
ON CONFLICT ({_KEY}) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATED)}
WHERE {TABLE}.crm_updated_at IS DISTINCT FROM EXCLUDED.crm_updated_at
   OR {TABLE}.agent_id IS DISTINCT FROM EXCLUDED.agent_id;

DROP TABLE ticketsearch_stage
"""  # noqa: S608


# The stored copies (id, created_at) of tickets given by creation time and CRM id, as one JSON
# parameter (Django quotes a list parameter's items one by one in Python: 6 us an item).
_STORED_REOPENED = f"""
SELECT t.id, t.created_at FROM jsonb_to_recordset(%s::jsonb) AS r(created_at timestamptz, crm_ticket_id text), LATERAL (
    SELECT id, created_at FROM {TABLE} t
    WHERE t.connection_id = %s AND t.created_at = r.created_at AND t.crm_ticket_id = r.crm_ticket_id
    LIMIT 1
) t
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

        # Closes what the run opened for itself (a read-ahead thread, the collector's pause) however it ends.
        stack = ExitStack()
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
            languages: set[str] = set()
            stream = (
                _CommentStream(provider, connection=connection, state=state, since=since, start=start, now=now)
                if provider.comments_in_bulk
                else None
            )
            # Read only for the tickets kept: from the comment stream, or a request (or more) per ticket.
            load_comments = stream.comments_for if stream is not None else provider.load_comments
            prepare = functools.partial(_prepare_page, connection=connection, agent_ids=_agent_ids(connection), now=now)
            ticket_pages = provider.iter_tickets(cursor=tickets_cursor, since=start)
            prepared_pages: Iterable[_PreparedPage] = (prepare(page, load_comments) for page in ticket_pages)
            staged: Callable[[], None] = _nothing_to_start
            if provider.pages_read_ahead and stream is None:
                # The next page is read, decided and made into rows in a thread while this one is
                # stored (the database's work releases the GIL), so Python and PostgreSQL overlap
                # instead of taking turns. Nothing there touches the database: the agents were read
                # above, the search configurations here.
                _available_search_configs()
                ahead = stack.enter_context(_ReadAhead(prepared_pages))
                # Started once this page is staged: making the next one holds the GIL (JSON decoding,
                # mapping), which the COPY needs and the upsert does not.
                prepared_pages, staged = ahead, ahead.read_next
            # The cycle collector would walk each page's freshly decoded objects again and again while
            # they are all alive (a fifth of the import's Python time); it resumes after the tickets.
            stack.enter_context(_collector_paused())
            for page in prepared_pages:
                with transaction.atomic():
                    _commit_without_waiting_for_disk()
                    _save_page(
                        page,
                        connection=connection,
                        counts=counts,
                        partitions=partitions,
                        languages=languages,
                        staged=staged,
                    )
                    state.tickets_cursor = page.cursor
                    state.save(update_fields=["tickets_cursor", "updated_at"])
                    counts.save()
                if progress:
                    progress("tickets", page.fetched, page.total)
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
        finally:
            stack.close()
        # The CRM answered every page: a half-open circuit closes on it, as on a live action.
        connection_circuit_record(connection, success=True)
        run.status = ImportRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
        state.last_run_at = run.finished_at
        state.save(update_fields=["last_run_at", "updated_at"])
    return run


class _ReadAhead(Generic[T]):
    """An iterator read one item ahead in a thread of its own: the next item is being made while the
    caller works on this one, from when the caller says (read_next) or at the latest when it asks.

    Never more than one item ahead (a CRM page read past a run's time limit is one request wasted,
    not many). What the iterator raises is raised to the caller at the same place in the sequence.
    On close the thread is told to stop; one already inside a read finishes it and exits.
    """

    # How often a thread waiting for the caller looks whether it was closed (seconds).
    POLL = 0.1

    def __init__(self, items: Iterable[T]) -> None:
        self._items = iter(items)
        self._ready: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self._wanted = threading.Semaphore(0)
        self._closed = threading.Event()
        # Whether the item after the last one handed out was asked for (by read_next or the iteration).
        self._requested = False
        self._thread = threading.Thread(target=self._run, name="import-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            while not self._wanted.acquire(timeout=self.POLL):
                if self._closed.is_set():
                    return
            if self._closed.is_set():
                return
            try:
                item = next(self._items)
            except StopIteration:
                self._ready.put((False, None))
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the caller and raised there
                self._ready.put((False, exc))
                return
            self._ready.put((True, item))

    def __iter__(self) -> Iterator[T]:
        while True:
            self.read_next()
            more, value = self._ready.get()
            self._requested = False
            if not more:
                if value is not None:
                    raise value
                return
            yield value

    def read_next(self) -> None:
        """Start making the next item now, while the caller still works on this one (once per item)."""
        if not self._requested:
            self._requested = True
            self._wanted.release()

    def __enter__(self) -> "_ReadAhead[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._wanted.release()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while the block runs (as it was found, after it).

    Objects are still freed by their reference counts; only reference cycles wait until the
    collector runs again.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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


def _nothing_to_start() -> None:
    """What a page's staging starts when no next page is read ahead."""


def _agent_ids(connection: CrmConnection) -> dict[str, int]:
    """The imported agents of the connection by CRM user id (read once a run, after its users are saved)."""
    return dict(Agent.objects.filter(connection=connection).values_list("crm_user_id", "pk"))


@dataclass(frozen=True)
class _PreparedPage:
    """A page of tickets decided and made into staging rows, ready to be stored with its cursor."""

    cursor: str
    total: int | None
    fetched: int
    # Staging rows of the tickets kept (TICKET_COLUMNS order, for COPY_TYPES).
    rows: tuple[tuple[Any, ...], ...]
    # The creation days of the tickets kept (their partitions) and the search configurations they use.
    days: frozenset[date]
    configs: frozenset[str]
    skipped: Counter[str]
    comments_skipped: int
    # Tickets no longer solved: a stored copy leaves the search.
    reopened: tuple[ImportedTicket, ...]


def _prepare_page(
    page: ImportPage[ImportedTicket],
    load_comments: Callable[[list[ImportedTicket]], list[ImportedTicket]],
    *,
    connection: CrmConnection,
    agent_ids: dict[str, int],
    now: datetime,
) -> _PreparedPage:
    """Decide a page's tickets (T1-T3), load the comments of those kept, and make their staging rows."""
    skipped: Counter[str] = Counter()
    kept: dict[str, tuple[ImportedTicket, int]] = {}
    for ticket in page.items:
        agent_id = agent_ids.get(ticket.assignee_id or "")
        reason = rules.ticket_skip_reason(ticket, agent_id=agent_id, now=now)
        if reason is not None:
            skipped[reason.value] += 1
            continue
        assert agent_id is not None
        # A ticket read twice in one page (it changed while being exported) is stored once, as last read.
        kept[ticket.crm_id] = (ticket, agent_id)
    loaded = load_comments([ticket for ticket, _ in kept.values()])
    rows, configs, comments_skipped = [], set(), 0
    connection_id, crm_kind = connection.pk, connection.kind
    for ticket, (_, agent_id) in zip(loaded, kept.values(), strict=True):
        config = ticket_search_config(ticket)
        row, dropped = _ticket_row(ticket, agent_id, connection_id, crm_kind, now, config)
        rows.append(row)
        configs.add(config)
        comments_skipped += dropped
    return _PreparedPage(
        cursor=page.cursor,
        total=page.total,
        fetched=len(page.items),
        rows=tuple(rows),
        days=frozenset(ticket.created_at.astimezone(UTC).date() for ticket in loaded),
        configs=frozenset(configs),
        skipped=skipped,
        comments_skipped=comments_skipped,
        reopened=tuple(ticket for ticket in page.items if not ticket.is_solved),
    )


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
    ticket: ImportedTicket, agent_id: int, connection_id: int, crm_kind: str, now: datetime, config: str
) -> tuple[tuple[Any, ...], int]:
    """The staging row of a ticket (in TICKET_COLUMNS order, for COPY_TYPES), and the comments left out."""
    comments, dropped = rules.interactions_with_user(ticket.comments)
    transcripts = [*ticket.transcripts, *(c.transcript for c in comments if c.transcript)]
    row = (
        ticket.created_at,
        connection_id,
        crm_kind,
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
        list(ticket.tags) or None,
        # orjson writes a datetime as isoformat() does.
        orjson.dumps(
            [
                {
                    "id": c.crm_id,
                    "author_id": c.author_id,
                    "body": c.body,
                    "public": c.public,
                    "created_at": c.created_at,
                    "recording_url": c.recording_url,
                }
                for c in comments
            ]
        ).decode(),
        "\n\n".join(c.body for c in comments),
        "\n\n".join(transcripts),
        [c.recording_url for c in comments if c.recording_url] or None,
        ticket.web_url,
        ticket.updated_at,
        ticket.solved_at,
        now,
        config,
    )
    return row, dropped


def _save_page(
    page: _PreparedPage,
    *,
    connection: CrmConnection,
    counts: _Counts,
    partitions: set[str],
    languages: set[str],
    staged: Callable[[], None],
) -> None:
    """Store a prepared page's tickets (COPY into a staging table, one upsert) and drop its reopened ones.

    `partitions` and `languages` are those known to exist (this call adds the ones it makes).
    `staged` is called once the rows are in the staging table, before the database's longest part.
    """
    counts.run.tickets_fetched += page.fetched
    counts.skipped.update(page.skipped)
    counts.run.comments_skipped += page.comments_skipped
    if page.rows:
        partitions_ensure(days=page.days, existing=partitions)
        if page.configs - languages:
            _record_search_languages(set(page.configs))
            languages |= page.configs
        with db_connection.cursor() as cursor:
            cursor.execute(_STAGE_DDL)
            with cursor.cursor.copy(
                f"COPY ticketsearch_stage ({', '.join(TICKET_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                # Declared once, so psycopg does not look up a dumper for every value of every row (2x faster).
                copy.set_types(COPY_TYPES)
                for row in page.rows:
                    copy.write_row(row)
            staged()
            cursor.execute(_UPSERT)
            # One result per statement: the new tickets taken off the stage, then those updated.
            counts.run.tickets_imported += cursor.cursor.rowcount
            cursor.cursor.nextset()
            counts.run.tickets_updated += cursor.cursor.rowcount
    else:
        staged()
    _remove_reopened(page.reopened, connection=connection, counts=counts)


def _remove_reopened(reopened: tuple[ImportedTicket, ...], *, connection: CrmConnection, counts: _Counts) -> None:
    """A stored ticket the CRM reopened is no longer solved: it leaves the search until solved again."""
    if not reopened:
        return
    with db_connection.cursor() as cursor:
        # Found first, each by itself (LATERAL ... LIMIT 1: an index probe in its creation day's
        # partition, where a join is planned as a hash of the whole table), then deleted by primary
        # key: most reopened tickets were never stored.
        keys = orjson.dumps([{"created_at": t.created_at, "crm_ticket_id": t.crm_id} for t in reopened]).decode()
        cursor.execute(_STORED_REOPENED, [keys, connection.pk])
        found = cursor.fetchall()
        if not found:
            return
        cursor.execute(
            f"DELETE FROM {TABLE} WHERE id = ANY(%s) AND created_at = ANY(%s)",  # noqa: S608
            [[row_id for row_id, _ in found], [created_at for _, created_at in found]],
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
