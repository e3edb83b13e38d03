"""Leases, and the one clock they are measured on: the database's, shared by every host.

A lease says "this worker is on it, until then". It is taken, renewed and released in one UPDATE
each, compared with the database's clock (`Now()`), never a host's: two hosts whose clocks differ
by a minute still agree on whether a lease has expired. Each claim carries a fresh owner token,
and renew and release touch only the lease that still holds it, so a worker that lost its lease
(it stalled past the expiry and another took over) cannot extend or drop the new owner's.

The session lease is short (`SESSION_LEASE_SECONDS`): a worker killed mid-session holds it up
for seconds, not minutes. While an action runs, a heartbeat thread renews it every few seconds,
so one slow action (several CRM calls, each up to CRM_HTTP_TIMEOUT_SECONDS) never outlives it.
"""

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection as db_connection
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import Now

from records.models import Session

logger = logging.getLogger(__name__)

# Long enough for the heartbeat to renew it a few times over a stalled database connection; short
# enough that a killed worker's session is taken over within seconds (plus the sweep's interval).
SESSION_LEASE_SECONDS = 20
# How often the heartbeat renews a held session lease while its work runs.
HEARTBEAT_SECONDS = 5
# A task that meets another worker's live lease comes back this long after it expires.
LEASE_TAKEOVER_MARGIN_SECONDS = 1.0


def db_now() -> datetime:
    """The database's clock: the one every host compares times with (never `timezone.now()`)."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        row = cursor.fetchone()
    moment: datetime = row[0]
    return moment


def db_now_plus(seconds: float) -> ExpressionWrapper:
    """`Now() + seconds`, evaluated by the database in the UPDATE that writes it."""
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


@dataclass(frozen=True)
class SessionLease:
    session_id: int
    owner: uuid.UUID


def session_lease_claim(session_id: int) -> SessionLease | None:
    """Take the session's actions lease if nobody holds it or its holder's has expired."""
    owner = uuid.uuid4()
    taken = (
        Session.objects.filter(pk=session_id)
        .filter(Q(actions_lease_until__isnull=True) | Q(actions_lease_until__lt=Now()))
        .update(actions_lease_until=db_now_plus(SESSION_LEASE_SECONDS), actions_lease_owner=owner)
    )
    return SessionLease(session_id, owner) if taken else None


def session_lease_renew(lease: SessionLease) -> bool:
    """Extend our lease; False when it is no longer ours (it expired and another worker took it)."""
    return bool(
        Session.objects.filter(pk=lease.session_id, actions_lease_owner=lease.owner).update(
            actions_lease_until=db_now_plus(SESSION_LEASE_SECONDS)
        )
    )


def session_lease_release(lease: SessionLease) -> bool:
    """Let go of our lease (a clean exit); someone else's is left alone."""
    return bool(
        Session.objects.filter(pk=lease.session_id, actions_lease_owner=lease.owner).update(
            actions_lease_until=None, actions_lease_owner=None
        )
    )


def session_lease_remaining(session_id: int) -> float | None:
    """Seconds until the session's current lease expires, on the database's clock; None if none is held."""
    remaining = (
        Session.objects.filter(pk=session_id, actions_lease_until__isnull=False)
        .annotate(left=ExpressionWrapper(F("actions_lease_until") - Now(), output_field=DurationField()))
        .values_list("left", flat=True)
        .first()
    )
    return None if remaining is None else max(0.0, remaining.total_seconds())


@contextmanager
def lease_heartbeat(lease: SessionLease, *, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Renew the lease every few seconds while the block runs (one action's CRM calls).

    The thread opens its own database connection only once the block has run `every` seconds,
    so quick actions cost nothing, and closes it when the block ends. Whether the lease is still
    ours is decided by the worker's own renewal between actions, not by this thread.
    """
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                session_lease_renew(lease)
        except Exception:
            # A database blip: the worker's own renewal after the action notices a lost lease.
            logger.warning("records.lease.heartbeat-failed %s", lease.session_id, exc_info=True)
        finally:
            db_connection.close()

    thread = threading.Thread(target=beat, name=f"lease-heartbeat-{lease.session_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 30)
