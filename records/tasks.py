"""Thin Celery entry points: ids in, a service call out. Task names are locked by a test."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db import DatabaseError

logger = logging.getLogger(__name__)

# A session whose work has waited this long without a worker taking it is enqueued again.
SWEEP_STALE_AFTER = timedelta(minutes=2)


# Sessions per processing message: one message per session made the broker round trips cost a
# quarter of a 100-event batch; a few messages per batch still spread a large one over workers.
SESSIONS_PER_MESSAGE = 25


@shared_task(
    name="records.process_sessions",
    acks_late=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def process_sessions_task(session_ids: list[int]) -> None:
    """Apply each session's new events. Idempotent: applied events are marked in the same transaction."""
    from records.services.processing import session_process

    for session_id in session_ids:
        try:
            session_process(session_id=session_id)
        except DatabaseError:
            raise
        except Exception:
            # One broken session must not hold back the others of its message; the sweeper retries it.
            logger.exception("records.process-session.failed %s", session_id, extra={"session_id": session_id})


def enqueue_processing(session_ids: list[int]) -> None:
    for start in range(0, len(session_ids), SESSIONS_PER_MESSAGE):
        process_sessions_task.delay(session_ids[start : start + SESSIONS_PER_MESSAGE])


@shared_task(name="records.run_session_actions", acks_late=True, max_retries=0)
def run_session_actions_task(session_id: int) -> None:
    """Run the session's due CRM actions, then come back when the next retry is due.

    Retries are per action (attempts, backoff and Retry-After are stored on the action row and
    bounded by CRM_ACTION_MAX_ATTEMPTS), so the task itself never retries: it re-enqueues itself.
    """
    from records.services.execution import session_run_actions

    result = session_run_actions(session_id=session_id)
    if result.retry_in is not None:
        run_session_actions_task.apply_async((session_id,), countdown=result.retry_in)


@shared_task(name="records.sweep_sessions", max_retries=0)
def sweep_sessions_task() -> None:
    """Re-enqueue sessions whose message was lost (broker down at commit, worker killed)."""
    from records.services.execution import sessions_needing_work

    unapplied, due = sessions_needing_work(stale_after=SWEEP_STALE_AFTER)
    enqueue_processing(unapplied)
    for session_id in due:
        run_session_actions_task.delay(session_id)
    if unapplied or due:
        logger.info("records.sweep %s to process, %s with due actions", len(unapplied), len(due))
