"""Status-sync latency: from a Kustomer status change to the agent's platform status visible in the DB.

Usage: .venv/bin/python bench/status.py [--agents 200] [--seconds N] [--clients C] [--workers W]

Self-contained like bench/ingest.py: it re-creates its own database (--database, default
crmbridge_bench_status, or $BENCH_STATUS_DB), migrates it, starts a sandbox Kustomer with one
user per agent, reads its routing statuses through the provider and maps them, and starts
gunicorn on a free loopback port. The driver then plays Kustomer for 200 agents: each agent signs
in (a `work-session.create` webhook; the product resolves the Kustomer user to the agent by email
through the sandbox, once), then `--clients` threads send a stream of signed
`work-session.update` webhooks, each for an agent of their own, back to back.

Measured per change: from the moment the driver makes the change (builds and signs the event) to
the moment another database connection sees the agent's platform status equal to the mapped
status. The answer of the webhook comes after the commit, so that one read normally confirms it.
The baseline, in the same run and with the same clients, is an authenticated no-op round trip
(GET /api/v1/ping); baseline and measurement alternate in short rounds, so both see the same load
on a shared machine. Figures are p50/p95 and their ratios to the baseline's. The last line printed
is one JSON object.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    MAX_ERROR_SAMPLES,
    REQUEST_TIMEOUT_S,
    bench_env,
    create_api_key,
    database_url,
    delete_bench_queue,
    free_port,
    manage,
    percentile_ms,
    recreate_database,
    start_server,
    stop_server,
    wait_until_ready,
)

DEFAULT_DB = os.environ.get("BENCH_STATUS_DB", "crmbridge_bench_status")
WEBHOOK_PATH = "/api/v1/agentstatus/webhooks/kustomer"
WEBHOOK_SECRET = "bench-webhook-secret"
# Kustomer status -> platform status. Email work and Lunch both mean Away (many-to-one), so a
# change between them is answered "unchanged": the platform status is right without a write.
MAPPING = {"Available": "Available", "Busy": "Busy", "Email work": "Away", "Lunch": "Away", "Offline": "Offline"}
# Offline ends the Kustomer session; the stream switches among the statuses that keep it open.
STREAM_STATUSES = ["Available", "Busy", "Email work", "Lunch"]
VISIBLE_TIMEOUT_S = 10.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=200, help="agents, each with one Kustomer session (200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase (default 20)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each round (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating ping/status rounds (default 5)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent senders (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--database", default=DEFAULT_DB, help=f"bench database, re-created (default {DEFAULT_DB})")
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="Redis (rate gate, bench queue)")
    args = parser.parse_args()
    if args.agents < args.clients or args.clients < 1 or args.seconds <= 0 or args.warmup < 0 or args.workers < 1:
        parser.error("need --agents >= --clients >= 1, --seconds > 0, --warmup >= 0, --workers >= 1")
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    return args


# ---------------------------------------------------------------------------------------------
# Set-up: the product's configuration, made through its own services
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    # agent email -> Kustomer user id
    users: dict[str, str]
    # Kustomer status name -> id
    statuses: dict[str, str]


def sandbox_fixture(agents: int) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads(
        (ROOT / "integrations" / "sandbox" / "fixtures" / "kustomer_demo.json").read_text()
    )
    fixture["users"] = [fixture["users"][0]] + [
        {"id": f"6000000000000000000{i:05d}", "name": f"Agent {i}", "email": f"agent{i}@example.com"}
        for i in range(agents)
    ]
    fixture["teams"] = [{**fixture["teams"][0], "members": [user["id"] for user in fixture["users"][1:]]}]
    return fixture


def configure(agents: int, sandbox_url: str) -> Setup:
    """Agents, platform statuses, the Kustomer connection, its statuses read and mapped, inheritance on."""
    import django

    django.setup()
    from agentstatus.models import Agent, CrmStatus, PlatformStatus
    from agentstatus.selectors import sync_settings_get
    from agentstatus.services.setup import crm_statuses_refresh, status_webhook_secret_set
    from integrations.services import connection_create

    connection = connection_create(
        name="Sandbox Kustomer",
        kind="kustomer",
        base_url=sandbox_url,
        settings={"api_token": "sandbox-api-key"},
        activate=True,
    )
    platform = {
        name: PlatformStatus.objects.create(name=name, position=i)
        for i, name in enumerate(dict.fromkeys(MAPPING.values()))
    }
    settings = sync_settings_get()
    settings.inheritance_enabled = True
    settings.connection = connection
    settings.save()
    status_webhook_secret_set(settings=settings, secret=WEBHOOK_SECRET)
    crm_statuses_refresh(settings=settings)
    for status in CrmStatus.objects.all():
        status.platform_status = platform[MAPPING[status.name]]
        status.save(update_fields=["platform_status"])
    Agent.objects.bulk_create([Agent(email=f"agent{i}@example.com", name=f"Agent {i}") for i in range(agents)])
    users = {f"agent{i}@example.com": f"6000000000000000000{i:05d}" for i in range(agents)}
    return Setup(users=users, statuses=dict(CrmStatus.objects.values_list("name", "crm_id")))


# ---------------------------------------------------------------------------------------------
# Kustomer, played by the driver
# ---------------------------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(event_id: str, name: str, session_id: str, user_id: str, status_id: str, before: str | None) -> bytes:
    changes = (
        None if before is None else {"attributes": {"status": {"op": "replace", "before": before, "after": status_id}}}
    )
    at = now_iso()
    body = {
        "id": event_id,
        "name": name,
        "org": "bench",
        "partition": "bench",
        "data": {
            "type": "work-session",
            "id": session_id,
            "attributes": {"status": status_id, "active": True, "signedInAt": at, "signedOutAt": None, "updatedAt": at},
            "relationships": {"user": {"data": {"type": "user", "id": user_id}}},
        },
        "changes": changes,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signed_post(session: requests.Session, url: str, body: bytes) -> requests.Response:
    from integrations.webhooks import kustomer_signature

    headers = {
        "Content-Type": "application/json",
        "X-Kustomer-Webhook-Signature": kustomer_signature(WEBHOOK_SECRET, body),
    }
    return session.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT_S)


@dataclass
class AgentStream:
    email: str
    user_id: str
    session_id: str
    status: str


@dataclass
class Log:
    latencies: list[tuple[float, float, float]] = field(default_factory=list)  # (finished, visible_s, answer_s)
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(message)


def status_visible(conn: psycopg.Connection[Any], email: str, expected: str) -> bool:
    row = conn.execute(
        "SELECT p.name FROM agentstatus_agent a JOIN agentstatus_platformstatus p ON p.id = a.platform_status_id "
        "WHERE a.email = %s",
        (email,),
    ).fetchone()
    return row is not None and row[0] == expected


def sign_in_all(base_url: str, setup: Setup, run_id: str) -> list[AgentStream]:
    """Every agent opens one Kustomer session (not measured: the product resolves each user once).

    A sign-in of a user not known yet is answered 202 and its user looked up after the answer by
    the task `agentstatus.apply_webhook_event`; the bench runs no worker, so it does that here.
    """
    from agentstatus.services.inbound import webhook_event_apply_pending

    streams = []
    with requests.Session() as session:
        for index, (email, user_id) in enumerate(setup.users.items()):
            session_id = f"ws-{run_id}-{index}"
            status = "Available"
            body = envelope(
                f"{session_id}-in", "kustomer.work-session.create", session_id, user_id, setup.statuses[status], None
            )
            response = signed_post(session, f"{base_url}{WEBHOOK_PATH}", body)
            if response.status_code != 202 or response.json().get("outcome") != "queued":
                raise RuntimeError(f"sign-in of {email}: {response.status_code} {response.text[:200]}")
            if webhook_event_apply_pending(event_id=f"{session_id}-in") is not None:
                raise RuntimeError(f"sign-in of {email}: the CRM could not say who user {user_id} is")
            streams.append(AgentStream(email, user_id, session_id, status))
    return streams


def change_loop(
    base_url: str, setup: Setup, agents: list[AgentStream], db_url: str, stop_at: float, log: Log, *, seed: int
) -> None:
    """Change the statuses of this client's agents in turn, each change checked in the database."""
    rng = random.Random(seed)
    counter = 0
    with requests.Session() as session, psycopg.connect(db_url, autocommit=True) as conn:
        while time.monotonic() < stop_at:
            agent = agents[counter % len(agents)]
            counter += 1
            new = rng.choice([name for name in STREAM_STATUSES if name != agent.status])
            event_id = f"{agent.session_id}-{seed}-{counter}"
            started = time.monotonic()
            body = envelope(
                event_id,
                "kustomer.work-session.update",
                agent.session_id,
                agent.user_id,
                setup.statuses[new],
                setup.statuses[agent.status],
            )
            try:
                response = signed_post(session, f"{base_url}{WEBHOOK_PATH}", body)
                answered = time.monotonic()
                outcome = response.json().get("outcome") if response.status_code == 200 else None
                if outcome not in ("applied", "unchanged"):
                    raise ValueError(f"{response.status_code} {response.text[:200]}")
                deadline = answered + VISIBLE_TIMEOUT_S
                while not status_visible(conn, agent.email, MAPPING[new]):
                    if time.monotonic() > deadline:
                        raise ValueError(f"{agent.email}: {MAPPING[new]} not visible after {VISIBLE_TIMEOUT_S}s")
                    time.sleep(0.001)
            except (requests.RequestException, ValueError, psycopg.Error) as exc:
                log.error(str(exc))
                continue
            visible = time.monotonic()
            agent.status = new
            log.outcomes[outcome] = log.outcomes.get(outcome, 0) + 1
            log.latencies.append((visible, visible - started, answered - started))


def ping_loop(base_url: str, key: str, stop_at: float, log: Log) -> None:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Api-Key {key}"
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                response = session.get(f"{base_url}/api/v1/ping", timeout=REQUEST_TIMEOUT_S)
                if response.status_code != 200:
                    raise ValueError(f"ping: {response.status_code}")
            except (requests.RequestException, ValueError) as exc:
                log.error(str(exc))
                continue
            finished = time.monotonic()
            log.latencies.append((finished, finished - started, finished - started))


@dataclass
class Phase:
    count: int
    per_s: float
    p50_ms: float
    p95_ms: float
    answer_p50_ms: float
    answer_p95_ms: float
    outcomes: dict[str, int]
    errors: int
    error_samples: list[str]


Loop = Callable[[float, Log], None]


def collect(loops: list[Loop], warmup: float, seconds: float, into: Log) -> None:
    """Run each loop in its own thread for warm-up + seconds; keep what finishes inside the window."""
    window_start = time.monotonic() + warmup
    window_end = window_start + seconds
    logs = [Log() for _ in loops]
    threads = [threading.Thread(target=loop, args=(window_end, logs[i]), daemon=True) for i, loop in enumerate(loops)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=warmup + seconds + REQUEST_TIMEOUT_S + VISIBLE_TIMEOUT_S + 5)
    for log in logs:
        into.latencies += [sample for sample in log.latencies if window_start <= sample[0] <= window_end]
        for outcome, count in log.outcomes.items():
            into.outcomes[outcome] = into.outcomes.get(outcome, 0) + count
        into.errors += log.errors
        into.error_samples = (into.error_samples + log.error_samples)[:MAX_ERROR_SAMPLES]


def summarize(log: Log, seconds: float) -> Phase:
    return Phase(
        count=len(log.latencies),
        per_s=len(log.latencies) / seconds,
        p50_ms=percentile_ms([s[1] for s in log.latencies], 0.50),
        p95_ms=percentile_ms([s[1] for s in log.latencies], 0.95),
        answer_p50_ms=percentile_ms([s[2] for s in log.latencies], 0.50),
        answer_p95_ms=percentile_ms([s[2] for s in log.latencies], 0.95),
        outcomes=log.outcomes,
        errors=log.errors,
        error_samples=log.error_samples,
    )


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def final_check(db_url: str, streams: list[AgentStream]) -> int:
    """Agents whose platform status is not the mapping of their last Kustomer status (must be 0)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        return sum(not status_visible(conn, agent.email, MAPPING[agent.status]) for agent in streams)


def run(args: argparse.Namespace, log_path: Path) -> dict[str, Any]:
    from integrations.sandbox import start_sandbox

    db_url = database_url(args.postgres_url, args.database)
    env = bench_env(db_url, args.redis_url)
    # This process configures the product through its own services, on the bench database.
    os.environ.update(
        {key: env[key] for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CRM_ALLOW_LOOPBACK")}
    )
    print(f"database {args.database}: re-creating and migrating")
    recreate_database(args.postgres_url, args.database)
    manage(env, "migrate", "--noinput")
    key = create_api_key(env)
    sandbox = start_sandbox("kustomer", fixture=sandbox_fixture(args.agents))
    proc = None
    try:
        setup = configure(args.agents, sandbox.base_url)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        print(
            f"gunicorn: {args.workers} sync workers on {base_url}; sandbox Kustomer on {sandbox.base_url}; "
            f"{args.agents} agents, {args.clients} clients, {args.rounds} rounds of {args.warmup:g}s warm-up + "
            f"{args.seconds / args.rounds:g}s per phase"
        )
        proc = start_server(env, port, args.workers, log_path)
        wait_until_ready(proc, base_url, key)
        run_id = f"b{int(time.time())}"
        streams = sign_in_all(base_url, setup, run_id)
        print(f"signed in {len(streams)} agents (each Kustomer user resolved once through the sandbox)")

        shares = [streams[i :: args.clients] for i in range(args.clients)]
        ping_log, status_log = Log(), Log()
        # The machine's load moves between seconds: short rounds of each phase, alternating, let the
        # baseline and the measurement see the same load, so that their ratio means something.
        slice_s = args.seconds / args.rounds
        for round_number in range(args.rounds):
            collect([partial(ping_loop, base_url, key) for _ in range(args.clients)], args.warmup, slice_s, ping_log)
            loops: list[Loop] = [
                partial(change_loop, base_url, setup, share, db_url, seed=round_number * 1000 + i)
                for i, share in enumerate(shares)
            ]
            collect(loops, args.warmup, slice_s, status_log)
        ping, status = summarize(ping_log, args.seconds), summarize(status_log, args.seconds)
        print(f"ping      {ping.per_s:8.1f} req/s      p50 {ping.p50_ms:6.1f} ms  p95 {ping.p95_ms:6.1f} ms")
        print(
            f"status    {status.per_s:8.1f} changes/s  p50 {status.p50_ms:6.1f} ms  p95 {status.p95_ms:6.1f} ms  "
            f"(answer p50 {status.answer_p50_ms:.1f} ms, p95 {status.answer_p95_ms:.1f} ms; {status.outcomes})"
        )
        for message in ping.error_samples + status.error_samples:
            print(f"  error: {message}")
        wrong = final_check(db_url, streams)
    finally:
        if proc is not None:
            stop_server(proc)
        sandbox.stop()
        delete_bench_queue(args.redis_url)
    if wrong:
        print(f"  error: {wrong} agents do not show the mapping of their last Kustomer status")

    def ratio(value: float, base: float) -> float:
        return round(value / base, 2) if base else 0.0

    return {
        "bench": "status",
        "agents": args.agents,
        "clients": args.clients,
        "workers": args.workers,
        "seconds": int(args.seconds) if args.seconds.is_integer() else args.seconds,
        "rounds": args.rounds,
        "changes": status.count,
        "changes_per_s": round(status.per_s, 1),
        "p50_ms": round(status.p50_ms, 1),
        "p95_ms": round(status.p95_ms, 1),
        "answer_p50_ms": round(status.answer_p50_ms, 1),
        "answer_p95_ms": round(status.answer_p95_ms, 1),
        "baseline_ping_p50_ms": round(ping.p50_ms, 1),
        "baseline_ping_p95_ms": round(ping.p95_ms, 1),
        "p50_ratio_vs_ping": ratio(status.p50_ms, ping.p50_ms),
        "p95_ratio_vs_ping": ratio(status.p95_ms, ping.p95_ms),
        "outcomes": status.outcomes,
        "errors": ping.errors + status.errors + wrong,
    }


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        log_path = Path(tmp) / "gunicorn.log"
        try:
            report = run(args, log_path)
        except (RuntimeError, OSError, psycopg.Error) as exc:
            print(f"bench/status.py failed: {exc}", file=sys.stderr)
            if log_path.exists():
                print(f"gunicorn log:\n{log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
            return 2
        if report["errors"] and log_path.exists():
            print(f"gunicorn log (tail):\n{log_path.read_text(errors='replace')[-4000:]}")
    print(
        f"webhook-to-status vs ping: p50 {report['p50_ratio_vs_ping']}x, p95 {report['p95_ratio_vs_ping']}x "
        f"({report['changes_per_s']} changes/s for {report['agents']} agents)"
    )
    print(json.dumps(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
