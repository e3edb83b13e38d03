"""Retention purge: time to remove one expired day of about 1,000,000 tickets, against a plain DELETE.

The tickets are partitioned by week (Monday to Monday, UTC). D is a Sunday, the last day of its
week, so the purge at the cut-off D+1 12:00 drops that whole week and trims the Monday after.

Usage: .venv/bin/python bench/purge.py [--rows 1000000] [--db NAME]

The script re-creates its own database (default `crmbridge_bench_purge`, or $BENCH_PURGE_DB) and
generates, in SQL, --rows tickets created on one day D (the day that expires) plus 2% of that on
D+1, half of them before the hour the 90-day cut-off falls on. It copies every row into a plain,
unpartitioned table with the same columns and indexes. Then, with `now` set so that the cut-off is
D+1 12:00, it times:

  purge     ticketsearch.services.retention.tickets_purge_expired: DROP the week partition of D,
            DELETE the expired morning of D+1 (the product's path)
  delete    DELETE FROM the plain table WHERE created_at < cut-off (the baseline)

Both remove the same rows; the counts are checked. Then the cost week partitions add: a purge
catching up a whole expired day inside the oldest week (it did not run for a day), a DELETE of
that day's rows at the density of --rows tickets over 90 days (`day_inside_week`), on D+2.
The last line printed is one JSON object.
"""

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tickets_common import DEFAULT_POSTGRES, bench_connection, recreate_database, setup_django, timed

GENERATE = """
INSERT INTO ticketsearch_ticket (
    created_at, connection_id, crm_kind, crm_ticket_id, subject, description, status, channel, agent_id,
    requester_phone, requester_phone_rev, tags, comments_text, crm_updated_at)
SELECT %(start)s + (n::float / %(rows)s) * %(span)s * interval '1 second', %(connection)s, 'zendesk',
       %(prefix)s || n, 'Ticket ' || n, 'Customer wrote about refund number ' || n, 'solved', 'email', NULL,
       '+1415' || lpad(n::text, 7, '0'), reverse('14150' || lpad(n::text, 7, '0')), ARRAY['vip'],
       'Agent replied about invoice ' || (n %% 1000), %(start)s
FROM generate_series(1, %(rows)s) AS n
"""
# The plain table: the same columns and indexes, no partitions (what an unpartitioned design would have).
PLAIN = """
CREATE TABLE ticket_plain (LIKE ticketsearch_ticket INCLUDING DEFAULTS INCLUDING GENERATED);
ALTER TABLE ticket_plain ADD PRIMARY KEY (id, created_at);
CREATE UNIQUE INDEX ON ticket_plain (connection_id, crm_ticket_id, created_at);
CREATE INDEX ON ticket_plain (created_at DESC, id DESC);
CREATE INDEX ON ticket_plain USING gin (search_vector);
CREATE INDEX ON ticket_plain USING gin (tags);
CREATE INDEX ON ticket_plain (agent_id, created_at DESC);
CREATE INDEX ON ticket_plain (requester_phone_rev text_pattern_ops);
CREATE INDEX ON ticket_plain (lower(requester_email));
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", default=os.environ.get("BENCH_PURGE_DB", "crmbridge_bench_purge"))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()

    setup_django(recreate_database(args.postgres_url, args.db))
    from django.db import connection as db

    from ticketsearch.services.retention import (
        RETENTION,
        partition_name,
        partitions_ensure,
        partitions_existing,
        tickets_purge_expired,
    )

    start = (datetime.now(UTC) - timedelta(days=95)).replace(hour=0, minute=0, second=0, microsecond=0)
    # The Sunday on or before: the last day of its week's partition.
    day = start - timedelta(days=(start.weekday() + 1) % 7)
    next_day = day + timedelta(days=1)
    inside_day = day + timedelta(days=2)
    now = next_day + timedelta(hours=12) + RETENTION
    connection = bench_connection()
    partitions_ensure(days=[day.date(), next_day.date(), inside_day.date()])
    small = max(1, args.rows // 50)
    per_day = max(1, args.rows // 90)
    with db.cursor() as cursor:

        def generate() -> None:
            for first, rows, prefix in ((day, args.rows, "d"), (next_day, small, "n"), (inside_day, per_day, "i")):
                params = {"start": first, "rows": rows, "span": 86_399, "connection": connection.pk, "prefix": prefix}
                cursor.execute(GENERATE, params)

        generate_s, _ = timed(generate)
        cursor.execute(PLAIN)
        # Every column but the generated one, which the plain table computes itself.
        cursor.execute(
            "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)"
            " FROM information_schema.columns WHERE table_name = 'ticketsearch_ticket' AND is_generated = 'NEVER'"
        )
        (columns,) = cursor.fetchone()
        cursor.execute(f"INSERT INTO ticket_plain ({columns}) SELECT {columns} FROM ticketsearch_ticket")
        cursor.execute("VACUUM ANALYZE ticket_plain")
        cursor.execute("VACUUM ANALYZE ticketsearch_ticket")
        cursor.execute("SELECT count(*) FROM ticketsearch_ticket WHERE created_at < %s", [now - RETENTION])
        (expired,) = cursor.fetchone()
    print(f"generated {args.rows + small} tickets in {generate_s:.0f}s; {expired} expire", file=sys.stderr)

    purge_s, result = timed(lambda: tickets_purge_expired(now=now))
    with db.cursor() as cursor:
        delete_s, _ = timed(lambda: cursor.execute("DELETE FROM ticket_plain WHERE created_at < %s", [now - RETENTION]))
        deleted_plain = cursor.rowcount
        cursor.execute("SELECT (SELECT count(*) FROM ticketsearch_ticket), (SELECT count(*) FROM ticket_plain)")
        kept_partitioned, kept_plain = cursor.fetchone()
    assert kept_partitioned == kept_plain, (kept_partitioned, kept_plain)
    assert deleted_plain == expired, (deleted_plain, expired)
    assert partition_name(day.date()) not in partitions_existing()

    # The purge did not run for a day: the rest of D+1 and all of D+2 are deleted inside the week.
    later = inside_day + timedelta(days=1) + RETENTION
    with db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ticketsearch_ticket WHERE created_at < %s", [later - RETENTION])
        (expiring,) = cursor.fetchone()
    catch_up_s, catch_up = timed(lambda: tickets_purge_expired(now=later))
    assert catch_up.partitions_dropped == [], catch_up.partitions_dropped
    assert catch_up.rows_deleted == expiring, (catch_up.rows_deleted, expiring)

    report = {
        "bench": "purge",
        "rows_expired": expired,
        "purge_seconds": round(purge_s, 3),
        "purge_partitions_dropped": len(result.partitions_dropped),
        "purge_rows_deleted_in_cutoff_day": result.rows_deleted,
        "plain_delete_seconds": round(delete_s, 3),
        "ratio_plain_delete_vs_purge": round(delete_s / purge_s, 1),
        "rows_kept": kept_partitioned,
        "day_inside_week_rows_deleted": catch_up.rows_deleted,
        "day_inside_week_seconds": round(catch_up_s, 3),
        "partitioning": "week",
    }
    print(f"purge {purge_s:.3f}s vs plain DELETE {delete_s:.3f}s", file=sys.stderr)
    print(f"a day inside the oldest week: {catch_up.rows_deleted} rows in {catch_up_s:.3f}s", file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
