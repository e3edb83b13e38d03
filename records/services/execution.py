"""Carrying out the outbox: each session's CRM actions, in order, exactly once in the CRM.

A worker takes a lease on the session (so its actions never run in parallel or out of order),
runs the due actions, and reports when it wants to run again. Exactly-once in the CRM comes from
the actions themselves: the attempt is counted before the call, and a retried create or comment
first looks for what the earlier attempt may have made.
"""

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.crypto import CredentialsUnreadable
from integrations.exceptions import CrmAuthError, CrmError, CrmRateLimited, CrmRequestError, CrmTransientError
from integrations.providers.base import Comment, Contact, CrmProvider, NewRecord
from integrations.providers.registry import UnsupportedCrm
from integrations.services import connection_get_active, connection_provider, connection_record_error
from records.models import CrmAction, Session
from records.vocabulary import ActionKind

logger = logging.getLogger(__name__)

# Renewed before each action, and far longer than one action's few CRM calls can take (each is
# bounded by CRM_HTTP_TIMEOUT_SECONDS); a dead worker's lease lapses after it.
LEASE_SECONDS = 300
# The actions every later one of the session needs: while one has failed, the rest wait.
BLOCKING_KINDS = frozenset({ActionKind.ENSURE_CONTACT, ActionKind.CREATE_RECORD})


class ActionFailed(Exception):
    """A problem no retry will fix (bad request, missing configuration): the action fails visibly."""


@dataclass(frozen=True)
class RunResult:
    executed: int
    # Seconds until the session's actions should run again, or None when nothing is due.
    retry_in: float | None


def backoff_seconds(attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random, capped."""
    step = min(cap, base * 2 ** max(0, attempt - 1))
    return step / 2 + rand() * step / 2


def choose_contact(contacts: list[Contact]) -> Contact | None:
    """Several contacts share the number: the most recently created one (S5's fallback)."""
    return max(contacts, key=lambda contact: contact.created_at or "", default=None)


def _claim_lease(session_id: int) -> bool:
    now = timezone.now()
    return bool(
        Session.objects.filter(pk=session_id)
        .filter(Q(actions_lease_until__isnull=True) | Q(actions_lease_until__lt=now))
        .update(actions_lease_until=now + timedelta(seconds=LEASE_SECONDS))
    )


def _renew_lease(session_id: int) -> None:
    lease_until = timezone.now() + timedelta(seconds=LEASE_SECONDS)
    Session.objects.filter(pk=session_id).update(actions_lease_until=lease_until)


def _release_lease(session_id: int) -> None:
    Session.objects.filter(pk=session_id).update(actions_lease_until=None)


def _next_action(session_id: int) -> CrmAction | None:
    """The session's first pending action, unless a failed action it depends on stands before it."""
    action = CrmAction.objects.filter(session_id=session_id, status=CrmAction.Status.PENDING).order_by("id").first()
    if action is None:
        return None
    blocked = CrmAction.objects.filter(
        session_id=session_id, status=CrmAction.Status.FAILED, kind__in=BLOCKING_KINDS, id__lt=action.id
    ).exists()
    return None if blocked else action


def session_run_actions(*, session_id: int) -> RunResult:
    """Run the session's due actions in order; say when to come back for the rest."""
    if not _claim_lease(session_id):
        # Another worker is on it; it re-checks for new actions when it lets go.
        return RunResult(executed=0, retry_in=None)
    executed = 0
    retry_in: float | None = None
    try:
        while (action := _next_action(session_id)) is not None:
            now = timezone.now()
            if action.next_attempt_at and action.next_attempt_at > now:
                retry_in = (action.next_attempt_at - now).total_seconds()
                break
            _renew_lease(session_id)
            action_execute(action=action)
            executed += 1
            if action.status == CrmAction.Status.PENDING:
                break
    finally:
        _release_lease(session_id)
    if retry_in is None and (action := _next_action(session_id)) is not None:
        # Actions written while the lease was held (their own enqueue found it taken) or a retry.
        due = action.next_attempt_at
        retry_in = max(0.0, (due - timezone.now()).total_seconds()) if due else 0.0
    return RunResult(executed=executed, retry_in=retry_in)


def action_execute(*, action: CrmAction) -> CrmAction:
    """Make one attempt at an action, recording its outcome on the row."""
    session = Session.objects.select_related("crm_connection").get(pk=action.session_id)
    retried = action.attempts > 0
    # Counted before the call: if this worker dies mid-call, the next attempt knows to look first.
    action.attempts += 1
    action.save(update_fields=["attempts", "updated_at"])
    connection = session.crm_connection
    try:
        if connection is None:
            connection = connection_get_active()
            if connection is None:
                raise ActionFailed("No active CRM connection: add one in the admin, then retry this action.")
            session.crm_connection = connection
            session.save(update_fields=["crm_connection", "updated_at"])
        provider = connection_provider(connection)
        result = HANDLERS[action.kind](provider, session, action.payload, retried)
    except CrmRateLimited as exc:
        # Not the action's fault: wait as told, without spending one of its attempts.
        action.attempts -= 1
        return _schedule_retry(action, str(exc), delay=exc.retry_after + random.uniform(0, 1))
    except CrmTransientError as exc:
        if action.attempts >= settings.CRM_ACTION_MAX_ATTEMPTS:
            return _fail(action, f"gave up after {action.attempts} attempts: {exc}")
        delay = backoff_seconds(
            action.attempts, base=settings.CRM_RETRY_BACKOFF_SECONDS, cap=settings.CRM_RETRY_BACKOFF_MAX_SECONDS
        )
        return _schedule_retry(action, str(exc), delay=delay)
    except CrmAuthError as exc:
        assert connection is not None
        connection_record_error(connection=connection, error=str(exc))
        return _fail(action, f"CRM refused the credentials: {exc}")
    except (CrmError, ActionFailed, CredentialsUnreadable, UnsupportedCrm) as exc:
        return _fail(action, str(exc))
    except (KeyError, TypeError, ValueError) as exc:
        # A CRM answer of an unexpected shape: fail visibly rather than crash the worker in a loop.
        logger.exception("records.action.unexpected %s", action.pk, extra={"action_id": action.pk})
        return _fail(action, f"unexpected answer from the CRM ({exc.__class__.__name__}: {exc})")
    action.status = CrmAction.Status.SUCCEEDED
    action.result = result
    action.last_error = ""
    action.next_attempt_at = None
    action.completed_at = timezone.now()
    action.save(update_fields=["status", "result", "last_error", "next_attempt_at", "completed_at", "updated_at"])
    return action


def _schedule_retry(action: CrmAction, error: str, *, delay: float) -> CrmAction:
    logger.info("records.action.retry %s in %.1fs: %s", action.pk, delay, error, extra={"action_id": action.pk})
    action.last_error = error[:2000]
    action.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    action.save(update_fields=["attempts", "last_error", "next_attempt_at", "updated_at"])
    return action


def _fail(action: CrmAction, error: str) -> CrmAction:
    logger.warning("records.action.failed %s: %s", action.pk, error, extra={"action_id": action.pk})
    action.status = CrmAction.Status.FAILED
    action.last_error = error[:2000]
    action.next_attempt_at = None
    action.save(update_fields=["status", "last_error", "next_attempt_at", "updated_at"])
    return action


@transaction.atomic
def action_retry(*, action: CrmAction) -> CrmAction:
    """An admin's Retry: the action (failed or waiting) runs again as soon as a worker takes it."""
    from records.tasks import run_session_actions_task

    action.status = CrmAction.Status.PENDING
    action.next_attempt_at = None
    action.save(update_fields=["status", "next_attempt_at", "updated_at"])
    transaction.on_commit(lambda: run_session_actions_task.delay(action.session_id), robust=True)
    return action


# Handlers: (provider, session, payload, retried) -> result stored on the action.


def _ensure_contact(provider: CrmProvider, session: Session, payload: dict[str, Any], retried: bool) -> dict[str, Any]:
    if session.crm_contact_id:
        return {"contact_id": session.crm_contact_id, "outcome": "already linked"}
    phone, email = payload.get("phone") or None, payload.get("email") or None
    # Looking up before creating also makes a retried create safe: it finds what the lost answer made.
    contact, outcome = _find_contact(provider, phone, email)
    if contact is None:
        name = payload.get("name") or phone or email or session.external_id
        try:
            contact, outcome = provider.create_contact(name=name, phone=phone, email=email), "created"
        except CrmRequestError as exc:
            # Another session of the same caller created the contact between our search and create
            # (the CRM refuses a second user with that phone or email): link that one instead.
            contact, outcome = _find_contact(provider, phone, email)
            if contact is None:
                raise
            outcome += f" after the create was refused ({exc.status_code})"
    session.crm_contact_id = contact.id
    session.save(update_fields=["crm_contact_id", "updated_at"])
    return {"contact_id": contact.id, "outcome": outcome}


def _find_contact(provider: CrmProvider, phone: str | None, email: str | None) -> tuple[Contact | None, str]:
    contacts = provider.find_contacts(phone=phone) if phone else []
    if not contacts and email:
        contacts = provider.find_contacts(email=email)
    contact = choose_contact(contacts)
    return contact, f"found {len(contacts)} contact(s), linked the newest" if contact else ""


def _create_record(provider: CrmProvider, session: Session, payload: dict[str, Any], retried: bool) -> dict[str, Any]:
    if session.crm_record_id:
        return {"record_id": session.crm_record_id, "outcome": "already linked"}
    external_id = payload["external_id"]
    if retried:
        existing = provider.find_records_by_external_id(external_id)
        if existing:
            return _link_record(session, existing[0].id, "found the record an earlier attempt created")
    if not session.crm_contact_id:
        raise ActionFailed("The session has no CRM contact to be the record's requester.")
    notes = []
    assignee_id = None
    if email := payload.get("assignee_email"):
        agent = provider.find_agent(email=email)
        if agent is None:
            notes.append(f"agent {email} not found in the CRM: record left unassigned")
        else:
            assignee_id = agent.id
    tags = [provider.session_type_tag(payload["session_type_name"])] if payload.get("session_type_name") else []
    tags += payload.get("tags") or []
    record = provider.create_record(
        NewRecord(
            subject=payload["subject"],
            external_id=external_id,
            requester_id=session.crm_contact_id,
            first_comment=Comment(body=payload["first_comment"], public=False),
            assignee_id=assignee_id,
            tags=tuple(tags),
        )
    )
    return _link_record(session, record.id, "; ".join(["created", *notes]))


def _link_record(session: Session, record_id: str, outcome: str) -> dict[str, Any]:
    session.crm_record_id = record_id
    session.save(update_fields=["crm_record_id", "updated_at"])
    return {"record_id": record_id, "outcome": outcome}


def _add_comment(provider: CrmProvider, session: Session, payload: dict[str, Any], retried: bool) -> dict[str, Any]:
    if not session.crm_record_id:
        raise ActionFailed("The session has no CRM record to comment on.")
    body = payload["body"]
    if retried and any(comment.body == body for comment in provider.list_comments(session.crm_record_id)):
        return {"record_id": session.crm_record_id, "outcome": "an earlier attempt had already added it"}
    provider.add_comment(session.crm_record_id, Comment(body=body, public=False))
    return {"record_id": session.crm_record_id, "outcome": "added"}


HANDLERS: dict[str, Callable[[CrmProvider, Session, dict[str, Any], bool], dict[str, Any]]] = {
    ActionKind.ENSURE_CONTACT: _ensure_contact,
    ActionKind.CREATE_RECORD: _create_record,
    ActionKind.ADD_COMMENT: _add_comment,
}


def sessions_needing_work(*, stale_after: timedelta) -> tuple[list[int], list[int]]:
    """Sessions whose enqueue was lost (broker down, worker died): unapplied events, due actions."""
    now = timezone.now()
    unapplied = list(
        Session.objects.filter(events__applied_at__isnull=True, events__received_at__lt=now - stale_after)
        .values_list("id", flat=True)
        .distinct()[:1000]
    )
    # One filter() call, so that one and the same action is pending, stale and due.
    due = list(
        Session.objects.filter(Q(actions_lease_until__isnull=True) | Q(actions_lease_until__lt=now))
        .filter(
            Q(actions__next_attempt_at__isnull=True) | Q(actions__next_attempt_at__lte=now),
            actions__status=CrmAction.Status.PENDING,
            actions__updated_at__lt=now - stale_after,
        )
        # Held back by a failed contact or record action: waiting for an admin's Retry, not a sweep.
        .exclude(actions__status=CrmAction.Status.FAILED, actions__kind__in=BLOCKING_KINDS)
        .values_list("id", flat=True)
        .distinct()[:1000]
    )
    return unapplied, due
