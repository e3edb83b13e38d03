"""Two-way sync (A4): platform status changes pushed to the CRM, retried like every CRM call.

A push is an outbox row written in the transaction of the change that caused it. A worker makes
the call; attempts, backoff with jitter, Retry-After and the attempt limit follow the records
executor (records.services.execution), and stay visible in the admin. The push also remembers
when it was sent, so that the CRM's webhook for the status it set is recognised as its echo.
"""

import logging
import random
from datetime import timedelta

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from agentstatus import rules
from agentstatus.models import Agent, CrmStatus, PlatformStatus, StatusPush, StatusSyncSettings, SyncDirection
from agentstatus.selectors import crm_mapping, sync_connection, sync_settings_get
from integrations.backoff import backoff_seconds
from integrations.exceptions import CrmAuthError, CrmError, CrmNotFound, CrmRateLimited, CrmTransientError
from integrations.providers.base import Agent as CrmAgent
from integrations.services import connection_provider, connection_record_error

logger = logging.getLogger(__name__)

# Held while an attempt runs (one CRM call, bounded by CRM_HTTP_TIMEOUT_SECONDS): a second copy of
# the task finds the push not due; a dead worker's claim lapses and the sweeper takes it again.
ATTEMPT_LEASE = timedelta(minutes=2)


class PushFailed(Exception):
    """A problem no retry will fix (no connection, no such user in the CRM): the push fails visibly."""


def status_push_plan(
    *, agent: Agent, platform_status: PlatformStatus, settings: StatusSyncSettings
) -> tuple[StatusPush | None, str]:
    """Write the push for an applied platform change and enqueue it on commit; say what was done.

    Runs inside the caller's transaction, with the agent row locked.
    """
    from agentstatus.tasks import push_status_task

    connection = sync_connection(settings)
    if connection is None:
        return None, "not pushed to the CRM: no CRM connection for status sync"
    current = agent.crm_status.crm_id if agent.crm_status_id and agent.crm_status else None
    target = rules.push_target(platform_status.pk, crm_mapping(connection), current)
    if target.crm_status_id is None:
        return None, f"not pushed to the CRM: {target.reason}"
    crm_status = CrmStatus.objects.get(connection=connection, crm_id=target.crm_status_id)
    # Only the latest platform status matters: an older push still waiting would undo it.
    status_push_supersede(agent=agent)
    push = StatusPush.objects.create(agent=agent, platform_status=platform_status, crm_status=crm_status)
    transaction.on_commit(lambda: push_status_task.delay(push.pk), robust=True)
    return push, f"pushed to the CRM as {crm_status.name!r} (push #{push.pk})"


def status_push_supersede(*, agent: Agent) -> int:
    """Retire the agent's waiting pushes (a later change, from either side, makes them wrong)."""
    return StatusPush.objects.filter(agent=agent, state=StatusPush.State.PENDING).update(
        state=StatusPush.State.SUPERSEDED, next_attempt_at=None, updated_at=timezone.now()
    )


def _claim(push_id: int) -> tuple[StatusPush | None, float | None]:
    """Take the push for one attempt: (push, None), or (None, seconds until due) when it is not due."""
    now = timezone.now()
    with transaction.atomic():
        push = (
            StatusPush.objects.select_for_update(skip_locked=True)
            .select_related("agent", "crm_status")
            .filter(pk=push_id, state=StatusPush.State.PENDING)
            .first()
        )
        if push is None:
            return None, None
        if push.next_attempt_at and push.next_attempt_at > now:
            return None, (push.next_attempt_at - now).total_seconds()
        # Counted and stamped before the call: the echo can arrive before the CRM's answer does.
        push.attempts += 1
        push.sent_at = now
        push.next_attempt_at = now + ATTEMPT_LEASE
        push.save(update_fields=["attempts", "sent_at", "next_attempt_at", "updated_at"])
    return push, None


def status_push_execute(*, push_id: int) -> float | None:
    """Make one attempt at a push; return seconds until the next attempt is due, or None when done."""
    push, due_in = _claim(push_id)
    if push is None:
        return due_in
    settings = sync_settings_get()
    connection = sync_connection(settings)
    if not (settings.inheritance_enabled and settings.direction == SyncDirection.TWO_WAY):
        StatusPush.objects.filter(pk=push.pk, state=StatusPush.State.PENDING).update(
            state=StatusPush.State.SUPERSEDED,
            last_error="not sent: two-way sync was switched off",
            next_attempt_at=None,
            updated_at=timezone.now(),
        )
        return None
    try:
        if connection is None:
            raise PushFailed("No CRM connection for status sync: choose one in the status sync settings.")
        provider = connection_provider(connection)
        if not provider.supports_user_status:
            raise PushFailed(f"{connection} has no user statuses to push to.")
        user_id = push.agent.crm_user_id or _resolve_crm_user(push.agent, provider.find_agent(email=push.agent.email))
        provider.set_user_status(user_id, push.crm_status.crm_id)
    except CrmRateLimited as exc:
        # Not the push's fault: wait as told, without spending one of its attempts.
        push.attempts -= 1
        return _schedule_retry(push, str(exc), delay=exc.retry_after + random.uniform(0, 1))
    except CrmNotFound as exc:
        return _fail(push, f"the agent has no active CRM session to set the status on: {exc}")
    except CrmTransientError as exc:
        if push.attempts >= django_settings.CRM_ACTION_MAX_ATTEMPTS:
            return _fail(push, f"gave up after {push.attempts} attempts: {exc}")
        delay = backoff_seconds(
            push.attempts,
            base=django_settings.CRM_RETRY_BACKOFF_SECONDS,
            cap=django_settings.CRM_RETRY_BACKOFF_MAX_SECONDS,
        )
        return _schedule_retry(push, str(exc), delay=delay)
    except CrmAuthError as exc:
        assert connection is not None
        connection_record_error(connection=connection, error=str(exc))
        return _fail(push, f"CRM refused the credentials: {exc}")
    except (CrmError, PushFailed) as exc:
        return _fail(push, str(exc))
    # Only a push still pending is marked done: one superseded meanwhile keeps saying so.
    StatusPush.objects.filter(pk=push.pk, state=StatusPush.State.PENDING).update(
        state=StatusPush.State.SUCCEEDED,
        last_error="",
        next_attempt_at=None,
        completed_at=timezone.now(),
        updated_at=timezone.now(),
    )
    return None


def _resolve_crm_user(agent: Agent, crm_agent: CrmAgent | None) -> str:
    """Keep the CRM user id found by the agent's email (A3), so later pushes skip the lookup."""
    if crm_agent is None:
        raise PushFailed(f"No CRM user has the email {agent.email}.")
    Agent.objects.filter(pk=agent.pk).update(crm_user_id=crm_agent.id)
    agent.crm_user_id = crm_agent.id
    return crm_agent.id


def _schedule_retry(push: StatusPush, error: str, *, delay: float) -> float:
    logger.info("agentstatus.push.retry %s in %.1fs: %s", push.pk, delay, error, extra={"push_id": push.pk})
    StatusPush.objects.filter(pk=push.pk, state=StatusPush.State.PENDING).update(
        attempts=push.attempts,
        last_error=error[:2000],
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
        updated_at=timezone.now(),
    )
    return delay


def _fail(push: StatusPush, error: str) -> float | None:
    """Mark the push failed; None: no further attempt is due."""
    logger.warning("agentstatus.push.failed %s: %s", push.pk, error, extra={"push_id": push.pk})
    StatusPush.objects.filter(pk=push.pk, state=StatusPush.State.PENDING).update(
        state=StatusPush.State.FAILED, last_error=error[:2000], next_attempt_at=None, updated_at=timezone.now()
    )
    return None


@transaction.atomic
def status_push_retry(*, push: StatusPush) -> StatusPush:
    """An admin's Retry: the push (failed or waiting) runs again as soon as a worker takes it."""
    from agentstatus.tasks import push_status_task

    push.state = StatusPush.State.PENDING
    push.next_attempt_at = None
    push.save(update_fields=["state", "next_attempt_at", "updated_at"])
    transaction.on_commit(lambda: push_status_task.delay(push.pk), robust=True)
    return push


def pushes_needing_work(*, stale_after: timedelta) -> list[int]:
    """Pending pushes whose message was lost (broker down at commit, worker killed) and that are due."""
    now = timezone.now()
    return list(
        StatusPush.objects.filter(state=StatusPush.State.PENDING, updated_at__lt=now - stale_after)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("id", flat=True)[:1000]
    )
