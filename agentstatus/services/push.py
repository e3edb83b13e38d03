"""Two-way sync (A4): platform status changes pushed to the CRM, retried like every CRM call.

A push is an outbox row written in the transaction of the change that caused it. A worker makes
the call; attempts, backoff with jitter, Retry-After and the retry budget (counted from the push's
creation) follow the one failure policy (integrations.failures), and stay visible in the admin. The push also remembers
when it was sent, so that the CRM's webhook for the status it set is recognised as its echo.
"""

import logging
import uuid
from datetime import timedelta

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Now

from agentstatus import rules
from agentstatus.models import Agent, CrmStatus, PlatformStatus, StatusPush, StatusSyncSettings, SyncDirection
from agentstatus.selectors import crm_mapping, sync_connection, sync_settings_get
from integrations.circuit import CircuitOpen, circuit_pause_delay, circuit_pause_text
from integrations.failures import HANDLED_ERRORS, Failure, decide, failure_outcome
from integrations.models import CrmConnection
from integrations.providers.base import Agent as CrmAgent
from integrations.services import (
    connection_circuit_check,
    connection_circuit_record,
    connection_provider,
    connection_record_failure,
    connection_retry_policy,
)
from records.services.leases import db_now, db_now_plus

logger = logging.getLogger(__name__)

# Held while an attempt runs (a user lookup, which a failing CRM may make the HTTP layer send up to
# 1 + CRM_READ_RETRIES times, and a status call, each bounded by CRM_HTTP_TIMEOUT_SECONDS, plus this
# margin): a second copy of the task finds the push not due; a dead worker's claim lapses and the
# sweeper takes it again.
ATTEMPT_LEASE_MARGIN_SECONDS = 10


def attempt_lease_seconds() -> float:
    calls = 2 + int(django_settings.CRM_READ_RETRIES)
    return calls * float(django_settings.CRM_HTTP_TIMEOUT_SECONDS) + ATTEMPT_LEASE_MARGIN_SECONDS


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
        state=StatusPush.State.SUPERSEDED, next_attempt_at=None, lease_owner=None, updated_at=Now()
    )


def status_push_claim(*, push_id: int) -> tuple[StatusPush | None, float | None]:
    """Take the push for one attempt: (push, None), or (None, seconds until due) when it is not due.

    Due, sent and leased on the database's clock; the claim's owner token goes with the push, and
    only the outcome of the attempt that still holds it is recorded.
    """
    with transaction.atomic():
        push = (
            StatusPush.objects.select_for_update(skip_locked=True)
            .select_related("agent", "crm_status")
            .filter(pk=push_id, state=StatusPush.State.PENDING)
            .first()
        )
        if push is None:
            return None, None
        now = db_now()
        if push.next_attempt_at and push.next_attempt_at > now:
            return None, (push.next_attempt_at - now).total_seconds()
        # Counted and stamped before the call: the echo can arrive before the CRM's answer does.
        push.attempts += 1
        push.sent_at = now
        push.next_attempt_at = now + timedelta(seconds=attempt_lease_seconds())
        push.lease_owner = uuid.uuid4()
        push.save(update_fields=["attempts", "sent_at", "next_attempt_at", "lease_owner", "updated_at"])
    return push, None


def _held(push: StatusPush) -> QuerySet[StatusPush]:
    """The push, if still pending and still ours: a worker that outlived its lease records nothing."""
    return StatusPush.objects.filter(pk=push.pk, state=StatusPush.State.PENDING, lease_owner=push.lease_owner)


def status_push_execute(*, push_id: int) -> float | None:
    """Make one attempt at a push; return seconds until the next attempt is due, or None when done."""
    push, due_in = status_push_claim(push_id=push_id)
    if push is None:
        return due_in
    settings = sync_settings_get()
    connection = sync_connection(settings)
    if not (settings.inheritance_enabled and settings.direction == SyncDirection.TWO_WAY):
        _held(push).update(
            state=StatusPush.State.SUPERSEDED,
            last_error="not sent: two-way sync was switched off",
            next_attempt_at=None,
            lease_owner=None,
            updated_at=Now(),
        )
        return None
    try:
        if connection is None:
            raise PushFailed("No CRM connection for status sync: choose one in the status sync settings.")
        provider = connection_provider(connection)
        if not provider.supports_user_status:
            raise PushFailed(f"{connection} has no user statuses to push to.")
        connection_circuit_check(connection)
        user_id = push.agent.crm_user_id or _resolve_crm_user(push.agent, provider.find_agent(email=push.agent.email))
        provider.set_user_status(user_id, push.crm_status.crm_id)
    except PushFailed as exc:
        return status_push_fail(push=push, error=str(exc))
    except CircuitOpen as exc:
        return _wait_for_circuit(push, exc)
    except HANDLED_ERRORS as exc:
        return _after_failure(push, connection, exc)
    connection_circuit_record(connection, success=True)
    # Only a push still pending (and ours) is marked done: one superseded meanwhile keeps saying so.
    _held(push).update(
        state=StatusPush.State.SUCCEEDED,
        last_error="",
        next_attempt_at=None,
        lease_owner=None,
        completed_at=Now(),
        updated_at=Now(),
    )
    return None


# The push's own words for a failure that ends it (integrations.failures.failure_outcome).
WORDINGS = {Failure.STALE_ID: "the agent has no active CRM session to set the status on"}


def _wait_for_circuit(push: StatusPush, exc: CircuitOpen) -> float:
    """The connection's circuit is open: come back after the pause, spending neither an attempt nor budget."""
    push.attempts -= 1
    # The pause is not the push's failing time: its budget clock (from its creation) stops meanwhile.
    _held(push).update(paused_seconds=F("paused_seconds") + exc.wait)
    return _schedule_retry(push, circuit_pause_text(push.last_error, exc), delay=circuit_pause_delay(exc))


def _after_failure(push: StatusPush, connection: CrmConnection | None, exc: Exception) -> float | None:
    """What the one failure policy (integrations.failures) says: retry when, or fail the push."""
    failing_for = (db_now() - push.created_at).total_seconds() - push.paused_seconds
    decision = decide(exc, attempt=push.attempts, failing_for=failing_for, policy=connection_retry_policy(connection))
    outcome = failure_outcome(decision, exc, attempts=push.attempts, failing_for=failing_for, wordings=WORDINGS)
    connection_record_failure(
        connection=connection, outcome=outcome, error=exc, log_name="agentstatus.push", row_id=push.pk
    )
    push.attempts = outcome.attempts
    if decision.retry:
        return _schedule_retry(push, outcome.text, delay=decision.delay)
    return status_push_fail(push=push, error=outcome.text)


def _resolve_crm_user(agent: Agent, crm_agent: CrmAgent | None) -> str:
    """Keep the CRM user id found by the agent's email (A3), so later pushes skip the lookup."""
    if crm_agent is None:
        raise PushFailed(f"No CRM user has the email {agent.email}.")
    Agent.objects.filter(pk=agent.pk).update(crm_user_id=crm_agent.id)
    agent.crm_user_id = crm_agent.id
    return crm_agent.id


def _schedule_retry(push: StatusPush, error: str, *, delay: float) -> float:
    logger.info("agentstatus.push.retry %s in %.1fs: %s", push.pk, delay, error, extra={"push_id": push.pk})
    _held(push).update(
        attempts=push.attempts,
        last_error=error[:2000],
        next_attempt_at=db_now_plus(delay),
        lease_owner=None,
        updated_at=Now(),
    )
    return delay


def status_push_fail(*, push: StatusPush, error: str) -> float | None:
    """Mark the push failed, if this worker still holds it; None: no further attempt is due."""
    logger.warning("agentstatus.push.failed %s: %s", push.pk, error, extra={"push_id": push.pk})
    _held(push).update(
        state=StatusPush.State.FAILED, last_error=error[:2000], next_attempt_at=None, lease_owner=None, updated_at=Now()
    )
    return None


@transaction.atomic
def status_push_retry(*, push: StatusPush) -> StatusPush:
    """An admin's Retry: the push (failed or waiting) runs again as soon as a worker takes it."""
    from agentstatus.tasks import push_status_task

    push.state = StatusPush.State.PENDING
    push.next_attempt_at = None
    push.lease_owner = None
    push.save(update_fields=["state", "next_attempt_at", "lease_owner", "updated_at"])
    transaction.on_commit(lambda: push_status_task.delay(push.pk), robust=True)
    return push


def pushes_needing_work(*, stale_after: timedelta) -> list[int]:
    """Pending pushes whose message was lost (broker down at commit, worker killed) and that are due.

    A claimed push's lease is its next_attempt_at, so a dead worker's push is due once it lapses.
    """
    return list(
        StatusPush.objects.filter(
            state=StatusPush.State.PENDING, updated_at__lt=db_now_plus(-stale_after.total_seconds())
        )
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=Now()))
        .values_list("id", flat=True)[:1000]
    )
