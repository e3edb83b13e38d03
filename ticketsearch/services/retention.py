"""Retention of imported tickets (T3): day partitions made ahead, expired ones dropped.

The tickets table is partitioned by day of `created_at`. Purging the tickets past 90 days is then
a DROP TABLE per expired day, whatever its size, plus a DELETE of the few hours of the one day the
cut-off falls in, so "90 days" is exact to the second. A day's partition is made by the import
(for the days it writes) and by the purge (for the coming days), before any row needs it.
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
PARTITION_PREFIX = f"{TABLE}_p"
PARTITION_RE = re.compile(rf"^{PARTITION_PREFIX}(\d{{8}})$")
# Days of partitions made ahead of today, so an import never waits on DDL for new tickets.
DAYS_AHEAD = 7
# The transaction-level advisory lock every partition CREATE and DROP is made under: two workers
# (imports on several hosts, a purge from a second beat) would otherwise both see a day missing and
# the second CREATE fail on the catalog's unique index, or DROP a table the other dropped.
PARTITION_DDL_LOCK = (4_040_002, 1)


@dataclass(frozen=True)
class PurgeResult:
    cutoff: datetime
    partitions_dropped: list[str]
    rows_deleted: int
    partitions_created: list[str]


def partition_name(day: date) -> str:
    return f"{PARTITION_PREFIX}{day:%Y%m%d}"


def partitions_existing() -> dict[str, date]:
    """The day partitions of the tickets table, by name."""
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
    """Make the partitions of these (UTC) days that do not exist yet; the names made.

    `existing` (updated in place) saves reading the catalog when nothing is missing; when something
    is, the catalog is read again under the DDL lock, since another worker may have made it since.
    """
    known = existing if existing is not None else set(partitions_existing())
    missing = sorted({day for day in days if partition_name(day) not in known})
    if not missing:
        return []
    created = []
    with transaction.atomic():
        _lock_partition_ddl()
        known |= set(partitions_existing())
        for day in missing:
            name = partition_name(day)
            if name in known:
                continue
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                    [start, start + timedelta(days=1)],
                )
            known.add(name)
            created.append(name)
    return created


@transaction.atomic
def tickets_purge_expired(*, now: datetime) -> PurgeResult:
    """Remove every ticket created more than 90 days before `now`; make the coming days' partitions."""
    cutoff = now - RETENTION
    cutoff_day = cutoff.astimezone(UTC).date()
    # Under the DDL lock from the start: what exists is read once nobody else can change it.
    _lock_partition_ddl()
    existing = partitions_existing()
    dropped = sorted(name for name, day in existing.items() if day < cutoff_day)
    with connection.cursor() as cursor:
        for name in dropped:
            # Dropping a partition detaches it too: one statement, no row is read.
            cursor.execute(f"DROP TABLE {name}")
        # Only the cut-off day's partition can still hold expired rows: the planner prunes the rest.
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
