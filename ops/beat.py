"""Exactly one beat: django-celery-beat's scheduler behind a PostgreSQL advisory lock.

Run `celery -A config beat` on as many hosts as you like (CELERY_BEAT_SCHEDULER points here): the
one holding the lock sends the periodic tasks, the others wait and take over within a few seconds
of its death. The lock belongs to a database session of its own, so it goes when the process or
its connection goes (a killed beat, a terminated backend, a network split that PostgreSQL notices)
and no clock is compared anywhere. The schedules stay django-celery-beat's: an admin edits them
under Periodic tasks, and whichever beat leads reads them.
"""

import logging
from typing import Any

import psycopg
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

# pg_advisory_lock's key space is shared by the whole database: a fixed, documented number.
LOCK_KEY = 0x63726D62_65617401  # "crmbeat\x01"
# How often a standby asks for the lock, and the longest the leader goes without checking it still
# holds it (so a leader whose session was ended stops within this long).
STANDBY_RETRY_SECONDS = 5.0
LEADER_CHECK_SECONDS = 5.0


class BeatLock:
    """A session-level advisory lock on a connection used for nothing else."""

    def __init__(self, key: int = LOCK_KEY) -> None:
        self.key = key
        self._connection: psycopg.Connection[Any] | None = None

    def _connect(self) -> psycopg.Connection[Any]:
        database = settings.DATABASES["default"]
        return psycopg.connect(
            dbname=database["NAME"],
            user=database.get("USER") or None,
            password=database.get("PASSWORD") or None,
            host=database.get("HOST") or None,
            port=database.get("PORT") or None,
            autocommit=True,
            connect_timeout=5,
            application_name="crmbridge-beat-lock",
            # A peer gone silently is noticed by the server within about 30 s, which frees the lock.
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )

    def held(self) -> bool:
        """True while this process holds the lock; takes it when free. Never raises."""
        try:
            if self._connection is not None:
                # Same session still alive means the lock is still ours.
                self._connection.execute("SELECT 1")
                return True
            connection = self._connect()
            row = connection.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()
            if row is not None and row[0]:
                self._connection = connection
                return True
            connection.close()
        except psycopg.Error:
            self.release()
        return False

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                # Closing the session releases it too; unlocking first frees it without waiting.
                connection.execute("SELECT pg_advisory_unlock(%s)", [self.key])
                connection.close()
            except psycopg.Error:
                pass


class SingleBeatScheduler(DatabaseScheduler):
    """DatabaseScheduler that sends nothing unless it holds the beat lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.lock = BeatLock()
        self.leading = False
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self.lock.held():
            if self.leading:
                logger.warning("beat.lock_lost", extra={"lock_key": self.lock.key})
                self.leading = False
            return STANDBY_RETRY_SECONDS
        if not self.leading:
            logger.info("beat.leading", extra={"lock_key": self.lock.key})
            self.leading = True
            # The last leader's runs are in the database; read them instead of this process's memory.
            self._initial_read = True
            self._heap = None
        delay = super().tick(*args, **kwargs)
        return min(delay, LEADER_CHECK_SECONDS)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.lock.release()
