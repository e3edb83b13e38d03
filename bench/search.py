"""QA search latency on 1,000,000 imported tickets, against plain ILIKE / OFFSET baselines in the same run.

Usage: .venv/bin/python bench/search.py [--rows 1000000] [--runs 200] [--baseline-runs 50] [--db NAME] [--reuse]

--reuse keeps the database of an earlier run when it holds --rows tickets (migrated to the current
code first), so the 1M rows are generated once; their dates then stay those of that run.

The script re-creates its own database (default `crmbridge_bench_search`, or $BENCH_SEARCH_DB),
makes the week partitions of the last 90 days (14), and generates the tickets in SQL (generate_series):
spread evenly over 90 days, random among 14 channels and 4 statuses, 50 agents, random 10-digit phones, 0-2 of 7
tags, and text drawn from a 5,000-word vocabulary (subject 4 words, description 12, comments 20,
transcript 20 on voice tickets), so one word is in about 1% of the tickets; half the tickets are
indexed in English, half word for word ('simple'), so every full-text search is the two-language
tsquery of ticketsearch.backends.postgres.text_tsquery. Then, for --runs
queries each, it times the product's selector `ticketsearch.selectors.ticket_search` (SQL and
Python, top 50, highlights included) against the same question asked the plain way:

  fulltext   q=<one word> + channel + status    vs  ILIKE '%word%' over the four text columns + the same filters
  phone      requester_phone=<last 4 digits>    vs  requester_phone LIKE '%dddd'
  page1000   keyset page 1,000 (rows 49,951-50,000) vs keyset page 1 (the target: within 20%),
             and OFFSET 49,950 LIMIT 50 as the baseline

It also reports the plan of one full-text search (EXPLAIN ANALYZE: planning and execution ms, the
partitions it plans). After generating it runs VACUUM ANALYZE, as autovacuum would after a large
import: until then each partition's GIN pending list (up to 1 MB, migration 0010) is read by every search.
Targets: full text p95 <= 25 ms, phone p95 <= 20 ms, page 1,000 within 20% of page 1.
The last line printed is one JSON object.
"""

import argparse
import functools
import json
import os
import random
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tickets_common import (
    DEFAULT_POSTGRES,
    bench_connection,
    database_url,
    existing_rows,
    percentiles_ms,
    recreate_database,
    setup_django,
    timed,
)

CHANNELS = (
    *("email", "chat", "facebook", "forum", "in_app_messaging", "slack", "sms", "voice", "whatsapp"),
    *("telegram", "viber", "apple_messages_for_business", "microsoft_teams", "other"),
)
VOCABULARY = 5000

GENERATE = """
INSERT INTO ticketsearch_ticket (
    created_at, connection_id, crm_kind, crm_ticket_id, subject, description, status, channel, agent_id,
    agent_crm_id, requester_crm_id, requester_name, requester_email, requester_phone, requester_phone_rev,
    tags, comments, comments_text, transcript, recording_urls, crm_url, crm_updated_at, solved_at, imported_at,
    search_config)
SELECT
    %(now)s - (n::float / %(rows)s) * interval '89 days 23 hours',
    %(connection)s, 'zendesk', n::text,
    words(4), words(12),
    (ARRAY['solved','closed','Closed','resolved'])[1 + floor(random() * 4)::int],
    channel, %(first_agent)s + n %% 50, '', '', 'Customer ' || n, 'customer' || n || '@example.net',
    phone, reverse(phone),
    CASE n %% 7 WHEN 0 THEN ARRAY[]::text[] WHEN 1 THEN ARRAY['vip'] WHEN 2 THEN ARRAY['billing', 'callback']
        WHEN 3 THEN ARRAY['technical'] WHEN 4 THEN ARRAY['complaint', 'vip'] WHEN 5 THEN ARRAY['escalated']
        ELSE ARRAY['follow_up'] END,
    '[]'::jsonb, words(20),
    CASE WHEN channel = 'voice' THEN words(20) ELSE '' END,
    ARRAY[]::text[], 'https://acme.zendesk.com/agent/tickets/' || n, %(now)s, %(now)s, %(now)s,
    (CASE WHEN n %% 2 = 0 THEN 'english' ELSE 'simple' END)::regconfig
FROM (
    SELECT n, (%(channels)s::text[])[1 + floor(random() * 14)::int] AS channel,
           lpad((floor(random() * 1e10))::bigint::text, 10, '0') AS phone
    FROM generate_series(1, %(rows)s) AS n
) AS g
"""
WORDS_FUNCTION = """
CREATE OR REPLACE FUNCTION words(k int) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT string_agg('w' || (1 + floor(random() * %(vocabulary)s))::int, ' ') FROM generate_series(1, k)
$$
"""


def generate_tickets(rows: int) -> float:
    """Generate `rows` tickets over 92 days in SQL, with 50 agents and two search languages; seconds taken."""
    from django.db import connection as db
    from django.utils import timezone

    from ticketsearch.models import Agent, SearchLanguage
    from ticketsearch.services.retention import partitions_ensure

    now = timezone.now()
    connection = bench_connection()
    agents = [Agent(email=f"agent{n}@example.com", first_name="Agent", last_name=str(n)) for n in range(50)]
    first_agent = Agent.objects.bulk_create(agents)[0].pk
    partitions_ensure(days=[(now - timedelta(days=d)).date() for d in range(92)])
    with db.cursor() as cursor:
        cursor.execute(WORDS_FUNCTION % {"vocabulary": VOCABULARY})
        generate_s, _ = timed(
            lambda: cursor.execute(
                GENERATE,
                {
                    "now": now,
                    "rows": rows,
                    "connection": connection.pk,
                    "first_agent": first_agent,
                    "channels": list(CHANNELS),
                },
            )
        )
        # What autovacuum does after a large import: besides the statistics, it moves the GIN
        # indexes' pending lists (up to 1 MB a partition, read by every search) into the index.
        cursor.execute("VACUUM ANALYZE ticketsearch_ticket")
    SearchLanguage.objects.bulk_create([SearchLanguage(config="english"), SearchLanguage(config="simple")])
    return float(generate_s)


def explain_fulltext(fulltext_params: Any) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the backend's full-text search (word + channel + status, top 51), medians of 5."""
    from django.db import connection as db

    from ticketsearch.backends import TicketQuery
    from ticketsearch.backends.postgres import PostgresTicketSearch
    from ticketsearch.models import Ticket

    figures: dict[str, list[float]] = {"planning_ms": [], "execution_ms": []}
    partitions = 0
    for _ in range(5):
        params = fulltext_params()
        query = TicketQuery(text=params["q"], channels=(params["channel"],), statuses=(params["status"],))
        queryset = PostgresTicketSearch().restrict(Ticket.objects.all(), query).order_by("-created_at", "-id")
        sql, sql_params = queryset[:51].query.sql_with_params()
        with db.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", sql_params)
            (explained,) = cursor.fetchone()
        top = explained[0] if isinstance(explained, list) else json.loads(explained)[0]
        figures["planning_ms"].append(top["Planning Time"])
        figures["execution_ms"].append(top["Execution Time"])
        partitions = json.dumps(top["Plan"]).count('"Relation Name"')
    return {key: round(sorted(values)[2], 2) for key, values in figures.items()} | {"partitions": partitions}


def print_figures(results: dict[str, dict[str, float]]) -> None:
    for name, figures in results.items():
        print(f"{name:28} p50 {figures['p50_ms']:8.2f} ms   p95 {figures['p95_ms']:8.2f} ms", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--baseline-runs", type=int, default=50, help="runs of the slow baselines (ILIKE, LIKE)")
    parser.add_argument("--db", default=os.environ.get("BENCH_SEARCH_DB", "crmbridge_bench_search"))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument("--reuse", action="store_true", help="keep an earlier run's data when it has --rows tickets")
    args = parser.parse_args()

    reuse = args.reuse and existing_rows(args.postgres_url, args.db, "ticketsearch_ticket") == args.rows
    setup_django(database_url(args.postgres_url, args.db) if reuse else recreate_database(args.postgres_url, args.db))
    from django.db.models import Q

    from ticketsearch.models import Ticket
    from ticketsearch.selectors import encode_cursor, ticket_search

    if reuse:
        generate_s = 0.0
        print(f"reusing the {args.rows} tickets of {args.db}", file=sys.stderr)
    else:
        generate_s = generate_tickets(args.rows)
        print(f"generated {args.rows} tickets in {generate_s:.0f}s", file=sys.stderr)

    rng = random.Random(7)
    statuses = ["solved", "closed", "Closed", "resolved"]

    def sample(function: Any, make: Any, runs: int | None = None) -> list[float]:
        times = []
        for _ in range(runs or args.runs):
            params = make()
            elapsed, _ = timed(functools.partial(function, params))
            times.append(elapsed)
        return times

    def fulltext_params() -> dict[str, str]:
        return {"q": f"w{rng.randint(1, VOCABULARY)}", "channel": rng.choice(CHANNELS), "status": rng.choice(statuses)}

    def ilike(params: dict[str, str]) -> list[Ticket]:
        word = params["q"]
        text = (
            Q(subject__icontains=word)
            | Q(description__icontains=word)
            | Q(comments_text__icontains=word)
            | Q(transcript__icontains=word)
        )
        queryset = Ticket.objects.filter(text, channel=params["channel"], status=params["status"])
        return list(queryset.only("id", "created_at", "subject").order_by("-created_at", "-id")[:50])

    def phone_params() -> dict[str, str]:
        return {"requester_phone": f"{rng.randrange(10_000):04d}"}

    def phone_like(params: dict[str, str]) -> list[Ticket]:
        queryset = Ticket.objects.filter(requester_phone__endswith=params["requester_phone"])
        return list(queryset.only("id", "created_at", "subject").order_by("-created_at", "-id")[:50])

    # The cursor that opens page 1,000 of 50: the 49,950th ticket, newest first.
    boundary = Ticket.objects.only("id", "created_at").order_by("-created_at", "-id")[49_949]
    page1000_cursor = encode_cursor(boundary)

    def offset_page(_: dict[str, str]) -> list[Ticket]:
        return list(Ticket.objects.only(*("id", "created_at", "subject")).order_by("-created_at", "-id")[49_950:50_000])

    def no_params() -> dict[str, str]:
        return {}

    def page1000_params() -> dict[str, str]:
        return {"cursor": page1000_cursor}

    def search(params: dict[str, str]) -> Any:
        return ticket_search(params=params)

    # Warm the caches the same way for every query kind before measuring.
    for _ in range(20):
        search(fulltext_params())
    for _ in range(3):
        ilike(fulltext_params())
    results = {
        "fulltext": percentiles_ms(sample(search, fulltext_params)),
        "fulltext_ilike_baseline": percentiles_ms(sample(ilike, fulltext_params, args.baseline_runs)),
        "phone_last4": percentiles_ms(sample(search, phone_params)),
        "phone_like_baseline": percentiles_ms(sample(phone_like, phone_params, args.baseline_runs)),
        "page1": percentiles_ms(sample(search, no_params)),
        "page1000": percentiles_ms(sample(search, page1000_params)),
        "page1000_offset_baseline": percentiles_ms(sample(offset_page, no_params)),
    }
    hits = [len(ticket_search(params=fulltext_params()).tickets) for _ in range(20)]

    fulltext_plan = explain_fulltext(fulltext_params)

    def ratio(a: str, b: str) -> float:
        return round(results[a]["p95_ms"] / results[b]["p95_ms"], 3)

    report = {
        "bench": "search",
        "rows": args.rows,
        "runs": args.runs,
        "generate_seconds": round(generate_s, 1),
        **results,
        "fulltext_p95_ratio_vs_ilike": ratio("fulltext", "fulltext_ilike_baseline"),
        "phone_p95_ratio_vs_like": ratio("phone_last4", "phone_like_baseline"),
        "page1000_p95_ratio_vs_page1": ratio("page1000", "page1"),
        "page1000_offset_p95_ratio_vs_page1": ratio("page1000_offset_baseline", "page1"),
        "fulltext_mean_results": sum(hits) / len(hits),
        "fulltext_plan": fulltext_plan,
        "targets": {"fulltext_p95_ms": 25, "phone_p95_ms": 20, "page1000_vs_page1": 1.2},
    }
    print_figures(results)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
