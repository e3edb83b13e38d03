"""Ticket import throughput: tickets per second read from the sandbox Salesforce over HTTP and stored.

Usage: .venv/bin/python bench/import.py [--tickets 100000] [--naive 10000] [--db NAME]

The script re-creates its own database (default `crmbridge_bench_import`, or $BENCH_IMPORT_DB),
starts `manage.py sandbox_crm salesforce` in its own process on a free loopback port, seeds it
with a generated org (`POST /__sandbox/seed`: 20 agents, 5,000 contacts, N cases over 95 days with
a comment each, chat transcripts), and then times, in the same run:

  naive     the first --naive tickets of the same SOQL export, read through the same provider and
            rules, each stored with its own ORM `update_or_create()` (one SELECT + one INSERT per ticket)
  import    `ticketsearch.services.importing.tickets_import`: the whole export, pages of 2,000
            upserted with COPY + INSERT ... ON CONFLICT (the product's path), into an empty table

Both include the HTTP reads. The figure is tickets read per second (every ticket is decided; the
solved ones of imported agents, within 90 days, are stored), and its ratio to the naive rate.
The last line printed is one JSON object.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tickets_common import DEFAULT_POSTGRES, PYTHON, ROOT, recreate_database, setup_django, timed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(PYTHON), "manage.py", "sandbox_crm", "salesforce", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/__sandbox/stats", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the sandbox did not start within 30 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=10_000, help="tickets the naive baseline stores (a prefix)")
    parser.add_argument("--db", default=os.environ.get("BENCH_IMPORT_DB", "crmbridge_bench_import"))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()

    setup_django(recreate_database(args.postgres_url, args.db))
    from django.db import connection as db
    from django.utils import timezone

    from integrations.providers.importing import TicketImportSource
    from integrations.services import connection_create, connection_provider
    from ticketsearch import rules
    from ticketsearch.models import Agent, ImportRun, Ticket
    from ticketsearch.services.importing import tickets_import
    from ticketsearch.services.retention import partitions_ensure

    port = free_port()
    sandbox = start_sandbox(port)
    try:
        base = f"http://127.0.0.1:{port}"
        seed_s, _ = timed(
            lambda: requests.post(f"{base}/__sandbox/seed", json={"count": args.tickets, "seed": 42}, timeout=600)
        )
        print(f"seeded {args.tickets} cases in {seed_s:.1f}s", file=sys.stderr)
        connection = connection_create(
            name="bench",
            kind="salesforce",
            base_url=base,
            settings={"client_id": "bench", "client_secret": "bench"},
            activate=True,
        )
        now = timezone.now()
        # Partitions made up front for both paths, so neither pays the DDL inside its timing.
        partitions_ensure(days=[(now - timedelta(days=d)).date() for d in range(92)])

        # Users first (not timed: agents are few), so the naive path has its agents too.
        provider = connection_provider(connection)
        assert isinstance(provider, TicketImportSource)
        tickets_import(connection=connection, trigger=ImportRun.Trigger.COMMAND, now=now)
        agents = dict(Agent.objects.filter(connection=connection).values_list("crm_user_id", "pk"))
        with db.cursor() as cursor:
            cursor.execute("TRUNCATE ticketsearch_ticket")

        def naive() -> tuple[int, int]:
            read = stored = 0
            for page in provider.iter_tickets(cursor=None, since=now - rules.RETENTION):
                for ticket in page.items:
                    read += 1
                    agent_id = agents.get(ticket.assignee_id or "")
                    if rules.ticket_skip_reason(ticket, agent_id=agent_id, now=now) is None:
                        Ticket.objects.update_or_create(
                            connection=connection,
                            crm_ticket_id=ticket.crm_id,
                            created_at=ticket.created_at,
                            defaults={
                                "crm_kind": "salesforce",
                                "subject": ticket.subject,
                                "description": ticket.description,
                                "status": ticket.status,
                                "channel": ticket.channel,
                                "agent_id": agent_id,
                                "agent_crm_id": ticket.assignee_id or "",
                                "requester_crm_id": ticket.requester_id or "",
                                "requester_name": ticket.requester_name,
                                "requester_email": ticket.requester_email or "",
                                "requester_phone": ticket.requester_phone or "",
                                "requester_phone_rev": rules.phone_digits_reversed(ticket.requester_phone),
                                "tags": list(ticket.tags),
                                "comments": [{"id": c.crm_id, "body": c.body} for c in ticket.comments],
                                "comments_text": "\n\n".join(c.body for c in ticket.comments),
                                "transcript": "\n\n".join(ticket.transcripts),
                                "recording_urls": [],
                                "crm_url": ticket.web_url,
                                "crm_updated_at": ticket.updated_at,
                                "solved_at": ticket.solved_at,
                                "imported_at": now,
                            },
                        )
                        stored += 1
                    if read >= args.naive:
                        return read, stored
            return read, stored

        naive_s, (naive_read, naive_stored) = timed(naive)
        with db.cursor() as cursor:
            cursor.execute("TRUNCATE ticketsearch_ticket")
        from ticketsearch.models import ImportState

        ImportState.objects.filter(connection=connection).update(tickets_cursor="", users_cursor="")
        import_s, run = timed(lambda: tickets_import(connection=connection, trigger=ImportRun.Trigger.COMMAND, now=now))
        stored = Ticket.objects.count()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    naive_rate = naive_read / naive_s
    import_rate = run.tickets_fetched / import_s
    report = {
        "bench": "import",
        "tickets": args.tickets,
        "import_seconds": round(import_s, 2),
        "import_tickets_read_per_s": round(import_rate),
        "import_tickets_stored_per_s": round(stored / import_s),
        "import_stored": stored,
        "naive_tickets": naive_read,
        "naive_seconds": round(naive_s, 2),
        "naive_tickets_read_per_s": round(naive_rate),
        "naive_tickets_stored_per_s": round(naive_stored / naive_s),
        "ratio_vs_naive": round(import_rate / naive_rate, 2),
        "skipped": run.skipped,
        "target_tickets_per_s": 20_000,
    }
    print(
        f"import: {run.tickets_fetched} read in {import_s:.2f}s = {import_rate:.0f}/s ({stored} stored); "
        f"naive: {naive_read} in {naive_s:.2f}s = {naive_rate:.0f}/s; ratio {report['ratio_vs_naive']}",
        file=sys.stderr,
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
