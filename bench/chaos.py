"""Chaos: sessions posted while workers are SIGKILLed, the broker dies, the database cuts every connection.

Usage: .venv/bin/python bench/chaos.py [--sessions N] [--broker redis|rabbitmq] [--workers W]

Self-contained, loopback only. It re-creates its own database (crmbridge_bench_chaos), migrates
it, starts a sandbox Zendesk (in this process), gunicorn, W Celery workers (prefork, 2 children
each, on the live, imports and maintenance queues) and one beat (the 5 s sweeps), then runs the
same workload twice in one invocation:

  baseline  N sessions (created, assigned, connected, ended; every batch posted twice, shuffled),
            no faults: the time from the last post to every session settled is the baseline.
  chaos     N other sessions, the same way, while: a worker (or one of its pool children) is
            SIGKILLed and restarted every --kill-every seconds; the broker is killed and
            restarted once (redis: a redis-server of the bench's own, no persistence, so it
            comes back empty; rabbitmq: every connection of the bench's own vhost on the local
            RabbitMQ is closed by the server, which is what clients see of a restart - the shared
            RabbitMQ itself is not stopped); every PostgreSQL connection to the bench database is
            terminated once (pg_terminate_backend); the sandbox fails ~20% of requests (10% 5xx,
            5% 429, 5% writes applied but answered 500). Events are duplicated and out of order.

"Settled" is: no unapplied event, no pending action. Then each session is reconciled against the
sandbox's own API (the tickets with its external id, their comments): lost (no ticket),
duplicate records (more than one), duplicate comments (the same body twice on a ticket). Printed:
those counts, failed actions, API 5xx other than 503, worker exits not caused by the bench, and
the seconds to settle after the faults end, and the first post to settled as a ratio to the
fault-free run's. The last line is JSON.
"""

import argparse
import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import REQUEST_TIMEOUT_S, database_url  # noqa: E402
from bench.stack import Broker, Fleet, add_stack_arguments, bench_main, bench_stack, stack_options  # noqa: E402

DEFAULT_DB = os.environ.get("BENCH_CHAOS_DB", "crmbridge_bench_chaos")
SESSIONS_PER_BATCH = 5
SETTLE_TIMEOUT_S = 600.0
FAULTS = {"fail_rate": 0.10, "throttle_rate": 0.05, "lost_response_rate": 0.05, "retry_after_seconds": 1}
NO_FAULTS = {"fail_rate": 0.0, "throttle_rate": 0.0, "lost_response_rate": 0.0}
AGENTS = ("ana@example.com", "ben@example.com", "carla@example.com")
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100, help="sessions per phase (default 100)")
    parser.add_argument("--broker", choices=("redis", "rabbitmq"), default="redis")
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between worker kills (default 5)")
    parser.add_argument("--post-seconds", type=float, default=30.0, help="spread the posts over this long")
    parser.add_argument("--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5672", help="RabbitMQ (no vhost)")
    add_stack_arguments(parser, database=DEFAULT_DB, limiter_redis_url="redis://127.0.0.1:6379/12")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.sessions < 1 or args.workers < 1 or args.kill_every <= 0 or args.post_seconds <= 0:
        parser.error("--sessions, --workers >= 1; --kill-every, --post-seconds > 0")
    return args


# -- The workload --------------------------------------------------------------------------------


def session_events(session_id: str, n: int) -> list[dict[str, Any]]:
    agent = AGENTS[n % len(AGENTS)]
    start = T0 + timedelta(minutes=n)
    kinds: list[tuple[str, int, dict[str, Any]]] = [
        (
            "session.created",
            0,
            {
                "channel": "voice",
                "session_type": "voice_inbound_ivr",
                "language": "en",
                "phone_number": f"+1415555{n % 10000:04d}",
                "menu_path": "Support > Billing",
                "queue": {"id": "q-support-billing", "name": "Billing", "path": ["Support", "Billing"]},
            },
        ),
        ("session.assigned", 5, {"agent": {"email": agent}}),
        ("session.connected", 10, {"agent": {"email": agent}}),
        ("session.ended", 130, {"call_duration": 120, "hold_time": 10, "wait_time": 15}),
    ]
    return [
        {
            "event_id": f"{session_id}-{i}",
            "session_id": session_id,
            "type": kind,
            "occurred_at": (start + timedelta(seconds=after)).isoformat(),
            "data": data,
        }
        for i, (kind, after, data) in enumerate(kinds)
    ]


@dataclass
class PostLog:
    posts: int = 0
    unavailable: int = 0
    server_errors: int = 0
    samples: list[str] = field(default_factory=list)


def post(base_url: str, key: str, events: list[dict[str, Any]], log: PostLog) -> None:
    """Post until stored, as the platform does: a 503 or a dropped connection is retried."""
    headers = {"Authorization": f"Api-Key {key}"}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        log.posts += 1
        try:
            response = requests.post(
                f"{base_url}/api/v1/events", json={"events": events}, headers=headers, timeout=REQUEST_TIMEOUT_S
            )
        except requests.RequestException as exc:
            log.samples.append(f"connection: {exc}"[:200])
            time.sleep(1)
            continue
        if response.status_code == 202:
            return
        if response.status_code == 503:
            log.unavailable += 1
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        if response.status_code >= 500:
            log.server_errors += 1
        log.samples.append(f"{response.status_code}: {response.text[:200]}")
        time.sleep(1)
    raise RuntimeError(f"a batch was never accepted: {log.samples[-3:]}")


def post_sessions(
    base_url: str, key: str, prefix: str, count: int, seconds: float, rng: random.Random, *, first: int
) -> PostLog:
    """Every session's events in batches, each batch posted twice (a platform retry), shuffled.

    Caller numbers (phones) start at `first`, so no session appends to another phase's ticket.
    """
    log = PostLog()
    batches = [range(i, min(count, i + SESSIONS_PER_BATCH)) for i in range(0, count, SESSIONS_PER_BATCH)]
    pause = seconds / max(1, len(batches))
    for batch in batches:
        events = [event for n in batch for event in session_events(f"{prefix}-{n}", first + n)]
        # The end may arrive before the start: the product orders by occurred_at.
        rng.shuffle(events)
        post(base_url, key, events, log)
        rng.shuffle(events)
        post(base_url, key, events[: len(events) // 2] + events, log)
        time.sleep(pause)
    return log


# -- Reading the outcome -------------------------------------------------------------------------


def unsettled(db_url: str, prefix: str) -> tuple[int, int]:
    with psycopg.connect(db_url, autocommit=True, connect_timeout=5) as conn:
        unapplied = conn.execute(
            "SELECT count(*) FROM records_event e JOIN records_session s ON s.id = e.session_id "
            "WHERE e.applied_at IS NULL AND s.external_id LIKE %s",
            [f"{prefix}-%"],
        ).fetchone()
        pending = conn.execute(
            "SELECT count(*) FROM records_crmaction a JOIN records_session s ON s.id = a.session_id "
            "WHERE a.status = 'pending' AND s.external_id LIKE %s",
            [f"{prefix}-%"],
        ).fetchone()
    return (unapplied[0] if unapplied else 0), (pending[0] if pending else 0)


def failed_actions(db_url: str, prefix: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM records_crmaction a JOIN records_session s ON s.id = a.session_id "
            "WHERE a.status = 'failed' AND s.external_id LIKE %s",
            [f"{prefix}-%"],
        ).fetchone()
    return row[0] if row else 0


def wait_settled(db_url: str, prefix: str, sessions: int) -> float | None:
    """Seconds until every session of the phase is stored, applied and has no pending action."""
    start = time.monotonic()
    while time.monotonic() - start < SETTLE_TIMEOUT_S:
        try:
            with psycopg.connect(db_url, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM records_session WHERE external_id LIKE %s", [f"{prefix}-%"]
                ).fetchone()
            stored = row[0] if row else 0
            if stored >= sessions and unsettled(db_url, prefix) == (0, 0):
                return time.monotonic() - start
        except psycopg.OperationalError:
            pass
        time.sleep(0.5)
    return None


def reconcile(sandbox_url: str, prefix: str, sessions: int) -> dict[str, int]:
    """Against the sandbox's own API: each session's tickets (by external id) and their comments."""
    api = requests.Session()
    api.auth = ("admin@example.com/token", "sandbox-token")
    lost = duplicate_records = duplicate_comments = 0
    for n in range(sessions):
        tickets = api.get(
            f"{sandbox_url}/api/v2/tickets.json", params={"external_id": f"{prefix}-{n}"}, timeout=30
        ).json()["tickets"]
        if not tickets:
            lost += 1
        duplicate_records += max(0, len(tickets) - 1)
        for ticket in tickets:
            comments = api.get(f"{sandbox_url}/api/v2/tickets/{ticket['id']}/comments.json", timeout=30).json()
            bodies = Counter(comment["body"] for comment in comments["comments"])
            duplicate_comments += sum(count - 1 for count in bodies.values())
    return {"lost": lost, "duplicate_records": duplicate_records, "duplicate_comments": duplicate_comments}


def terminate_connections(server_url: str, database: str) -> int:
    with psycopg.connect(database_url(server_url, "postgres"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        ).fetchall()
    return len(rows)


# -- The run -------------------------------------------------------------------------------------


def run_phase(
    name: str,
    *,
    args: argparse.Namespace,
    base_url: str,
    key: str,
    db_url: str,
    sandbox: Any,
    fleet: Fleet,
    broker: Broker,
    rng: random.Random,
    chaos: bool,
    first: int,
) -> dict[str, Any]:
    prefix = name
    sandbox.configure(**(FAULTS if chaos else NO_FAULTS))
    posted: dict[str, PostLog] = {}
    poster = threading.Thread(
        target=lambda: posted.setdefault(
            "log", post_sessions(base_url, key, prefix, args.sessions, args.post_seconds, rng, first=first)
        ),
        daemon=True,
    )
    start = time.monotonic()
    poster.start()
    faults: list[str] = []
    next_kill = start + args.kill_every
    broker_killed = broker_back = db_cut = False
    while poster.is_alive() or (chaos and not (broker_back and db_cut)):
        now = time.monotonic() - start
        fleet.check()
        if chaos:
            if time.monotonic() >= next_kill:
                faults.append(f"{now:5.1f}s SIGKILL {fleet.kill_one(rng)}")
                next_kill += args.kill_every
            if not broker_killed and now >= args.post_seconds * 0.3:
                broker.kill()
                broker_killed = True
                faults.append(f"{now:5.1f}s broker killed")
            if broker_killed and not broker_back and now >= args.post_seconds * 0.3 + 5:
                broker.restart()
                broker_back = True
                faults.append(f"{now:5.1f}s broker back")
            if not db_cut and now >= args.post_seconds * 0.6:
                faults.append(
                    f"{now:5.1f}s pg_terminate_backend x{terminate_connections(args.postgres_url, args.database)}"
                )
                db_cut = True
        time.sleep(0.2)
    poster.join(timeout=300)
    if "log" not in posted:
        raise RuntimeError(f"{name}: posting did not finish")
    sandbox.configure(**NO_FAULTS)
    faults_end = time.monotonic()
    for line in faults:
        print(f"  {line}")
    print(f"  {name}: posted in {faults_end - start:.1f}s; waiting to settle")
    settle = wait_settled(db_url, prefix, args.sessions)
    fleet.check()
    outcome = reconcile(sandbox.base_url, prefix, args.sessions)
    log = posted["log"]
    return {
        **outcome,
        "settle_seconds": None if settle is None else round(settle, 1),
        # From the first post to every session settled: the figure compared with the baseline's.
        "total_seconds": None if settle is None else round(faults_end - start + settle, 1),
        "failed_actions": failed_actions(db_url, prefix),
        "api_posts": log.posts,
        "api_503": log.unavailable,
        "api_5xx_other": log.server_errors,
        "faults": len(faults),
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    # Fast backoff, so a run's retries settle within the figures' seconds rather than minutes.
    env = {"CRM_RETRY_BACKOFF_SECONDS": "1", "CRM_RETRY_BACKOFF_MAX_SECONDS": "10"}
    with bench_stack(
        directory=tmp,
        broker=args.broker,
        rabbitmq_url=args.rabbitmq_url,
        env=env,
        seed=args.seed,
        **stack_options(args),
    ) as stack:
        phases = {}
        for first, (name, chaos) in enumerate((("baseline", False), ("chaos", True))):
            print(f"{name}: {args.sessions} sessions")
            phases[name] = run_phase(
                name,
                args=args,
                base_url=stack.base_url,
                key=stack.key,
                db_url=stack.db_url,
                sandbox=stack.sandbox,
                fleet=stack.fleet,
                broker=stack.broker,
                rng=rng,
                chaos=chaos,
                first=first * 5000,
            )
            print(f"  {name}: {phases[name]}")
        fleet = stack.fleet
    base, chaos_run = phases["baseline"], phases["chaos"]
    ratio = (
        round(chaos_run["total_seconds"] / max(0.1, base["total_seconds"]), 2)
        if chaos_run["total_seconds"] is not None and base["total_seconds"] is not None
        else None
    )
    return {
        "bench": "chaos",
        "broker": args.broker,
        "sessions": args.sessions,
        "lost": chaos_run["lost"],
        "duplicate_records": chaos_run["duplicate_records"],
        "duplicate_comments": chaos_run["duplicate_comments"],
        "failed_actions": chaos_run["failed_actions"],
        "api_5xx_other_than_503": chaos_run["api_5xx_other"] + base["api_5xx_other"],
        "api_503": chaos_run["api_503"],
        "worker_kills": fleet.kills,
        "unexpected_worker_exits": fleet.unexpected_exits,
        "settle_seconds_after_faults": chaos_run["settle_seconds"],
        "baseline_settle_seconds": base["settle_seconds"],
        "total_seconds": chaos_run["total_seconds"],
        "baseline_total_seconds": base["total_seconds"],
        "total_ratio_vs_baseline": ratio,
        "baseline_lost": base["lost"],
        "baseline_duplicates": base["duplicate_records"] + base["duplicate_comments"],
    }


def conclude(args: argparse.Namespace, report: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether the run passed, and its summary lines."""
    ok = (
        report["lost"] == 0
        and report["duplicate_records"] == 0
        and report["duplicate_comments"] == 0
        and report["settle_seconds_after_faults"] is not None
    )
    line = (
        f"{args.broker}: lost {report['lost']}, duplicate records {report['duplicate_records']}, duplicate comments "
        f"{report['duplicate_comments']}, settled {report['settle_seconds_after_faults']} s after the faults end "
        f"(fault-free: {report['baseline_settle_seconds']} s after the last post); first post to settled "
        f"{report['total_seconds']} s, {report['total_ratio_vs_baseline']}x the fault-free run's"
    )
    return ok, [line]


def main() -> int:
    args = parse_args()
    return bench_main("chaos.py", args, run, conclude, redis_server=args.broker == "redis")


if __name__ == "__main__":
    sys.exit(main())
