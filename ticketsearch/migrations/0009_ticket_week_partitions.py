"""The tickets table partitioned by week instead of by day (14 partitions for the 90 days, not 92).

Measured at 1M tickets (docs/benchmarks.md): a search without a date bound planned 92 day
partitions in 35-50 ms and 14 week partitions in about 1 ms, and read half the buffers. The purge
(ticketsearch.services.retention) now drops whole expired weeks and DELETEs the expired rows of
the oldest one.

The parent table, its indexes, identity and generated column stay; only the partitions change,
under the partition DDL lock the import and the purge take, in this migration's transaction: each
day partition is detached, its rows are inserted again through the parent into their week's new
partition (search_vector is regenerated), and it is dropped. Safe on an empty table (it only makes
this week's and the next's partitions) and on a populated one (every row moves; counted). Reversed,
the same is done from weeks into days.

Self-contained on purpose: a migration must not change meaning when the service code changes.
"""

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import migrations

TABLE = "ticketsearch_ticket"
PARTITION_DDL_LOCK = (4_040_002, 1)
DAY_RE = re.compile(rf"^{TABLE}_p(\d{{8}})$")
WEEK_RE = re.compile(rf"^{TABLE}_w(\d{{8}})$")


def _partitions(cursor: Any) -> list[str]:
    cursor.execute(
        """
        SELECT child.relname FROM pg_inherits
        JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
        JOIN pg_class child ON child.oid = pg_inherits.inhrelid
        WHERE parent.relname = %s ORDER BY child.relname
        """,
        [TABLE],
    )
    return [row[0] for row in cursor.fetchall()]


def _stored_columns(cursor: Any) -> str:
    """Every column but the generated one, in table order (the identity is copied as it is)."""
    cursor.execute(
        """
        SELECT attname FROM pg_attribute
        WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
        ORDER BY attnum
        """,
        [TABLE],
    )
    return ", ".join(f'"{row[0]}"' for row in cursor.fetchall())


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _repartition(
    cursor: Any, *, source: re.Pattern[str], source_length: int, target: str, length: int, align: Any
) -> None:
    """Move every row of the `source` partitions (`source_length` days each) into partitions of
    `length` days named `{TABLE}_{target}YYYYMMDD`, starting on `align(day)`."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(PARTITION_DDL_LOCK))
    cursor.execute(f"SELECT count(*) FROM {TABLE}")  # noqa: S608
    (before,) = cursor.fetchone()
    old = [name for name in _partitions(cursor) if source.match(name)]
    firsts = {datetime.strptime(source.match(name).group(1), "%Y%m%d").date() for name in old}  # type: ignore[union-attr]
    days = {first + timedelta(days=offset) for first in firsts for offset in range(source_length)}
    today = datetime.now(UTC).date()
    # The coming days too, as the purge keeps them made ahead: an import after the migration never waits.
    days |= {today + timedelta(days=offset) for offset in range(8)}
    starts = {align(day) for day in days}
    for name in old:
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
    for start in sorted(starts):
        end_day = start + timedelta(days=length)
        # A week's partition spans several days: make it once, whatever the days it covers.
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE}_{target}{start:%Y%m%d} PARTITION OF {TABLE} "
            "FOR VALUES FROM (%s) TO (%s)",
            [_start(start), _start(end_day)],
        )
    columns = _stored_columns(cursor)
    for name in old:
        cursor.execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {name}")  # noqa: S608
        cursor.execute(f"DROP TABLE {name}")
    cursor.execute(f"SELECT count(*) FROM {TABLE}")  # noqa: S608
    (after,) = cursor.fetchone()
    if after != before:
        raise RuntimeError(f"{TABLE}: {before} rows before repartitioning, {after} after")
    cursor.execute(f"ANALYZE {TABLE}")


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def days_to_weeks(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        _repartition(cursor, source=DAY_RE, source_length=1, target="w", length=7, align=_monday)


def weeks_to_days(apps: Any, schema_editor: Any) -> None:
    with schema_editor.connection.cursor() as cursor:
        _repartition(cursor, source=WEEK_RE, source_length=7, target="p", length=1, align=lambda day: day)


class Migration(migrations.Migration):
    dependencies = [("ticketsearch", "0008_search_language_stemming")]

    operations = [migrations.RunPython(days_to_weeks, weeks_to_days)]
