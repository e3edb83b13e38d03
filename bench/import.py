"""Ticket import: CRM requests per imported ticket, and tickets per second read, decided and stored.

Usage: .venv/bin/python bench/import.py [--tickets 100000] [--naive 10000] [--zendesk-tickets 20000]
       [--kustomer-tickets 3000] [--freshdesk-tickets 3000] [--comments-sample 300] [--db NAME]
       [--store-runs 1] [--profile FILE]

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

Store side (`store_*`): the same two paths again, but every CRM answer is replayed from memory (the
first import's HTTP answers recorded by a requests transport adapter, in order), so neither the
sandbox nor the loopback is measured: JSON decoding, the provider's mapping, the rules and the
storing are. The naive store side stores its --naive first tickets the same ORM way. With
--store-runs N the two take turns N times and the medians are reported (each run's figure beside
them), so that a shared machine's load falls on both.

CRM requests per imported ticket (`*_requests_per_imported_ticket`): the API requests the sandbox
counted during a full first import, divided by the tickets stored; for Zendesk (a sandbox seeded with
--zendesk-tickets) beside the per-ticket comments read the import used before (`load_comments`,
measured on the first --comments-sample kept tickets, plus the ticket export's share); for Kustomer and
Freshdesk, sandboxes seeded with --kustomer-tickets / --freshdesk-tickets generated conversations
or tickets (80% solved, 95% assigned), each with its messages, notes or conversations.
The last line printed is one JSON object.
"""

import argparse
import cProfile
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tickets_common import DEFAULT_POSTGRES, PYTHON, ROOT, recreate_database, setup_django, timed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replay(HTTPAdapter):
    """A transport adapter that records the answers of a real one, then plays them back.

    Answers are kept per (method, URL) in order; a URL asked more often than recorded (a second
    login) gets its last answer again. Paging URLs come from the recorded bodies, so they match.
    """

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.recorded: dict[tuple[str, str], list[tuple[int, dict[str, str], bytes]]] = {}
        self.replaying: dict[tuple[str, str], list[tuple[int, dict[str, str], bytes]]] | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        key = (request.method or "", request.url or "")
        if self.replaying is None:
            response = super().send(request, **kwargs)
            self.recorded.setdefault(key, []).append((response.status_code, dict(response.headers), response.content))
            return response
        answers = self.replaying[key]
        status, headers, content = answers.pop(0) if len(answers) > 1 else answers[0]
        response = requests.Response()
        response.status_code, response._content, response.request = status, content, request
        response.headers.update(headers)
        response.url = request.url or ""
        return response

    def replay(self) -> None:
        self.replaying = {key: list(answers) for key, answers in self.recorded.items()}


def start_sandbox(port: int, kind: str = "salesforce") -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(PYTHON), "manage.py", "sandbox_crm", kind, "--port", str(port)],
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


def sandbox_requests(base: str) -> int:
    return int(requests.get(f"{base}/__sandbox/stats", timeout=10).json()["total"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=10_000, help="tickets the naive baseline stores (a prefix)")
    parser.add_argument("--zendesk-tickets", type=int, default=20_000)
    parser.add_argument("--kustomer-tickets", type=int, default=3_000)
    parser.add_argument("--freshdesk-tickets", type=int, default=3_000)
    parser.add_argument(
        "--comments-sample",
        type=int,
        default=300,
        help="kept Zendesk tickets whose comments are read one by one for the per-ticket baseline (it is one "
        "request a ticket; more than the import's share of the sandbox's 700 a minute is refused by the rate gate)",
    )
    parser.add_argument("--db", default=os.environ.get("BENCH_IMPORT_DB", "crmbridge_bench_import"))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    parser.add_argument(
        "--store-runs",
        type=int,
        default=1,
        help="store sides timed, the import and the naive loop taking turns; the medians are reported",
    )
    parser.add_argument("--profile", help="write a cProfile of the store-side import to this file (and print its top)")
    args = parser.parse_args()

    setup_django(recreate_database(args.postgres_url, args.db))
    from django.db import connection as db
    from django.utils import timezone

    from integrations.models import CrmConnection
    from integrations.providers.importing import TicketImportSource
    from integrations.services import connection_create, connection_provider
    from ticketsearch import rules
    from ticketsearch.models import Agent, CrmComment, ImportRun, ImportState, Ticket
    from ticketsearch.services import importing
    from ticketsearch.services.importing import tickets_import
    from ticketsearch.services.retention import partitions_ensure

    now = timezone.now()
    # Partitions made up front for every path, so none pays the DDL inside its timing.
    partitions_ensure(days=[(now - timedelta(days=d)).date() for d in range(92)])

    def fresh_start(connection: CrmConnection) -> None:
        with db.cursor() as cursor:
            cursor.execute("TRUNCATE ticketsearch_ticket")
        CrmComment.objects.all().delete()
        ImportState.objects.filter(connection=connection).update(tickets_cursor="", users_cursor="", comments_cursor="")

    def naive(provider: TicketImportSource, connection: CrmConnection) -> tuple[int, int]:
        agents = dict(Agent.objects.filter(connection=connection).values_list("crm_user_id", "pk"))
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
                            "crm_kind": connection.kind,
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
                            "search_config": importing.ticket_search_config(ticket),
                        },
                    )
                    stored += 1
                if read >= args.naive:
                    return read, stored
        return read, stored

    report: dict[str, Any] = {"bench": "import", "tickets": args.tickets}

    # -- Zendesk: CRM requests per imported ticket --------------------------------------------------
    port = free_port()
    sandbox = start_sandbox(port, "zendesk")
    try:
        base = f"http://127.0.0.1:{port}"
        requests.post(f"{base}/__sandbox/seed", json={"count": args.zendesk_tickets, "seed": 42}, timeout=600)
        zendesk = connection_create(
            name="bench zendesk",
            kind="zendesk",
            base_url=base,
            settings={"email": "admin@example.com", "api_token": "sandbox-token"},
            activate=False,
        )
        before = sandbox_requests(base)
        zendesk_s, zendesk_run = timed(
            lambda: tickets_import(connection=zendesk, trigger=ImportRun.Trigger.COMMAND, now=now)
        )
        zendesk_requests = sandbox_requests(base) - before
        zendesk_stored = Ticket.objects.filter(connection=zendesk).count()
        # The way before: the same export, comments read per kept ticket.
        provider = connection_provider(zendesk)
        assert isinstance(provider, TicketImportSource)
        kept = list(
            Ticket.objects.filter(connection=zendesk).order_by("crm_ticket_id").values_list("crm_ticket_id", flat=True)
        )[: args.comments_sample]
        from integrations.providers.importing import ImportedTicket

        sample = [
            ImportedTicket(
                crm_id=crm_id, subject="", description="", status="solved", is_solved=True, channel="other",
                assignee_id=None, requester_id=None, requester_name="", requester_email=None, requester_phone=None,
                tags=(), created_at=now, updated_at=now, solved_at=now, web_url="",
            )
            for crm_id in kept
        ]  # fmt: skip
        before = sandbox_requests(base)
        provider.load_comments(sample)
        per_ticket_comments = (sandbox_requests(base) - before) / len(sample)
        export_pages = sum(
            count
            for key, count in requests.get(f"{base}/__sandbox/stats", timeout=10).json()["requests"].items()
            if "incremental/tickets" in key
        )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    report |= {
        "zendesk_tickets": args.zendesk_tickets,
        "zendesk_imported": zendesk_stored,
        "zendesk_import_seconds": round(zendesk_s, 2),
        "zendesk_requests": zendesk_requests,
        "zendesk_requests_per_imported_ticket": round(zendesk_requests / zendesk_stored, 4),
        "zendesk_per_ticket_comments_baseline_requests_per_imported_ticket": round(
            per_ticket_comments + export_pages / zendesk_stored, 4
        ),
        "zendesk_skipped": zendesk_run.skipped,
    }
    print(f"zendesk: {zendesk_requests} requests for {zendesk_stored} tickets", file=sys.stderr)
    with db.cursor() as cursor:
        cursor.execute("TRUNCATE ticketsearch_ticket")

    # -- Kustomer and Freshdesk: CRM requests per imported ticket -----------------------------------
    for kind, count in (("kustomer", args.kustomer_tickets), ("freshdesk", args.freshdesk_tickets)):
        port = free_port()
        sandbox = start_sandbox(port, kind)
        try:
            base = f"http://127.0.0.1:{port}"
            requests.post(f"{base}/__sandbox/seed", json={"count": count, "seed": 42}, timeout=600).raise_for_status()
            # Requests are counted, not paced: a window far above the plan's, so its headers never say 0 left
            # (Freshdesk's client would wait out the minute; in production the plan's limit sets the pace).
            requests.post(f"{base}/__sandbox/config", json={"rate_limit_per_minute": 1_000_000}, timeout=10)
            crm = connection_create(
                name=f"bench {kind}",
                kind=kind,
                base_url=base,
                settings={"api_token": "sandbox-api-key"},
                activate=False,
            )
            before = sandbox_requests(base)
            crm_s, crm_run = timed(
                lambda crm=crm: tickets_import(connection=crm, trigger=ImportRun.Trigger.COMMAND, now=now)
            )
            crm_requests = sandbox_requests(base) - before
            crm_stored = Ticket.objects.filter(connection=crm).count()
            by_route = requests.get(f"{base}/__sandbox/stats", timeout=10).json()["requests"]
            baseline = None
            crm_provider = connection_provider(crm)
            assert isinstance(crm_provider, TicketImportSource)
            if crm_provider.comments_in_bulk:
                # The per-ticket way beside it: the same pages, and each solved, assigned, recent
                # ticket's comments read with its own list requests (load_comments).
                before, listed = sandbox_requests(base), 0
                for page in crm_provider.iter_tickets(cursor=None, since=now - rules.RETENTION):
                    solved = [
                        t for t in page.items if t.is_solved and t.assignee_id and t.created_at >= now - rules.RETENTION
                    ]
                    crm_provider.load_comments(solved)
                    listed += len(solved)
                baseline = round((sandbox_requests(base) - before) / listed, 4)
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=10)
        report |= {
            f"{kind}_tickets": count,
            f"{kind}_imported": crm_stored,
            f"{kind}_import_seconds": round(crm_s, 2),
            f"{kind}_requests": crm_requests,
            f"{kind}_requests_per_imported_ticket": round(crm_requests / crm_stored, 4),
            f"{kind}_requests_by_route": by_route,
            f"{kind}_per_ticket_lists_baseline_requests_per_ticket": baseline,
            f"{kind}_skipped": crm_run.skipped,
        }
        print(f"{kind}: {crm_requests} requests for {crm_stored} tickets", file=sys.stderr)
        with db.cursor() as cursor:
            cursor.execute("TRUNCATE ticketsearch_ticket")

    # -- Salesforce: over HTTP, then the store side from replayed answers ----------------------------
    port = free_port()
    sandbox = start_sandbox(port)
    replay = Replay()
    real_provider = importing.connection_provider

    def recorded_provider(connection: CrmConnection, **kwargs: Any) -> Any:
        provider: Any = real_provider(connection, **kwargs)
        provider.client.session.mount("http://", replay)
        # Salesforce logs in through a client of its own.
        login = getattr(provider.client, "_login_client", None)
        if login is not None:
            login.session.mount("http://", replay)
        return provider

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
        # Users first (not timed: agents are few), so the naive path has its agents too.
        provider = connection_provider(connection)
        assert isinstance(provider, TicketImportSource)
        tickets_import(connection=connection, trigger=ImportRun.Trigger.COMMAND, now=now)
        fresh_start(connection)

        naive_s, (naive_read, naive_stored) = timed(lambda: naive(provider, connection))
        fresh_start(connection)

        importing.connection_provider = recorded_provider
        before = sandbox_requests(base)
        import_s, run = timed(lambda: tickets_import(connection=connection, trigger=ImportRun.Trigger.COMMAND, now=now))
        salesforce_requests = sandbox_requests(base) - before
        stored = Ticket.objects.count()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    # The sandbox is gone: from here every answer is the recorded one. With --store-runs N the two
    # store sides take turns N times (each into an emptied table) and the medians are reported.
    store_rates: list[float] = []
    store_naive_rates: list[float] = []
    for attempt in range(args.store_runs):
        importing.connection_provider = recorded_provider
        fresh_start(connection)
        replay.replay()
        profiler = cProfile.Profile() if args.profile and attempt == 0 else None
        if profiler:
            profiler.enable()
        store_s, store_run = timed(
            lambda: tickets_import(connection=connection, trigger=ImportRun.Trigger.COMMAND, now=now)
        )
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        assert store_run.tickets_fetched == run.tickets_fetched, "the replay must answer the same pages"
        assert Ticket.objects.count() == stored
        importing.connection_provider = real_provider
        fresh_start(connection)
        replayed_provider = recorded_provider(connection)
        replay.replay()
        store_naive_s, (store_naive_read, _) = timed(
            lambda replayed_provider=replayed_provider: naive(replayed_provider, connection)
        )
        store_rates.append(store_run.tickets_fetched / store_s)
        store_naive_rates.append(store_naive_read / store_naive_s)
        print(
            f"store side run {attempt + 1}: {store_rates[-1]:.0f}/s vs naive {store_naive_rates[-1]:.0f}/s",
            file=sys.stderr,
        )

    naive_rate = naive_read / naive_s
    import_rate = run.tickets_fetched / import_s
    store_rate = statistics.median(store_rates)
    store_naive_rate = statistics.median(store_naive_rates)
    report |= {
        "import_seconds": round(import_s, 2),
        "import_tickets_read_per_s": round(import_rate),
        "import_tickets_stored_per_s": round(stored / import_s),
        "import_stored": stored,
        "naive_tickets": naive_read,
        "naive_seconds": round(naive_s, 2),
        "naive_tickets_read_per_s": round(naive_rate),
        "naive_tickets_stored_per_s": round(naive_stored / naive_s),
        "ratio_vs_naive": round(import_rate / naive_rate, 2),
        "salesforce_requests": salesforce_requests,
        "salesforce_requests_per_imported_ticket": round(salesforce_requests / stored, 4),
        "store_seconds": round(store_s, 2),
        "store_tickets_read_per_s": round(store_rate),
        "store_naive_tickets_read_per_s": round(store_naive_rate),
        "store_ratio_vs_naive": round(store_rate / store_naive_rate, 2),
        "store_runs": args.store_runs,
        "store_tickets_read_per_s_each": [round(rate) for rate in store_rates],
        "store_naive_tickets_read_per_s_each": [round(rate) for rate in store_naive_rates],
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "skipped": run.skipped,
        "targets": {"store_tickets_per_s": 20_000, "store_ratio_vs_naive": 20, "requests_per_imported_ticket": 0.05},
    }
    print(
        f"import: {run.tickets_fetched} read in {import_s:.2f}s = {import_rate:.0f}/s ({stored} stored); "
        f"naive: {naive_read} in {naive_s:.2f}s = {naive_rate:.0f}/s; ratio {report['ratio_vs_naive']}; "
        f"store side {store_rate:.0f}/s vs naive {store_naive_rate:.0f}/s",
        file=sys.stderr,
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
