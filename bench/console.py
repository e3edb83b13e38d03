"""Operations console: the health counts and the session-state filter on a large outbox, against a
scan of every action; and the cost of counting each CRM request per minute in Redis.

Usage: .venv/bin/python bench/console.py [--sessions 100000] [--db NAME] [--requests 400]

The script re-creates its own database (default `crmbridge_bench_console`, or $BENCH_CONSOLE_DB)
and generates, in SQL, --sessions sessions with 4 actions each: all succeeded but 0.1% of the
sessions, whose contact lookup failed (their other actions pending behind it), and 0.2% with a
pending retry. Then it times (median of 15 runs each):

  health     records.selectors.records_health (every count on the home page's records section)
  blocked    the session list filtered to "Blocked by a failed action" (one page, as the admin shows it)
  scan       the baseline: the actions counted per status by reading every row (what a count
             without the partial and status indexes costs)

and, against a sandbox Zendesk on loopback, --requests GETs through the HTTP layer with the
per-minute counters on (the product) and with a gate that counts nothing (the baseline).
The last line printed is one JSON object.
"""

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tickets_common import DEFAULT_POSTGRES, bench_connection, recreate_database, setup_django, timed

SESSIONS = """
INSERT INTO records_session (external_id, channel, session_type, phone_number, agent_email, queue_id,
    menu_path, voicemail, state, crm_contact_id, crm_record_id, crm_connection_id, processing_error,
    processing_attempts, created_at, updated_at, ended_at)
SELECT 's-' || n, 'voice', 'voice_inbound_ivr', '+1415' || lpad(n::text, 7, '0'), '', 'q-1', '', false,
       '{}'::jsonb, 'u' || n, CASE WHEN n %% 1000 = 0 THEN '' ELSE 't' || n END, %(connection)s, '', 0,
       now() - (n || ' seconds')::interval, now(), now()
FROM generate_series(1, %(sessions)s) AS n
"""
ACTIONS = """
INSERT INTO records_crmaction (session_id, kind, payload, idempotency_key, rule, reason, status, attempts,
    attempts_before_retry, last_error, result, created_at, updated_at)
SELECT s.id, k.kind, '{}'::jsonb, s.id || ':' || k.kind, '', '',
       CASE
         WHEN s.crm_record_id = '' AND k.kind = 'ensure_contact' THEN 'failed'
         WHEN s.crm_record_id = '' THEN 'pending'
         WHEN s.id % 500 = 0 AND k.kind = 'add_comment' THEN 'pending'
         ELSE 'succeeded' END,
       1, 0,
       CASE WHEN s.crm_record_id = '' AND k.kind = 'ensure_contact' THEN 'gave up after 8 attempts: 503' ELSE '' END,
       '{}'::jsonb, s.created_at, s.created_at
FROM records_session s
CROSS JOIN (VALUES ('ensure_contact'), ('create_record'), ('add_comment'), ('update_record')) AS k(kind)
"""


def median_seconds(function: Any, runs: int = 15) -> float:
    return statistics.median(timed(function)[0] for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--db", default=os.environ.get("BENCH_CONSOLE_DB", "crmbridge_bench_console"))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()

    setup_django(recreate_database(args.postgres_url, args.db))
    from django.db import connection as db
    from django.db.models import Count

    from integrations.http import CrmHttpClient
    from integrations.ratelimit import RedisRateGate
    from integrations.sandbox import start_sandbox
    from integrations.services import rate_gate
    from records.console import SessionState
    from records.models import CrmAction, Session
    from records.selectors import records_health, sessions_in_state

    connection = bench_connection()
    with db.cursor() as cursor:
        generate_s, _ = timed(
            lambda: (
                cursor.execute(SESSIONS, {"sessions": args.sessions, "connection": connection.pk}),
                cursor.execute(ACTIONS),
                cursor.execute("ANALYZE records_session; ANALYZE records_crmaction"),
            )
        )
    actions = CrmAction.objects.count()
    health = records_health()
    health_s = median_seconds(records_health)

    def blocked_page() -> list[Session]:
        return list(sessions_in_state(Session.objects.all(), SessionState.BLOCKED).order_by("-created_at")[:100])

    blocked_s = median_seconds(blocked_page)
    scan_s = median_seconds(lambda: list(CrmAction.objects.values("status").annotate(n=Count("id")).order_by()))

    class CountingNothing(RedisRateGate):
        def record_usage(self, key: str, *outcomes: str) -> None:
            return None

    sandbox = start_sandbox("zendesk")
    try:
        counted_gate = rate_gate()
        quiet_gate = CountingNothing(counted_gate.client)

        def run_requests(gate: RedisRateGate) -> None:
            client = CrmHttpClient(sandbox.base_url, timeout=5, rate_gate=gate)
            client.session.auth = ("admin@example.com/token", "sandbox-token")
            for _ in range(args.requests):
                client.get("/api/v2/tickets.json")

        run_requests(quiet_gate)  # warm-up: connections, the sandbox's first answers
        quiet_s = statistics.median(timed(lambda: run_requests(quiet_gate))[0] for _ in range(3))
        counted_s = statistics.median(timed(lambda: run_requests(counted_gate))[0] for _ in range(3))
    finally:
        sandbox.stop()

    result = {
        "bench": "console",
        "sessions": args.sessions,
        "actions": actions,
        "failed_actions": health.failed_actions,
        "blocked_sessions": health.blocked_sessions,
        "generate_seconds": round(generate_s, 1),
        "health_ms": round(health_s * 1000, 2),
        "blocked_filter_page_ms": round(blocked_s * 1000, 2),
        "scan_ms": round(scan_s * 1000, 2),
        "ratio_scan_vs_health": round(scan_s / health_s, 1),
        "requests": args.requests,
        "request_ms_uncounted": round(quiet_s / args.requests * 1000, 3),
        "request_ms_counted": round(counted_s / args.requests * 1000, 3),
        "ratio_counted_vs_uncounted": round(counted_s / quiet_s, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
