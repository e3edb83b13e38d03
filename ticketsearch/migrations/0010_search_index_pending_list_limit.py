"""Each partition's search index keeps a GIN pending list of at most 1 MB instead of 4 MB.

Every search reads each partition's whole pending list (the entries inserted since the last merge).
Measured at 1M tickets (docs/benchmarks.md, 2026-12-03): a full 4 MB list (about 4,000 tickets)
added ~70% to a search's execution; 1 MB nothing measurable, for 1.2-1.4x the import's insert cost
(fastupdate off: 6.2x). PostgreSQL refuses storage parameters on the partitioned index, so each
partition's index is set; partitions made later get it from ticketsearch.services.retention.

Self-contained on purpose: a migration must not change meaning when the service code changes.
"""

from typing import Any

from django.db import migrations

SEARCH_INDEX = "ticketsearch_ticket_search_filters"
PENDING_LIST_KB = 1024
PARTITION_DDL_LOCK = (4_040_002, 1)


def _partition_indexes(cursor: Any) -> list[str]:
    cursor.execute(
        """
        SELECT pg_inherits.inhrelid::regclass::text FROM pg_inherits
        WHERE pg_inherits.inhparent = %s::regclass ORDER BY 1
        """,
        [SEARCH_INDEX],
    )
    return [row[0] for row in cursor.fetchall()]


def _set(apps: Any, schema_editor: Any, *, setting: str) -> None:
    with schema_editor.connection.cursor() as cursor:
        # Under the partition DDL lock: a partition made meanwhile by an import is either seen here or
        # made after this commit by code that sets the limit itself.
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(PARTITION_DDL_LOCK))
        for index in _partition_indexes(cursor):
            cursor.execute(f"ALTER INDEX {index} {setting}")


def limit(apps: Any, schema_editor: Any) -> None:
    _set(apps, schema_editor, setting=f"SET (gin_pending_list_limit = {PENDING_LIST_KB:d})")


def unlimit(apps: Any, schema_editor: Any) -> None:
    _set(apps, schema_editor, setting="RESET (gin_pending_list_limit)")


class Migration(migrations.Migration):
    dependencies = [("ticketsearch", "0009_ticket_week_partitions")]

    operations = [migrations.RunPython(limit, unlimit)]
