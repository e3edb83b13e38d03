"""Set-up shared by the ticket-search benchmarks (import.py, search.py, purge.py).

Each benchmark drops and re-creates its own database (name from its --db option or an environment
variable), migrates it, and only then sets Django up against it in its own process: the demo's
database is never touched. Redis is not used.
"""

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
DEFAULT_POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")


def database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))


def recreate_database(server_url: str, name: str) -> str:
    """Drop and re-create the database; its URL."""
    with psycopg.connect(database_url(server_url, "postgres"), autocommit=True) as conn:
        # FORCE ends connections a previous, interrupted run may have left behind.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(server_url, name)


def existing_rows(server_url: str, name: str, table: str) -> int | None:
    """Rows in `table` of an existing database, or None when the database or table is not there."""
    try:
        with psycopg.connect(database_url(server_url, name), autocommit=True) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # our own table name
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


def setup_django(db_url: str) -> None:
    """Migrate the bench database, then configure Django in this process against it."""
    # The sandbox CRMs listen on loopback, which a CRM connection reaches only with CRM_ALLOW_LOOPBACK on.
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "CRM_ALLOW_LOOPBACK": "true",
    }
    result = subprocess.run(
        [str(PYTHON), "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{result.stdout}\n{result.stderr}")
    # Real environment variables win over .env (config/settings.py), so Django uses the bench database.
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


def bench_connection() -> Any:
    """The benchmarks' active Zendesk connection (never called: its tickets and sessions are generated)."""
    from integrations.services import connection_create

    return connection_create(
        name="bench",
        kind="zendesk",
        base_url="https://bench.zendesk.com",
        settings={"email": "bench@example.com", "api_token": "bench"},
        activate=True,
    )
