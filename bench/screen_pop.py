"""Screen-pop latency: from the moment a call's record exists to the answering agent's adapter holding it (O4).

Usage: .venv/bin/python bench/screen_pop.py [--agents 8] [--calls 200] [--workers 2]

Self-contained like bench/status.py: it re-creates its own database (--database, default
crmbridge_bench_screen_pop, or $BENCH_SCREEN_POP_DB), migrates it, starts a sandbox Zendesk with
one CRM agent per adapter, gunicorn (threaded workers: every adapter holds a long poll) and one
Celery worker. Each agent's adapter waits on `GET /api/v1/adapter/screen-pop?wait=25&after=...`
in a thread of its own while the driver, playing the platform, posts calls answered by that agent
(session.created, assigned, connected) one after another.

Measured per call:
- pop latency: from the moment the product has the record (the CRM answered the create and the
  worker stored the link; the screen pop row's creation time) to the moment the adapter's long poll
  returned it to the driver. This is what ADAPTER.md promises: <= 1 s p95.
- end to end: from posting the call's events to the pop (ingest, processing, the CRM's contact
  lookup and ticket create, then the pop).
The baseline, in the same run, is the adapter's cheapest authenticated round trip on the same
server: `GET /api/v1/adapter/screen-pop?wait=0` with nothing to pop (token check, one query);
baseline rounds alternate with measured ones. The Zendesk display API must be called once per pop
(counted in the sandbox). The last line printed is one JSON object.
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    MAX_ERROR_SAMPLES,
    PYTHON,
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

DEFAULT_DB = os.environ.get("BENCH_SCREEN_POP_DB", "crmbridge_bench_screen_pop")
POP_TIMEOUT_S = 30.0
DISPLAY_ROUTE = "POST /api/v2/channels/voice/agents/{agent_id}/tickets/{ticket_id}/display.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=8, help="adapters, each with its own long poll (default 8)")
    parser.add_argument("--calls", type=int, default=200, help="calls in all, spread over the agents (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating baseline/measured rounds (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, 16 threads each (default 2)")
    parser.add_argument("--database", default=DEFAULT_DB, help=f"bench database, re-created (default {DEFAULT_DB})")
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="Redis (broker, pop wake-ups)")
    args = parser.parse_args()
    if args.agents < 1 or args.calls < args.agents or args.rounds < 1 or args.workers < 1:
        parser.error("need --calls >= --agents >= 1, --rounds >= 1, --workers >= 1")
    return args


def sandbox_fixture(agents: int) -> dict[str, Any]:
    users = [{"name": "Admin", "email": "admin@example.com", "role": "admin"}]
    users += [{"name": f"Agent {i}", "email": f"agent{i}@example.com", "role": "agent"} for i in range(agents)]
    return {"users": users}


def configure(agents: int, sandbox_url: str) -> dict[str, str]:
    """The Zendesk connection and one adapter token per agent, made through the product's own models."""
    import django

    django.setup()
    from agentstatus.models import Agent, AgentToken
    from integrations.services import connection_create

    connection_create(
        name="Sandbox Zendesk",
        kind="zendesk",
        base_url=sandbox_url,
        settings={"email": "admin@example.com", "api_token": "sandbox-token"},
        activate=True,
    )
    tokens = {}
    for i in range(agents):
        agent = Agent.objects.create(email=f"agent{i}@example.com", name=f"Agent {i}")
        _, tokens[agent.email] = AgentToken.objects.create_key(name="bench", agent=agent)
    return tokens


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    command = [str(PYTHON), "-m", "celery", "-A", "config", "worker", "--pool=threads", "--concurrency=4"]
    command += ["--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    command += ["-Q", env["CELERY_TASK_DEFAULT_QUEUE"]]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@dataclass
class Log:
    samples: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(message)


class Adapter(threading.Thread):
    """One agent's adapter: long polls in a loop and hands each pop, with when it arrived, to the driver."""

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Agent-Token {token}"
        self.pops: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.stopping = threading.Event()
        self.after: int | None = None

    def run(self) -> None:
        while not self.stopping.is_set():
            query = "wait=25" + (f"&after={self.after}" if self.after is not None else "")
            try:
                response = self.session.get(f"{self.base_url}/api/v1/adapter/screen-pop?{query}", timeout=40)
            except requests.RequestException:
                time.sleep(0.5)
                continue
            received = time.time()
            if response.status_code == 200:
                pop = response.json()
                self.after = pop["pop_id"]
                self.pops.put((received, pop))


def call_events(session_id: str, agent: str, phone: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    base = {"session_id": session_id, "occurred_at": now}
    created = {"channel": "voice", "session_type": "voice_inbound_ivr", "phone_number": phone, "language": "en"}
    return [
        {**base, "event_id": f"{session_id}-1", "type": "session.created", "data": created},
        {**base, "event_id": f"{session_id}-2", "type": "session.assigned", "data": {"agent": {"email": agent}}},
        {**base, "event_id": f"{session_id}-3", "type": "session.connected", "data": {"agent": {"email": agent}}},
    ]


def pop_created_at(conn: psycopg.Connection[Any], pop_id: int) -> float:
    row = conn.execute("SELECT created_at FROM records_screenpop WHERE id = %s", (pop_id,)).fetchone()
    assert row is not None
    created: datetime = row[0]
    return created.timestamp()


def measured_calls(
    base_url: str, key: str, adapters: dict[str, Adapter], db_url: str, calls: int, run_id: str, log: Log
) -> None:
    """Calls for each agent in turn, each waited for on that agent's adapter."""
    emails = list(adapters)
    with requests.Session() as session, psycopg.connect(db_url, autocommit=True) as conn:
        session.headers["Authorization"] = f"Api-Key {key}"
        for number in range(calls):
            email = emails[number % len(emails)]
            session_id = f"{run_id}-{number}"
            phone = f"+1415555{number % 10000:04d}"
            posted = time.time()
            response = session.post(
                f"{base_url}/api/v1/events",
                json={"events": call_events(session_id, email, phone)},
                timeout=REQUEST_TIMEOUT_S,
            )
            if response.status_code != 202:
                log.error(f"events: {response.status_code} {response.text[:200]}")
                continue
            try:
                received, pop = adapters[email].pops.get(timeout=POP_TIMEOUT_S)
            except queue.Empty:
                log.error(f"{session_id}: no pop on {email}'s adapter within {POP_TIMEOUT_S:.0f}s")
                continue
            if pop["session_id"] != session_id:
                log.error(f"{email}'s adapter got {pop['session_id']}, expected {session_id}")
                continue
            log.samples.append(received - pop_created_at(conn, pop["pop_id"]))
            log.end_to_end.append(received - posted)


def baseline_calls(base_url: str, token: str, count: int, log: Log) -> None:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Agent-Token {token}"
        for _ in range(count):
            started = time.time()
            response = session.get(f"{base_url}/api/v1/adapter/screen-pop?wait=0&after=999999999", timeout=10)
            if response.status_code != 204:
                log.error(f"baseline: {response.status_code}")
                continue
            log.samples.append(time.time() - started)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from integrations.sandbox import start_sandbox

    db_url = database_url(args.postgres_url, args.database)
    env = bench_env(db_url, args.redis_url)
    os.environ.update({key: env[key] for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL")})
    print(f"database {args.database}: re-creating and migrating")
    recreate_database(args.postgres_url, args.database)
    manage(env, "migrate", "--noinput")
    key = create_api_key(env)
    sandbox = start_sandbox("zendesk", fixture=sandbox_fixture(args.agents))
    web = worker = None
    adapters: dict[str, Adapter] = {}
    try:
        tokens = configure(args.agents, sandbox.base_url)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        # Threads, not sync workers: each adapter's long poll holds one for up to its `wait`.
        web = start_server(env, port, args.workers, tmp / "gunicorn.log", threads=16)
        worker = start_worker(env, tmp / "worker.log")
        wait_until_ready(web, base_url, key)
        print(
            f"gunicorn: {args.workers} workers x 16 threads on {base_url}; sandbox Zendesk on {sandbox.base_url}; "
            f"{args.agents} adapters, {args.calls} calls in {args.rounds} rounds"
        )
        adapters = {email: Adapter(base_url, token) for email, token in tokens.items()}
        for adapter in adapters.values():
            adapter.start()
        # Let every long poll reach the server before the first call.
        time.sleep(1.0)
        baseline, pops = Log(), Log()
        run_id = f"b{int(time.time())}"
        per_round = max(1, args.calls // args.rounds)
        first_token = next(iter(tokens.values()))
        for round_number in range(args.rounds):
            baseline_calls(base_url, first_token, per_round, baseline)
            measured_calls(base_url, key, adapters, db_url, per_round, f"{run_id}-{round_number}", pops)
        # The display calls run after the pop, in the worker: let the last ones finish.
        expected = len(pops.samples)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sandbox.stats()["requests"].get(DISPLAY_ROUTE, 0) < expected:
            time.sleep(0.2)
        displays = sandbox.stats()["requests"].get(DISPLAY_ROUTE, 0)
    finally:
        for adapter in adapters.values():
            adapter.stopping.set()
        if web is not None:
            stop_server(web)
        if worker is not None:
            stop_server(worker)
        sandbox.stop()
        delete_bench_queue(args.redis_url)

    base_p50, base_p95 = percentile_ms(baseline.samples, 0.5), percentile_ms(baseline.samples, 0.95)
    pop_p50, pop_p95 = percentile_ms(pops.samples, 0.5), percentile_ms(pops.samples, 0.95)
    e2e_p50, e2e_p95 = percentile_ms(pops.end_to_end, 0.5), percentile_ms(pops.end_to_end, 0.95)
    print(f"baseline  p50 {base_p50:7.1f} ms  p95 {base_p95:7.1f} ms  ({len(baseline.samples)} round trips)")
    print(f"pop       p50 {pop_p50:7.1f} ms  p95 {pop_p95:7.1f} ms  ({len(pops.samples)} pops; record -> adapter)")
    print(f"end2end   p50 {e2e_p50:7.1f} ms  p95 {e2e_p95:7.1f} ms  (events posted -> adapter)")
    print(f"display API calls: {displays} for {len(pops.samples)} pops")
    for message in baseline.error_samples + pops.error_samples:
        print(f"  error: {message}")
    wrong_displays = 0 if displays == len(pops.samples) else 1

    def ratio(value: float, base: float) -> float:
        return round(value / base, 2) if base else 0.0

    return {
        "bench": "screen_pop",
        "agents": args.agents,
        "calls": args.calls,
        "rounds": args.rounds,
        "workers": args.workers,
        "pops": len(pops.samples),
        "pop_p50_ms": round(pop_p50, 1),
        "pop_p95_ms": round(pop_p95, 1),
        "end_to_end_p50_ms": round(e2e_p50, 1),
        "end_to_end_p95_ms": round(e2e_p95, 1),
        "baseline_p50_ms": round(base_p50, 1),
        "baseline_p95_ms": round(base_p95, 1),
        "pop_p50_ratio_vs_baseline": ratio(pop_p50, base_p50),
        "pop_p95_ratio_vs_baseline": ratio(pop_p95, base_p95),
        "display_calls": displays,
        "within_1s_p95": pop_p95 <= 1000.0,
        "errors": baseline.errors + pops.errors + wrong_displays,
    }


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-screen-pop-") as tmp:
        try:
            report = run(args, Path(tmp))
        except (RuntimeError, OSError, psycopg.Error) as exc:
            print(f"bench/screen_pop.py failed: {exc}", file=sys.stderr)
            for name in ("gunicorn.log", "worker.log"):
                path = Path(tmp) / name
                if path.exists():
                    print(f"{name}:\n{path.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            return 2
        if report["errors"]:
            for name in ("gunicorn.log", "worker.log"):
                path = Path(tmp) / name
                if path.exists():
                    print(f"{name} (tail):\n{path.read_text(errors='replace')[-3000:]}")
    print(
        f"record-to-adapter vs baseline round trip: p50 {report['pop_p50_ratio_vs_baseline']}x, "
        f"p95 {report['pop_p95_ratio_vs_baseline']}x (pop p95 {report['pop_p95_ms']} ms)"
    )
    print(json.dumps(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
