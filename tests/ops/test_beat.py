"""Exactly one beat: two `celery beat` processes on one database, one sends; killed, the other takes over."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from ops.beat import BeatLock
from tests.support import ROOT, TEST_BROKER_URL, wait_until

SENT = "Sending due task"


def _conninfo() -> str:
    database = settings.DATABASES["default"]
    return (
        f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    )


@pytest.mark.django_db(transaction=True)
def test_one_lock_holder_and_a_takeover_when_its_session_ends() -> None:
    first, second = BeatLock(key=4242), BeatLock(key=4242)
    try:
        assert first.held()
        assert not second.held()
        assert first.held()  # still the same session

        # What a database failover or an admin's pg_terminate_backend does to the leader.
        with psycopg.connect(_conninfo(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'crmbridge-beat-lock' AND pid <> pg_backend_pid() "
                "AND pid = (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted)"
            )
        assert not first.held()
        assert wait_until(second.held, timeout=10, message="the second lock to be taken")
        assert not first.held()
    finally:
        first.release()
        second.release()


def _start_beat(log: Path, queue: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": _conninfo(),
        "CELERY_BROKER_URL": TEST_BROKER_URL,
        "REDIS_URL": TEST_BROKER_URL,
        # Nothing consumes this queue; the test deletes it.
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_MAINTENANCE_QUEUE": queue,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "plain",
        "DATABASE_CONN_MAX_AGE": "0",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO", f"--schedule={log}.db"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.django_db(transaction=True)
def test_two_beats_send_each_task_once_and_the_standby_takes_over(tmp_path: Path) -> None:
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="beat test", task="records.sweep_sessions", interval=every_second)
    queue = f"crmbridge-beat-test-{os.getpid()}"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    processes: list[subprocess.Popen[Any]] = []
    try:
        processes.append(_start_beat(first_log, queue))
        wait_until(lambda: SENT in first_log.read_text(), timeout=30, message="the first beat to send")
        processes.append(_start_beat(second_log, queue))
        wait_until(lambda: "beat: Starting" in second_log.read_text(), timeout=30, message="the second beat to start")
        time.sleep(4)

        first_sent = first_log.read_text().count("beat test")
        assert first_sent >= 3
        assert SENT not in second_log.read_text()

        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=10)
        killed_at = time.monotonic()
        wait_until(lambda: SENT in second_log.read_text(), timeout=20, message="the standby to take over")
        assert time.monotonic() - killed_at < 15
        assert "beat.leading" in second_log.read_text()
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        redis.Redis.from_url(TEST_BROKER_URL).delete(queue)
