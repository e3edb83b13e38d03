"""Event ingest throughput: events/s accepted by POST /api/v1/events, against an authenticated ping.

Usage: .venv/bin/python bench/ingest.py [--seconds N] [--clients C] [--workers W]

The script is self-contained: it re-creates its own database (crmbridge_bench), migrates it, makes
an API key, starts gunicorn on a free loopback port and loads it from a pool of keep-alive
`requests.Session`s. Three phases run for the same fixed duration after a short warm-up:

  ping      GET /api/v1/ping, the same Api-Key auth and DRF stack with no work: the baseline
  single    POST /api/v1/events with one event per request
  batch100  POST /api/v1/events with {"events": [...100 events...]}

The machine is shared and noisy, so the figures that matter are the ratios events/s ÷ ping
requests/s from the same run. Celery messages go to their own queue on Redis DB 13 (nothing
consumes it), which is deleted at the end; the demo database and queue are never touched.
The last line printed is one JSON object.
"""

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
GUNICORN = VENV_BIN / "gunicorn"

BENCH_DB = "crmbridge_bench"
BENCH_QUEUE = "crmbridge-bench"
BATCH_SIZE = 100
# Bounds so a hung server or client cannot keep the run going: every wait below has a limit.
REQUEST_TIMEOUT_S = 30.0
SERVER_READY_TIMEOUT_S = 30.0
MANAGE_TIMEOUT_S = 300.0
SERVER_STOP_TIMEOUT_S = 15.0
# Sessions each client keeps open at once, so consecutive events hit many different sessions.
OPEN_SESSIONS_PER_CLIENT = 40
MAX_ERROR_SAMPLES = 5


# ---------------------------------------------------------------------------------------------
# Set-up: database, environment, API key, server
# ---------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per phase (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds before each phase (default 3)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument(
        "--postgres-url",
        default="postgres://postgres@127.0.0.1:5432",
        help="PostgreSQL server (no database name); the bench database is created there",
    )
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/13", help="broker for the bench queue (default DB 13)"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.warmup < 0 or args.clients < 1 or args.workers < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, --clients and --workers >= 1")
    return args


def database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def recreate_database(server_url: str, name: str) -> None:
    """Drop and re-create the bench database so every run starts from the same empty state."""
    with psycopg.connect(database_url(server_url, "postgres"), autocommit=True) as conn:
        # FORCE ends connections a previous, interrupted run may have left behind.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def bench_env(db_url: str, redis_url: str) -> dict[str, str]:
    """The server's environment: real variables win over .env, so these keep it off the demo's DB and queue."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "CELERY_TASK_DEFAULT_QUEUE": BENCH_QUEUE,
            # DEBUG records every SQL query per request; production does not, so neither does the bench.
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            # The sandbox CRM listens on loopback, which a connection reaches only with this on.
            "CRM_ALLOW_LOOPBACK": "true",
        }
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=MANAGE_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def create_api_key(env: dict[str, str]) -> str:
    # The command prints the key once (only its hash is stored), as the last non-empty line.
    lines = [line.strip() for line in manage(env, "create_api_key", "bench").splitlines() if line.strip()]
    if not lines:
        raise RuntimeError("manage.py create_api_key printed no key")
    return lines[-1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], port: int, workers: int, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        str(GUNICORN),
        "config.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
    ]
    with log_path.open("wb") as log:
        # The child keeps its own copy of the file descriptor, so closing ours here is fine.
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_until_ready(proc: subprocess.Popen[bytes], base_url: str, key: str) -> None:
    deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
    headers = {"Authorization": f"Api-Key {key}"}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {proc.returncode} before answering")
        try:
            if requests.get(f"{base_url}/api/v1/ping", headers=headers, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass  # Not listening yet.
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /api/v1/ping within {SERVER_READY_TIMEOUT_S:.0f}s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # SIGTERM: gunicorn's graceful shutdown of its workers.
    try:
        proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=SERVER_STOP_TIMEOUT_S)


def delete_bench_queue(redis_url: str) -> int:
    """Delete the bench queue (and kombu's bindings) so unconsumed messages do not pile up in Redis.

    Returns how many messages were waiting: a check that ingest really enqueued its processing.
    """
    client = redis.Redis.from_url(redis_url)
    try:
        waiting = int(client.llen(BENCH_QUEUE))
        # Priority sub-queues are named "<queue>\x06\x16<n>", hence the prefix scan.
        bindings = [f"_kombu.binding.{BENCH_QUEUE}", f"_kombu.binding_permanent.{BENCH_QUEUE}"]
        keys = [*client.scan_iter(match=f"{BENCH_QUEUE}*"), *bindings]
        client.delete(*keys)
        return waiting
    finally:
        client.close()


def stored_event_count(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM records_event").fetchone()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------------------------------------
# Realistic events (shared/EVENTS.md)
# ---------------------------------------------------------------------------------------------

AGENTS = [f"{name}@example.com" for name in ("ana", "ben", "chloe", "dev", "eva", "farid", "gina", "hugo")]
QUEUES = [
    {"id": "q-billing", "name": "Billing", "path": ["Support", "Billing"]},
    {"id": "q-tech", "name": "Technical", "path": ["Support", "Technical"]},
    {"id": "q-sales", "name": "New orders", "path": ["Sales", "New orders"]},
    {"id": "q-returns", "name": "Returns", "path": ["Support", "Orders", "Returns"]},
]
EPOCH = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass
class SessionStory:
    """One session's events, in the order the platform would send them."""

    session_id: str
    events: list[tuple[str, dict[str, Any]]]
    started: datetime
    step: int = 0


def _phone(rng: random.Random) -> str:
    return f"+1415555{rng.randrange(10_000):04d}"


def _voice_inbound(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    queue, agent, phone = rng.choice(QUEUES), rng.choice(AGENTS), _phone(rng)
    created = {
        "channel": "voice",
        "session_type": rng.choice(["voice_inbound_ivr", "voice_inbound_app", "voice_inbound_web"]),
        "language": "en",
        "queue": queue,
        "menu_path": " > ".join(queue["path"]),
        "phone_number": phone,
        "dialed_number": "+18005550199",
        "customer": {"phone": phone, "name": "Pat Customer", "authenticated": rng.random() < 0.5},
        "custom_data": {"order_id": str(rng.randrange(10**6))},
    }
    wait = rng.randrange(5, 120)
    return [
        ("session.created", created),
        ("session.queued", {"queue": queue}),
        ("session.assigned", {"agent": {"email": agent}}),
        ("session.connected", {"agent": {"email": agent}}),
        ("session.ended", {"call_duration": rng.randrange(30, 900), "hold_time": 0, "wait_time": wait}),
        ("recording.ready", {"url": f"https://recordings.example.com/{rng.randrange(10**9)}.mp3"}),
        ("csat.submitted", {"rating": rng.randint(1, 5), "comment": "Quick and helpful."}),
    ]


def _chat_inbound(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    queue, agent = rng.choice(QUEUES), rng.choice(AGENTS)
    created = {
        "channel": "chat",
        "session_type": rng.choice(["chat_inbound_web", "chat_inbound_app", "chat_inbound_sms"]),
        "language": "en",
        "queue": queue,
        "customer": {"email": f"user{rng.randrange(10**6)}@example.org", "name": "Sam Customer"},
    }
    return [
        ("session.created", created),
        ("session.assigned", {"agent": {"email": agent}}),
        ("message.received", {"sender": "consumer", "text": "Hi, my last invoice looks wrong."}),
        ("message.received", {"sender": "agent", "text": "Sorry about that, let me check it for you."}),
        ("session.ended", {"wait_time": rng.randrange(1, 60), "ended_by": "agent"}),
        ("transcript.ready", {"url": "https://transcripts.example.com/t.txt", "text": "Hi, my last invoice..."}),
    ]


def _voice_outbound(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    agent, phone = rng.choice(AGENTS), _phone(rng)
    return [
        ("session.created", {"channel": "voice", "session_type": "voice_outbound", "phone_number": phone}),
        ("outbound.started", {"agent": {"email": agent}, "phone_number": phone, "choice": "existing"}),
        ("session.connected", {"agent": {"email": agent}}),
        ("session.ended", {"call_duration": rng.randrange(30, 600), "ended_by": "consumer"}),
    ]


STORY_KINDS: list[Callable[[random.Random], list[tuple[str, dict[str, Any]]]]] = [
    _voice_inbound,
    _voice_inbound,
    _chat_inbound,
    _voice_outbound,
]


class EventSource:
    """Endless unique events for one client thread, interleaved over many open sessions.

    Ids carry the run, phase and client, so they are unique without any shared counter.
    """

    def __init__(self, prefix: str, seed: str) -> None:
        self._prefix = prefix
        self._rng = random.Random(seed)
        self._sessions_made = 0
        self._events_made = 0
        self._open = [self._new_story() for _ in range(OPEN_SESSIONS_PER_CLIENT)]

    def _new_story(self) -> SessionStory:
        self._sessions_made += 1
        started = EPOCH + timedelta(seconds=self._sessions_made * 7)
        kind = self._rng.choice(STORY_KINDS)
        return SessionStory(f"{self._prefix}-s{self._sessions_made}", kind(self._rng), started)

    def next_event(self) -> dict[str, Any]:
        index = self._rng.randrange(len(self._open))
        story = self._open[index]
        event_type, data = story.events[story.step]
        story.step += 1
        if story.step == len(story.events):
            self._open[index] = self._new_story()
        self._events_made += 1
        occurred = story.started + timedelta(seconds=20 * story.step)
        return {
            "event_id": f"{self._prefix}-e{self._events_made}",
            "session_id": story.session_id,
            "type": event_type,
            "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
            "data": data,
        }

    def batch(self, size: int) -> list[dict[str, Any]]:
        return [self.next_event() for _ in range(size)]


# ---------------------------------------------------------------------------------------------
# Load generation and measurement
# ---------------------------------------------------------------------------------------------


@dataclass
class Sample:
    finished: float  # time.monotonic() when the answer arrived
    latency_s: float
    events: int


@dataclass
class ClientLog:
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(message)


@dataclass
class PhaseResult:
    name: str
    requests_per_s: float
    events_per_s: float
    p50_ms: float
    p95_ms: float
    requests: int
    # Events accepted over the whole phase, warm-up included: what the database must hold afterwards.
    accepted_total: int
    errors: int
    error_samples: list[str]


# One request of a phase: returns how many events the server accepted, or raises PhaseError.
RequestFn = Callable[[requests.Session], int]


class PhaseError(Exception):
    pass


def ping_request(base_url: str) -> Callable[[int], RequestFn]:
    def for_client(_client: int) -> RequestFn:
        def call(session: requests.Session) -> int:
            response = session.get(f"{base_url}/api/v1/ping", timeout=REQUEST_TIMEOUT_S)
            if response.status_code != 200 or response.json().get("ok") is not True:
                raise PhaseError(f"ping: {response.status_code} {response.text[:200]}")
            return 0

        return call

    return for_client


def events_request(base_url: str, run_id: str, phase: str, size: int) -> Callable[[int], RequestFn]:
    """Posts `size` events per request: a bare event object when size is 1, else {"events": [...]}."""

    def for_client(client: int) -> RequestFn:
        source = EventSource(f"{run_id}-{phase}-c{client}", seed=f"{phase}-{client}")

        def call(session: requests.Session) -> int:
            body: Any = source.next_event() if size == 1 else {"events": source.batch(size)}
            response = session.post(
                f"{base_url}/api/v1/events",
                data=json.dumps(body, separators=(",", ":")),
                headers={"Content-Type": "application/json"},
                timeout=REQUEST_TIMEOUT_S,
            )
            if response.status_code != 202:
                raise PhaseError(f"{phase}: {response.status_code} {response.text[:200]}")
            answer = response.json()
            if answer.get("accepted") != size or answer.get("duplicates") != 0:
                raise PhaseError(f"{phase}: sent {size}, answer {answer}")
            return size

        return call

    return for_client


def client_loop(key: str, call: RequestFn, stop_at: float, log: ClientLog) -> None:
    """Send requests back to back on one keep-alive connection until stop_at."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Api-Key {key}"
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                events = call(session)
            except (requests.RequestException, ValueError, PhaseError) as exc:
                log.error(str(exc))
                continue
            finished = time.monotonic()
            log.samples.append(Sample(finished, finished - started, events))


def percentile_ms(latencies: list[float], fraction: float) -> float:
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index] * 1000


def run_phase(
    name: str, key: str, make_call: Callable[[int], RequestFn], clients: int, warmup: float, seconds: float
) -> PhaseResult:
    """Run `clients` threads for warm-up + seconds; only answers inside the measured window count.

    Errors count over the whole phase, warm-up included: any failed request is a failure.
    """
    logs = [ClientLog() for _ in range(clients)]
    calls = [make_call(client) for client in range(clients)]
    window_start = time.monotonic() + warmup
    window_end = window_start + seconds
    threads = [
        threading.Thread(target=client_loop, args=(key, calls[i], window_end, logs[i]), daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        # A request in flight at window_end finishes within its own timeout.
        thread.join(timeout=warmup + seconds + REQUEST_TIMEOUT_S + 5)
    measured = [s for log in logs for s in log.samples if window_start <= s.finished <= window_end]
    latencies = [s.latency_s for s in measured]
    return PhaseResult(
        name=name,
        requests_per_s=len(measured) / seconds,
        events_per_s=sum(s.events for s in measured) / seconds,
        p50_ms=percentile_ms(latencies, 0.50),
        p95_ms=percentile_ms(latencies, 0.95),
        requests=len(measured),
        accepted_total=sum(s.events for log in logs for s in log.samples),
        errors=sum(log.errors for log in logs),
        error_samples=[message for log in logs for message in log.error_samples][:MAX_ERROR_SAMPLES],
    )


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def describe(result: PhaseResult) -> str:
    # Ping carries no events: a dash rather than a misleading "0.0 events/s".
    events = f"{result.events_per_s:9.1f}" if result.accepted_total else f"{'-':>9}"
    return (
        f"{result.name:<9} {events} events/s {result.requests_per_s:9.1f} req/s  "
        f"p50 {result.p50_ms:7.1f} ms  p95 {result.p95_ms:7.1f} ms  ({result.requests} requests, "
        f"{result.errors} errors)"
    )


def summary(ping: PhaseResult, single: PhaseResult, batch: PhaseResult, args: argparse.Namespace) -> dict[str, Any]:
    baseline = ping.requests_per_s

    def ratio(events_per_s: float) -> float:
        return round(events_per_s / baseline, 3) if baseline else 0.0

    phases = (ping, single, batch)
    return {
        "bench": "ingest",
        "baseline_ping_rps": round(baseline, 1),
        "single_events_per_s": round(single.events_per_s, 1),
        "single_ratio_vs_ping": ratio(single.events_per_s),
        "batch100_events_per_s": round(batch.events_per_s, 1),
        "batch100_requests_per_s": round(batch.requests_per_s, 2),
        "batch100_ratio_vs_ping": ratio(batch.events_per_s),
        "p50_ms": {p.name: round(p.p50_ms, 1) for p in phases},
        "p95_ms": {p.name: round(p.p95_ms, 1) for p in phases},
        "clients": args.clients,
        "workers": args.workers,
        "seconds": int(args.seconds) if args.seconds.is_integer() else args.seconds,
        "errors": sum(p.errors for p in phases),
    }


def run(args: argparse.Namespace, log_path: Path) -> tuple[dict[str, Any], int]:
    db_url = database_url(args.postgres_url, BENCH_DB)
    env = bench_env(db_url, args.redis_url)
    print(f"database {BENCH_DB}: re-creating and migrating")
    recreate_database(args.postgres_url, BENCH_DB)
    manage(env, "migrate", "--noinput")
    key = create_api_key(env)
    delete_bench_queue(args.redis_url)  # Leftovers of an interrupted run would skew nothing, but waste memory.

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    print(
        f"gunicorn: {args.workers} sync workers on {base_url}; {args.clients} clients, "
        f"{args.warmup:g}s warm-up + {args.seconds:g}s per phase"
    )
    proc = start_server(env, port, args.workers, log_path)
    try:
        wait_until_ready(proc, base_url, key)
        run_id = f"b{int(time.time())}"
        phases = [
            ("ping", ping_request(base_url)),
            ("single", events_request(base_url, run_id, "single", 1)),
            ("batch100", events_request(base_url, run_id, "batch100", BATCH_SIZE)),
        ]
        results = []
        for name, make_call in phases:
            result = run_phase(name, key, make_call, args.clients, args.warmup, args.seconds)
            print(describe(result))
            for message in result.error_samples:
                print(f"  error: {message}")
            results.append(result)
    finally:
        # Also on failure or Ctrl-C: no server left running, no unconsumed messages left in Redis.
        stop_server(proc)
        waiting = delete_bench_queue(args.redis_url)
    ping, single, batch = results
    report = summary(ping, single, batch, args)
    stored, accepted = stored_event_count(db_url), sum(r.accepted_total for r in results)
    print(
        f"gunicorn stopped; {BENCH_DB} holds {stored} events ({accepted} acknowledged); "
        f"deleted queue {BENCH_QUEUE!r} holding {waiting} processing messages"
    )
    if stored != accepted:
        # A 202 must mean stored: a mismatch is a failure even if every answer looked right.
        print(f"  error: {accepted} events acknowledged but {stored} stored")
        report["errors"] += 1
    return report, waiting


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        log_path = Path(tmp) / "gunicorn.log"
        try:
            report, waiting = run(args, log_path)
        except (RuntimeError, OSError, subprocess.SubprocessError, psycopg.Error, redis.RedisError) as exc:
            print(f"bench/ingest.py failed: {exc}", file=sys.stderr)
            if log_path.exists():
                print(f"gunicorn log:\n{log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
            return 2
        if report["errors"] and log_path.exists():
            print(f"gunicorn log (tail):\n{log_path.read_text(errors='replace')[-4000:]}")
    base = report["baseline_ping_rps"]
    print(
        f"ratios vs ping ({base} req/s): single {report['single_ratio_vs_ping']}, "
        f"batch100 {report['batch100_ratio_vs_ping']}"
    )
    if waiting == 0:
        print("note: no processing message reached the bench queue (is Redis DB 13 reachable?)")
    print(json.dumps(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
