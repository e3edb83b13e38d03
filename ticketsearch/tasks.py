"""Thin Celery entry points for import and retention (ids in, a service call out). Names are locked by a test."""

import logging

from celery import Task, shared_task
from django.db import DatabaseError
from django.utils import timezone

from integrations.exceptions import CrmAuthError, CrmRateLimited, CrmTransientError

logger = logging.getLogger(__name__)


@shared_task(name="ticketsearch.schedule_imports", max_retries=0)
def schedule_imports_task() -> None:
    """Fan out: one import task per connection that has an import."""
    from ticketsearch.services.importing import connections_to_import

    for connection_id in connections_to_import():
        import_connection_task.delay(connection_id)


@shared_task(
    bind=True,
    name="ticketsearch.import_connection",
    # Idempotent: pages are upserted and the cursor is saved with each page, so a redelivery resumes.
    acks_late=True,
    autoretry_for=(CrmTransientError, DatabaseError),
    retry_backoff=30,
    retry_backoff_max=900,
    retry_jitter=True,
    max_retries=5,
)
def import_connection_task(self: Task[[int, str], None], connection_id: int, trigger: str = "schedule") -> None:
    """Import one connection's agents and solved tickets changed since its cursor.

    `trigger` says who asked (ImportRun.Trigger): the schedule, or an admin's "Import now".
    """
    from integrations.models import CrmConnection
    from integrations.services import connection_record_error
    from ticketsearch.models import ImportRun
    from ticketsearch.services.importing import ImportAlreadyRunning, ImportNotSupported, tickets_import

    connection = CrmConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        logger.info("ticketsearch.import.gone %s", connection_id)
        return
    try:
        tickets_import(connection=connection, trigger=ImportRun.Trigger(trigger))
    except (ImportAlreadyRunning, ImportNotSupported) as exc:
        logger.info("ticketsearch.import.skipped %s: %s", connection_id, exc)
    except CrmRateLimited as exc:
        raise self.retry(exc=exc, countdown=exc.retry_after) from exc
    except CrmAuthError as exc:
        # Retrying cannot fix credentials: record it where the admin sees it, and stop.
        connection_record_error(connection=connection, error=f"Ticket import: {exc}")


@shared_task(name="ticketsearch.purge_expired_tickets", max_retries=0)
def purge_expired_tickets_task() -> None:
    """Drop the tickets past 90 days (T3) and make the coming days' partitions."""
    from ticketsearch.services.retention import tickets_purge_expired

    tickets_purge_expired(now=timezone.now())
