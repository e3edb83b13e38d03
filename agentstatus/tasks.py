"""Thin Celery entry points for status sync: ids in, a service call out. Names are locked by a test."""

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

logger = logging.getLogger(__name__)

# A push whose message has waited this long without a worker taking it is enqueued again (every
# 5 s: config.settings); a second copy finds it claimed or done.
SWEEP_STALE_AFTER = timedelta(seconds=15)
# Kustomer retries a delivery for about an hour (1, 1, 2, 5, 10, 15, 30 minutes): ids are kept
# well past that, so every redelivery is recognised. One older still cannot undo a newer status:
# events are ordered by their own updatedAt.
WEBHOOK_IDS_KEPT_FOR = timedelta(hours=3)
# A stored delivery still waiting for its user lookup this long has lost its task message.
PENDING_LOOKUP_STALE_AFTER = timedelta(minutes=15)


@shared_task(name="agentstatus.push_status", acks_late=True, max_retries=0)
def push_status_task(push_id: int) -> None:
    """Push one platform status change to the CRM (A4), then come back when its retry is due.

    Retries are per push (attempts, backoff and Retry-After are stored on the push row, within the
    retry budget of integrations.failures), so the task itself never retries: it re-enqueues itself,
    or, for a wait longer than the broker holds a message, leaves the push to the sweeper. A second
    copy of the message finds the push claimed or done and does nothing.
    """
    from agentstatus.services.push import status_push_execute
    from integrations.services import retry_countdown

    retry_in = status_push_execute(push_id=push_id)
    countdown = retry_countdown(retry_in) if retry_in is not None else None
    if countdown is not None:
        push_status_task.apply_async((push_id,), countdown=countdown)


@shared_task(name="agentstatus.sweep_pushes", max_retries=0)
def sweep_pushes_task() -> None:
    """Re-enqueue pushes whose message was lost (broker down at commit, worker killed)."""
    from agentstatus.services.push import pushes_needing_work

    due = pushes_needing_work(stale_after=SWEEP_STALE_AFTER)
    for push_id in due:
        push_status_task.delay(push_id)
    if due:
        logger.info("agentstatus.sweep %s pushes re-enqueued", len(due))


@shared_task(name="agentstatus.apply_webhook_event", acks_late=True, max_retries=0)
def apply_webhook_event_task(event_id: str) -> None:
    """Look up the unknown CRM user of one stored delivery, then apply it; come back when a retry is due."""
    from agentstatus.services.inbound import webhook_event_apply_pending
    from integrations.services import retry_countdown

    retry_in = webhook_event_apply_pending(event_id=event_id)
    # A wait longer than the broker holds a message is left to prune_webhook_events' re-enqueue.
    countdown = retry_countdown(retry_in) if retry_in is not None else None
    if countdown is not None:
        apply_webhook_event_task.apply_async((event_id,), countdown=countdown)


@shared_task(name="agentstatus.prune_webhook_events", max_retries=0)
def prune_webhook_events_task() -> None:
    """Forget webhook event ids older than Kustomer's retry window; re-enqueue lost user lookups."""
    from agentstatus.services.inbound import webhook_events_pending, webhook_events_prune

    deleted = webhook_events_prune(older_than=timezone.now() - WEBHOOK_IDS_KEPT_FOR)
    if deleted:
        logger.info("agentstatus.prune %s webhook ids", deleted)
    for event_id in webhook_events_pending(received_before=timezone.now() - PENDING_LOOKUP_STALE_AFTER):
        apply_webhook_event_task.delay(event_id)
