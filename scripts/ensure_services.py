"""Make sure PostgreSQL and Redis answer, and that the product's database exists (and, with --browser, Chromium).

Uses the servers configured in the environment or .env (DATABASE_URL, REDIS_URL); when a local one
on the standard port does not answer, starts it, installing it from Debian's packages first where
it is missing and this user may. Says clearly what it could not do.
"""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import environ
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


def say(message: str) -> None:
    print(f"[services] {message}", flush=True)  # noqa: T201


def run(*command: str) -> bool:
    return subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0  # noqa: S603


def wait_for(check: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return False


def apt_install(*packages: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    say(f"installing {' '.join(packages)} from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)  # noqa: S607
    return subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=False, env=env).returncode == 0  # noqa: S603,S607


# -- PostgreSQL ----------------------------------------------------------------------------------


def postgres_answers(admin_dsn: str) -> bool:
    try:
        with psycopg.connect(admin_dsn, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def start_postgres() -> bool:
    if not shutil.which("pg_ctlcluster") and not apt_install("postgresql"):
        return False
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        return False
    version = versions[-1]
    say(f"starting PostgreSQL {version}")
    return run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start") or run(
        "pg_ctlcluster", version, "main", "start"
    )


def ensure_postgres(database_url: str) -> None:
    url = urlparse(database_url)
    name = url.path.lstrip("/")
    admin_dsn = database_url.replace(f"/{name}", "/postgres", 1) if name else database_url
    if not postgres_answers(admin_dsn):
        if url.hostname not in LOCAL_HOSTS:
            sys.exit(f"[services] PostgreSQL at {url.hostname}:{url.port or 5432} does not answer; check DATABASE_URL.")
        if not (start_postgres() and wait_for(lambda: postgres_answers(admin_dsn))):
            sys.exit(
                "[services] PostgreSQL does not answer on 127.0.0.1:5432 and could not be started here. "
                "Install PostgreSQL 15+ (apt-get install postgresql) or set DATABASE_URL to a server you have."
            )
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            say(f"creating database {name}")
            connection.execute(f'CREATE DATABASE "{name}"')
    say(f"PostgreSQL ready ({url.hostname}:{url.port or 5432}/{name})")


# -- Redis ---------------------------------------------------------------------------------------


def redis_answers(redis_url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def start_redis(port: int) -> bool:
    if not shutil.which("redis-server") and not apt_install("redis-server"):
        return False
    say("starting Redis")
    data_dir = ROOT / "var" / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    return run(
        "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
        "--save", "", "--appendonly", "no", "--dir", str(data_dir), "--logfile", str(data_dir / "redis.log"),
    )  # fmt: skip


def ensure_redis(redis_url: str) -> None:
    url = urlparse(redis_url)
    if not redis_answers(redis_url):
        if url.hostname not in LOCAL_HOSTS:
            sys.exit(f"[services] Redis at {url.hostname}:{url.port or 6379} does not answer; check REDIS_URL.")
        if not (start_redis(url.port or 6379) and wait_for(lambda: redis_answers(redis_url))):
            sys.exit(
                "[services] Redis does not answer on 127.0.0.1:6379 and could not be started here. "
                "Install Redis 7 (apt-get install redis-server) or set REDIS_URL to a server you have."
            )
    say(f"Redis ready ({url.hostname}:{url.port or 6379})")


# -- Chromium, for the browser tests --------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


def ensure_chromium() -> None:
    """Debian's chromium, which Playwright drives (never `playwright install`: no browser download here)."""
    if not os.path.exists(CHROMIUM) and not apt_install("chromium"):
        sys.exit(
            f"[services] {CHROMIUM} is missing and could not be installed here. "
            "Install Debian's chromium (apt-get install chromium); the browser tests drive it."
        )
    say(f"Chromium ready ({CHROMIUM})")


def main() -> None:
    env = environ.Env()
    environ.Env.read_env(ROOT / ".env", overwrite=False)
    ensure_postgres(env("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/crmbridge"))
    ensure_redis(env("REDIS_URL", default="redis://127.0.0.1:6379/0"))
    if "--browser" in sys.argv[1:]:
        ensure_chromium()


if __name__ == "__main__":
    main()
