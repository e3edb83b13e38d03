"""Thin Celery entry points for import and retention (ids in, a service call out). Names are locked by a test."""

import logging
import time

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

logger = logging.getLogger(__name__)

# The one place the import's queue is named: imports run apart from live session work, so a long
# first import never delays a call's ticket. Workers must consume it (Procfile: -Q crmbridge,imports).
IMPORT_QUEUE = "imports"
# Below the broker's 15-minute visibility timeout (config.settings), so a running import is never
# redelivered to a second worker; it stops starting pages IMPORT_PAGE_MARGIN before its soft limit.
IMPORT_SOFT_TIME_LIMIT = 10 * 60
IMPORT_TIME_LIMIT = IMPORT_SOFT_TIME_LIMIT + 60
IMPORT_PAGE_MARGIN = 90


@shared_task(name="ticketsearch.schedule_imports", max_retries=0)
def schedule_imports_task() -> None:
    """Fan out: one import task per connection that has an import."""
    from ticketsearch.services.importing import connections_to_import

    for connection_id in connections_to_import():
        import_connection_task.delay(connection_id)


@shared_task(
    bind=True,
    name="ticketsearch.import_connection",
    queue=IMPORT_QUEUE,
    soft_time_limit=IMPORT_SOFT_TIME_LIMIT,
    time_limit=IMPORT_TIME_LIMIT,
    # Idempotent: pages are upserted and the cursor is saved with each page, so a redelivery resumes.
    acks_late=True,
    # Retried as the one failure policy says (integrations.failures), within the retry budget.
    max_retries=None,
)
def import_connection_task(
    self: Task[[int, str, float | None, int], None],
    connection_id: int,
    trigger: str = "schedule",
    failing_since: float | None = None,
    attempts: int = 0,
) -> None:
    """Import one connection's agents and solved tickets changed since its cursor.

    `trigger` says who asked (ImportRun.Trigger): the schedule, an admin's "Import now", or a resume.
    A run that reaches its time limit ends interrupted and is continued by a new task from the
    cursor of its last saved page, rather than failing (or, killed, staying "running" forever).
    `failing_since` (a POSIX time) is when the CRM's transient trouble with this import began, and
    `attempts` how many of its tries failed (a pause of the connection's open circuit is none).
    """
    from integrations.circuit import CircuitOpen
    from integrations.failures import HANDLED_ERRORS, Failure
    from integrations.models import CrmConnection
    from integrations.services import connection_record_error, task_circuit_pause, task_failure_verdict
    from ticketsearch.models import ImportRun
    from ticketsearch.services.importing import ImportAlreadyRunning, ImportNotSupported, tickets_import

    connection = CrmConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        logger.info("ticketsearch.import.gone %s", connection_id)
        return
    deadline = time.monotonic() + IMPORT_SOFT_TIME_LIMIT - IMPORT_PAGE_MARGIN
    try:
        run = tickets_import(connection=connection, trigger=ImportRun.Trigger(trigger), deadline=deadline)
    except SoftTimeLimitExceeded:
        # One page outlasted the margin: the run is marked interrupted; its saved pages stand.
        logger.warning("ticketsearch.import.soft_time_limit %s", connection_id)
        import_connection_task.apply_async((connection_id, ImportRun.Trigger.RESUME))
        return
    except (ImportAlreadyRunning, ImportNotSupported) as exc:
        logger.info("ticketsearch.import.skipped %s: %s", connection_id, exc)
        return
    except CircuitOpen as exc:
        # The CRM is down for everyone: come back after the pause, whose time is not taken from the budget.
        pause = task_circuit_pause(exc, failing_since=failing_since)
        kwargs = {
            "connection_id": connection_id,
            "trigger": trigger,
            "failing_since": pause.failing_since,
            "attempts": attempts,
        }
        raise self.retry(exc=exc, countdown=pause.countdown, args=(), kwargs=kwargs) from exc
    except HANDLED_ERRORS as exc:
        verdict = task_failure_verdict(exc, connection=connection, attempts=attempts, failing_since=failing_since)
        decision = verdict.decision
        if decision.retry:
            # No sweeper looks for a waiting import: a longer wait is cut to what the broker holds
            # (asking a rate-limited CRM early costs one more 429, never a second import).
            kwargs = {
                "connection_id": connection_id,
                "trigger": trigger,
                "failing_since": verdict.failing_since,
                "attempts": verdict.attempts,
            }
            raise self.retry(exc=exc, countdown=verdict.countdown, args=(), kwargs=kwargs) from exc
        if decision.failure == Failure.CREDENTIALS:
            # Retrying cannot fix credentials: record it where the admin sees it, and stop.
            connection_record_error(connection=connection, error=f"Ticket import: {exc}")
            return
        # The run is marked failed with its error (tickets_import); the task fails visibly too.
        raise
    if run.status == ImportRun.Status.INTERRUPTED:
        import_connection_task.apply_async((connection_id, ImportRun.Trigger.RESUME))


@shared_task(name="ticketsearch.purge_expired_tickets", max_retries=0)
def purge_expired_tickets_task() -> None:
    """Drop the tickets past 90 days (T3) and make the coming weeks' partitions."""
    from ticketsearch.services.retention import tickets_purge_expired

    tickets_purge_expired(now=timezone.now())
