"""Applying a session's new events: fold them, ask the rules, write the outbox, in one transaction."""

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.models import CrmConnection
from integrations.services import connection_get_active
from records.models import CrmAction, CustomDataMapping, Event, OperationSettings, Queue, Session
from records.outbound import AGENT_EVENTS
from records.rules import PlannedAction, RuleSet, SessionEvent, SessionState, replay
from records.services.screen_pop import screen_pop_refresh
from records.vocabulary import ActionKind, EventType

logger = logging.getLogger(__name__)

# A session whose processing raised this many times is no longer swept: it waits for an admin's
# "Process again" (the error is on its admin page), instead of failing every minute forever.
PROCESSING_MAX_ATTEMPTS = 5

# The events a contact lookup waiting among several matching contacts is waiting for (S5).
CONTACT_LOOKUP_WAITS_FOR = frozenset({EventType.CONTACT_SELECTED, EventType.SESSION_ENDED, EventType.SESSION_ABANDONED})


def current_ruleset(connection: CrmConnection | None = None) -> RuleSet:
    """The operation-management settings in force, with the connection's custom data mapping (S11)."""
    mapping = {}
    if connection is not None:
        mapping = dict(CustomDataMapping.objects.filter(connection=connection).values_list("sdk_key", "crm_field_id"))
    return OperationSettings.load().ruleset(mapping)


def _remember_queue(state: SessionState) -> None:
    """Queues appear in the admin as sessions name them, so admins can attach teams to them."""
    if not state.queue_id:
        return
    queue, created = Queue.objects.get_or_create(
        platform_id=state.queue_id, defaults={"name": state.queue_name, "path": list(state.queue_path)}
    )
    # A name or path the admin entered is kept; the platform's only fills what is still empty.
    changed: list[str] = []
    if not created and not queue.name and state.queue_name:
        queue.name, changed = state.queue_name, [*changed, "name"]
    if not created and not queue.path and state.queue_path:
        queue.path, changed = list(state.queue_path), [*changed, "path"]
    if changed:
        queue.save(update_fields=changed)


def _session_event(event: Event) -> SessionEvent:
    return SessionEvent(event_id=event.event_id, type=event.type, occurred_at=event.occurred_at, data=event.data)


@transaction.atomic
def session_process(*, session_id: int) -> int:
    """Apply the session's unapplied events in occurred_at order; return how many actions were planned.

    The session row is locked, so two workers never fold the same events; the actions are written
    in the same transaction as the events are marked applied, so a decision is never lost or doubled.
    """
    from records.tasks import run_session_actions_task

    session = Session.objects.select_for_update().filter(pk=session_id).first()
    if session is None:
        logger.info("records.process-session.gone %s", session_id)
        return 0
    events = list(session.events.filter(applied_at__isnull=True).order_by("occurred_at", "id"))
    if not events:
        return 0

    state = SessionState.from_json(session.external_id, session.state)
    if session.crm_connection_id is None:
        session.crm_connection = connection_get_active()
    decisions = replay(current_ruleset(session.crm_connection), state, [_session_event(event) for event in events])
    now = timezone.now()
    planned: list[PlannedAction] = []
    for event, decision in zip(events, decisions, strict=True):
        event.applied_at = now
        event.outcome = decision.reason
        planned += decision.actions
        if event.type in (EventType.SESSION_ENDED, EventType.SESSION_ABANDONED):
            session.ended_at = event.occurred_at
    state = decisions[-1].state
    Event.objects.bulk_update(events, ["applied_at", "outcome"])

    event_pks = dict(session.events.filter(event_id__in={a.event_id for a in planned}).values_list("event_id", "id"))
    CrmAction.objects.bulk_create(
        [
            CrmAction(
                session=session,
                event_id=event_pks.get(action.event_id),
                kind=action.kind,
                payload=action.payload.to_json(),
                # The row id, not the platform's session id: it holds no ":" to blur the key's parts.
                idempotency_key=f"{session.pk}:{action.key}",
                rule=action.rule,
                reason=action.reason,
            )
            for action in planned
        ],
        ignore_conflicts=True,
    )

    session.state = state.to_json()
    session.channel = state.channel
    session.session_type = state.session_type
    session.phone_number = state.phone_number
    session.agent_email = state.agent_email
    session.queue_id = state.queue_id
    session.menu_path = state.menu_path
    session.voicemail = state.voicemail
    session.started_at = datetime.fromisoformat(state.started_at) if state.started_at else None
    session.processing_error, session.processing_attempts, session.processing_failed_at = "", 0, None
    session.save(
        update_fields=[
            "processing_error",
            "processing_attempts",
            "processing_failed_at",
            "state",
            "channel",
            "session_type",
            "phone_number",
            "agent_email",
            "queue_id",
            "menu_path",
            "voicemail",
            "started_at",
            "ended_at",
            "crm_connection",
            "updated_at",
        ]
    )
    if any(isinstance(event.data.get("queue"), dict) for event in events):
        _remember_queue(state)
    if session.crm_record_id and any(event.type in AGENT_EVENTS for event in events):
        # O4: a transfer or a connection hands a session that already has its record to another adapter.
        screen_pop_refresh(session=session)
    # Also when nothing new was planned: an action may be waiting for this event (S5's contact pick).
    wakes_contact_lookup = any(event.type in CONTACT_LOOKUP_WAITS_FOR for event in events)
    if wakes_contact_lookup:
        # A contact lookup waiting for the agent's pick or the end of the call (S5) runs now.
        session.actions.filter(status=CrmAction.Status.PENDING, kind=ActionKind.ENSURE_CONTACT).update(
            next_attempt_at=None
        )
    if planned or (wakes_contact_lookup and session.actions.filter(status=CrmAction.Status.PENDING).exists()):
        transaction.on_commit(lambda: run_session_actions_task.delay(session.pk), robust=True)
    return len(planned)


def session_processing_failed(*, session_id: int, error: str) -> None:
    """Record that applying the session's events raised: the error, and one more failed attempt.

    Runs after the failed transaction rolled back, so nothing of the attempt is kept but this.
    """
    Session.objects.filter(pk=session_id).update(
        processing_error=error[:4000],
        processing_attempts=F("processing_attempts") + 1,
        processing_failed_at=timezone.now(),
    )


@transaction.atomic
def session_process_again(*, session: Session) -> Session:
    """An admin's "Process again" (after a fix): the session is swept and processed like a new one."""
    from records.tasks import enqueue_processing

    session.processing_attempts = 0
    session.save(update_fields=["processing_attempts", "updated_at"])
    transaction.on_commit(lambda: enqueue_processing([session.pk]), robust=True)
    return session
