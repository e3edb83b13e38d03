"""Retention of imported tickets (T3): week partitions made ahead, expired ones dropped.

The tickets table is partitioned by ISO week (Monday 00:00 UTC to the next Monday) of `created_at`:
14 partitions hold the 90 days, few enough for a search without a date bound to plan in about a
millisecond (92 day partitions took 35-50 ms, docs/benchmarks.md). Purging the tickets past 90
days is a DROP TABLE per expired week, whatever its size, plus a DELETE of the expired rows of the
one week the cut-off falls in, so "90 days" is exact to the second. Run hourly, that DELETE is
about an hour's tickets. A week's partition is made by the import (for the weeks it writes) and by
the purge (for the coming days), before any row needs it.
"""

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction

from ticketsearch.rules import RETENTION

logger = logging.getLogger(__name__)

TABLE = "ticketsearch_ticket"
COMMENT_TABLE = "ticketsearch_crmcomment"
PARTITION_PREFIX = f"{TABLE}_w"
PARTITION_RE = re.compile(rf"^{PARTITION_PREFIX}(\d{{8}})$")
WEEK = timedelta(days=7)
# Days of partitions made ahead of today, so an import never waits on DDL for new tickets.
DAYS_AHEAD = 7
# The transaction-level advisory lock every partition CREATE and DROP is made under: two workers
# (imports on several hosts, a purge from a second beat) would otherwise both see a day missing and
# the second CREATE fail on the catalog's unique index, or DROP a table the other dropped.
PARTITION_DDL_LOCK = (4_040_002, 1)
# The multicolumn search index of the parent table (migration 0006); each partition has its own copy.
SEARCH_INDEX = "ticketsearch_ticket_search_filters"
# Each partition's search index keeps at most this many kB of not yet merged entries (GIN's pending
# list, 4 MB by default, about 4,000 tickets), because every search reads a partition's whole
# pending list: at 1M tickets a full 4 MB one added ~70% to a search's execution (3.7 -> 6.2 ms,
# 448 -> 953 buffers), 1 MB (~1,000 tickets) nothing measurable, while the import's inserts cost
# 1.2-1.4x the default's, against 6.2x with fastupdate off (docs/benchmarks.md, 2026-12-03). PostgreSQL
# takes the setting only on each partition's index, not on the partitioned one, so it is set where
# partitions are made (and by migration 0010 on those made before).
SEARCH_INDEX_PENDING_LIST_KB = 1024


@dataclass(frozen=True)
class PurgeResult:
    cutoff: datetime
    partitions_dropped: list[str]
    rows_deleted: int
    partitions_created: list[str]


def week_start(day: date) -> date:
    """The Monday of the (UTC) day's ISO week: the first day its partition holds."""
    return day - timedelta(days=day.weekday())


def partition_name(day: date) -> str:
    """The name of the partition holding this (UTC) day: its week's, named after the Monday."""
    return f"{PARTITION_PREFIX}{week_start(day):%Y%m%d}"


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def partitions_existing() -> dict[str, date]:
    """The week partitions of the tickets table, by name, with the Monday each starts on."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT child.relname FROM pg_inherits
            JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            WHERE parent.relname = %s
            """,
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    found = {}
    for name in names:
        match = PARTITION_RE.match(name)
        if match:
            found[name] = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date()
    return found


def _lock_partition_ddl() -> None:
    """Wait for the partition DDL lock; held until the surrounding transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(PARTITION_DDL_LOCK))


def partitions_ensure(*, days: Iterable[date], existing: set[str] | None = None) -> list[str]:
    """Make the partitions of these (UTC) days' weeks that do not exist yet; the names made.

    `existing` (updated in place) saves reading the catalog when nothing is missing; when something
    is, the catalog is read again under the DDL lock, since another worker may have made it since.
    """
    known = existing if existing is not None else set(partitions_existing())
    missing = sorted({week_start(day) for day in days if partition_name(day) not in known})
    if not missing:
        return []
    created = []
    with transaction.atomic():
        _lock_partition_ddl()
        known |= set(partitions_existing())
        for monday in missing:
            name = partition_name(monday)
            if name in known:
                continue
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                    [_start(monday), _start(monday) + WEEK],
                )
            _limit_search_pending_list(name)
            known.add(name)
            created.append(name)
    return created


def _limit_search_pending_list(partition: str) -> None:
    """Cap the GIN pending list of the partition's search index (SEARCH_INDEX_PENDING_LIST_KB says why)."""
    with connection.cursor() as cursor:
        # The partition's copy of the index is named by PostgreSQL: found through the parent index.
        cursor.execute(
            """
            SELECT index.indexrelid::regclass::text FROM pg_index index
            JOIN pg_inherits ON pg_inherits.inhrelid = index.indexrelid
            WHERE pg_inherits.inhparent = %s::regclass AND index.indrelid = %s::regclass
            """,
            [SEARCH_INDEX, partition],
        )
        for (index,) in cursor.fetchall():
            cursor.execute(f"ALTER INDEX {index} SET (gin_pending_list_limit = {SEARCH_INDEX_PENDING_LIST_KB:d})")


@transaction.atomic
def tickets_purge_expired(*, now: datetime) -> PurgeResult:
    """Remove every ticket created more than 90 days before `now`; make the coming weeks' partitions."""
    cutoff = now - RETENTION
    # Under the DDL lock from the start: what exists is read once nobody else can change it.
    _lock_partition_ddl()
    existing = partitions_existing()
    # A week goes whole once its last second is past the cut-off.
    dropped = sorted(name for name, monday in existing.items() if _start(monday) + WEEK <= cutoff)
    with connection.cursor() as cursor:
        for name in dropped:
            # Dropping a partition detaches it too: one statement, no row is read.
            cursor.execute(f"DROP TABLE {name}")
        # Only the cut-off's week can still hold expired rows: the planner prunes the rest.
        cursor.execute(f"DELETE FROM {TABLE} WHERE created_at < %s", [cutoff])  # noqa: S608
        deleted = cursor.rowcount
        # The import's comment store: a comment is never older than its ticket, so these are all
        # comments of purged tickets. Only what expired since the last hourly run is left to delete.
        cursor.execute(f"DELETE FROM {COMMENT_TABLE} WHERE created_at < %s", [cutoff])  # noqa: S608
    today = now.astimezone(UTC).date()
    created = partitions_ensure(
        days=(today + timedelta(days=offset) for offset in range(DAYS_AHEAD + 1)),
        existing=set(existing) - set(dropped),
    )
    logger.info(
        "ticketsearch.purge cutoff=%s dropped=%s deleted=%s created=%s",
        cutoff.isoformat(),
        len(dropped),
        deleted,
        len(created),
    )
    return PurgeResult(cutoff=cutoff, partitions_dropped=dropped, rows_deleted=deleted, partitions_created=created)
