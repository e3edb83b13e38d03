"""The stack a full-product benchmark runs against: its own database, broker, gunicorn, workers, beat.

`bench_stack(...)` re-creates and migrates the bench's database, starts its broker (a redis-server
of its own, without persistence, or a vhost of its own on the local RabbitMQ), a sandbox Zendesk in
this process (the connection made and active), gunicorn, W Celery workers (prefork, 2 children
each, on the live, imports and maintenance queues) and one beat (the 5 s sweeps); it yields them
once the event API answers, and stops everything on the way out. bench/chaos.py, bench/crm_calls.py
and bench/faults.py run on it. Loopback only.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

from bench.ingest import (
    PYTHON,
    ROOT,
    bench_env,
    create_api_key,
    database_url,
    free_port,
    manage,
    recreate_database,
    start_server,
)

LIVE_QUEUE = "crmbridge-chaos"
MAINTENANCE_QUEUE = "crmbridge-chaos-maintenance"
IMPORTS_QUEUE = "imports"
SANDBOX_FIXTURE = ROOT / "integrations" / "sandbox" / "fixtures" / "zendesk_demo.json"


# -- The broker ----------------------------------------------------------------------------------


class Broker:
    url: str

    def start(self) -> None: ...
    def kill(self) -> None: ...
    def restart(self) -> None: ...
    def close(self) -> None: ...


class RedisBroker(Broker):
    """A redis-server of the bench's own on a free loopback port, without persistence."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with (self.directory / "redis.log").open("ab") as out:
            self.process = subprocess.Popen(command, cwd=self.directory, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not answer within 30 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)

    def restart(self) -> None:
        self.start()

    def close(self) -> None:
        self.kill()


class RabbitBroker(Broker):
    """A vhost of the bench's own on the local RabbitMQ; "killed" = the server closes all its connections."""

    def __init__(self, server_url: str) -> None:
        self.vhost = f"crmbridge-chaos-{os.getpid()}"
        self.url = f"{server_url.rstrip('/')}/{self.vhost}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._ctl("add_vhost", self.vhost)
        self._ctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")

    def kill(self) -> None:
        self._ctl("close_all_connections", "-p", self.vhost, "bench/chaos.py: broker restart")

    def restart(self) -> None:
        # The connections were closed; the broker (and its durable queues) never went away.
        pass

    def close(self) -> None:
        subprocess.run(["rabbitmqctl", "delete_vhost", self.vhost], check=False, capture_output=True, timeout=60)


# -- Processes -----------------------------------------------------------------------------------


def celery(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(PYTHON), "-m", "celery", "-A", "config", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start_worker(env: dict[str, str], log: Path, *, number: int = 1) -> subprocess.Popen[bytes]:
    queues = f"{LIVE_QUEUE},{IMPORTS_QUEUE},{MAINTENANCE_QUEUE}"
    # A node name of its own: workers of one host under one name ("celery@host") are one node to
    # the broker's control and mingle messages (Celery warns DuplicateNodenameWarning).
    node = f"bench{number}@%h"
    # The product's own pool (CELERY_WORKER_POOL, ops.pool), as a production worker runs it.
    return celery(env, log, "worker", "--concurrency=2", "--loglevel=INFO", "-Q", queues, "-n", node)


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


@dataclass
class Fleet:
    """The workers: killed on purpose, restarted; any other exit is counted (it must not happen)."""

    env: dict[str, str]
    directory: Path
    size: int
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: int = 0
    unexpected_exits: int = 0
    started: int = 0
    beat: subprocess.Popen[bytes] | None = None
    logs: dict[int, Path] = field(default_factory=dict)

    def start(self) -> None:
        self.workers = [self._spawn() for _ in range(self.size)]
        self.beat = self._spawn_beat()

    def _spawn_beat(self) -> subprocess.Popen[bytes]:
        schedule = self.directory / "beat.db"
        return celery(self.env, self.directory / "beat.log", "beat", "--loglevel=INFO", f"--schedule={schedule}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.started += 1
        worker = start_worker(self.env, self.directory / f"worker-{self.started}.log", number=self.started)
        self.logs[worker.pid] = self.directory / f"worker-{self.started}.log"
        return worker

    def check(self) -> None:
        for i, worker in enumerate(self.workers):
            if worker.poll() is not None:
                self.unexpected_exits += 1
                print(f"  worker pid {worker.pid} exited by itself ({worker.returncode}); restarted; its log ends:")
                print(self.logs[worker.pid].read_text(errors="replace")[-2500:])
                self.workers[i] = self._spawn()
        if self.beat is not None and self.beat.poll() is not None:
            self.unexpected_exits += 1
            print(f"  beat exited by itself ({self.beat.returncode}); restarted")
            self.beat = self._spawn_beat()

    def kill_one(self, rng: random.Random) -> str:
        i = rng.randrange(len(self.workers))
        worker = self.workers[i]
        children = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True, check=False)
        pids = [int(pid) for pid in children.stdout.split()]
        self.kills += 1
        if pids and rng.random() < 0.5:
            os.kill(rng.choice(pids), signal.SIGKILL)
            return "pool child"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=15)
        self.workers[i] = self._spawn()
        return "worker"

    def stop(self) -> None:
        for worker in self.workers:
            stop(worker)
        stop(self.beat)


def wait_until_ready(proc: subprocess.Popen[bytes], base_url: str, key: str, timeout: float = 180.0) -> None:
    """bench.ingest's wait, longer: on a loaded machine gunicorn and the workers start slowly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {proc.returncode} before answering")
        try:
            ping = requests.get(f"{base_url}/api/v1/ping", headers={"Authorization": f"Api-Key {key}"}, timeout=5)
            if ping.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"gunicorn did not answer /api/v1/ping within {timeout:.0f}s")


# -- The whole stack -----------------------------------------------------------------------------


@dataclass
class Stack:
    """What a benchmark drives: the event API (`base_url`, `key`), the sandbox, the workers, the broker."""

    env: dict[str, str]
    db_url: str
    base_url: str
    key: str
    sandbox: Any
    fleet: Fleet
    broker: Broker


@contextmanager
def bench_stack(
    *,
    directory: Path,
    database: str,
    postgres_url: str,
    limiter_redis_url: str,
    workers: int,
    broker: str = "redis",
    rabbitmq_url: str = "",
    env: Mapping[str, str] | None = None,
    seed: int | None = None,
) -> Iterator[Stack]:
    """The product started on a fresh database with the sandbox Zendesk as its active connection.

    `env` adds to (or overrides) the processes' environment (backoff settings, say); `seed` seeds
    the sandbox's fault draws. Logs go to `directory`.
    """
    from integrations.sandbox import start_sandbox

    own_broker: Broker = RedisBroker(directory) if broker == "redis" else RabbitBroker(rabbitmq_url)
    own_broker.start()
    web = sandbox = None
    fleet: Fleet | None = None
    try:
        db_url = database_url(postgres_url, database)
        process_env = bench_env(db_url, limiter_redis_url)
        process_env.update(
            {
                "CELERY_BROKER_URL": own_broker.url,
                "CELERY_TASK_DEFAULT_QUEUE": LIVE_QUEUE,
                "CELERY_MAINTENANCE_QUEUE": MAINTENANCE_QUEUE,
                "LOG_FORMAT": "plain",
                "LOG_LEVEL": "INFO",
                **(env or {}),
            }
        )
        # This process sets Django up too (the connection below, in-process reads of the sandbox).
        for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CRM_ALLOW_LOOPBACK"):
            os.environ[name] = process_env[name]
        os.environ["CELERY_TASK_DEFAULT_QUEUE"] = LIVE_QUEUE
        print(f"database {database}: re-creating and migrating; broker {broker} at {own_broker.url}")
        recreate_database(postgres_url, database)
        manage(process_env, "migrate", "--noinput")
        key = create_api_key(process_env)
        sandbox = start_sandbox("zendesk", fixture=SANDBOX_FIXTURE)
        if seed is not None:
            sandbox.configure(seed=seed)
        import django

        django.setup()
        from integrations.services import connection_create

        connection_create(
            name="Sandbox Zendesk",
            kind="zendesk",
            base_url=sandbox.base_url,
            settings={"email": "admin@example.com", "api_token": "sandbox-token"},
            activate=True,
        )
        fleet = Fleet(process_env, directory, workers)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        web = start_server(process_env, port, 2, directory / "gunicorn.log")
        fleet.start()
        wait_until_ready(web, base_url, key)
        yield Stack(process_env, db_url, base_url, key, sandbox, fleet, own_broker)
    finally:
        # This process's own database connections go first: the next run drops the database.
        from django.db import connections

        connections.close_all()
        stop(web)
        if fleet is not None:
            fleet.stop()
        if sandbox is not None:
            sandbox.stop()
        own_broker.close()


# -- A benchmark's command line and its ending ---------------------------------------------------


def add_stack_arguments(parser: argparse.ArgumentParser, *, database: str, limiter_redis_url: str) -> None:
    """The options of `bench_stack` every full-product benchmark takes (`stack_options` reads them)."""
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes (default 2)")
    parser.add_argument("--database", default=database, help=f"bench database, re-created (default {database})")
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server")
    parser.add_argument("--limiter-redis-url", default=limiter_redis_url, help="the rate limiter's Redis")


def stack_options(args: argparse.Namespace) -> dict[str, Any]:
    """`bench_stack`'s keyword arguments from the options of `add_stack_arguments`."""
    return {
        "database": args.database,
        "postgres_url": args.postgres_url,
        "limiter_redis_url": args.limiter_redis_url,
        "workers": args.workers,
    }


def bench_main(
    script: str,
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, Path], dict[str, Any]],
    conclude: Callable[[argparse.Namespace, dict[str, Any]], tuple[bool, list[str]]],
    *,
    redis_server: bool = True,
) -> int:
    """Run a benchmark in a temporary directory of its own and end it: the exit code.

    `conclude` says whether the report is a pass and the lines to print before its JSON line; a run
    that could not start or failed exits 2 (said on stderr, its logs kept).
    """
    if redis_server and shutil.which("redis-server") is None:
        print(f"bench/{script} needs redis-server on PATH (a broker of its own)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{Path(script).stem}-"))
    try:
        report = run(args, tmp)
    except (RuntimeError, OSError, psycopg.Error, subprocess.SubprocessError) as exc:
        print(f"bench/{script} failed: {exc}; logs in {tmp}", file=sys.stderr)
        return 2
    ok, lines = conclude(args, report)
    return finish(report, tmp=tmp, ok=ok, lines=lines)


def finish(report: Mapping[str, Any], *, tmp: Path, ok: bool, lines: Sequence[str] = ()) -> int:
    """Print the summary lines and the report as the last line (JSON); the logs are kept only when not ok."""
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"logs kept in {tmp}")
    for line in lines:
        print(line)
    print(json.dumps(report))
    return 0 if ok else 1
