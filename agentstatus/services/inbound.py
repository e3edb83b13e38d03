"""CRM → platform (A2, A3): Kustomer's signed work-session webhooks become platform statuses at once.

For a known agent one request does it all, in one transaction: verify, take the event id (a
redelivery is acknowledged and changes nothing), track their CRM instances, recognise the echo of
our own push, decide by the pure rules, apply, audit. A user id not seen yet is stored and looked up
in the CRM by a task after the answer, which never waits on the CRM. A refused delivery changes
nothing: the refusal is raised before or inside that transaction.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agentstatus import rules
from agentstatus.models import (
    Agent,
    CrmStatus,
    ProcessedWebhookEvent,
    Source,
    StatusPush,
    StatusSyncSettings,
    SyncDirection,
)
from agentstatus.selectors import agent_state, sync_connection, sync_rules, sync_settings_get
from agentstatus.services.changes import status_change_record
from agentstatus.services.push import status_push_supersede
from integrations.circuit import CircuitOpen, circuit_pause_delay
from integrations.exceptions import CrmNotFound, CrmUnsupported, UnknownCrmKind
from integrations.failures import HANDLED_ERRORS, decide, describe_duration, failure_outcome
from integrations.models import CrmConnection
from integrations.services import (
    connection_circuit_check,
    connection_circuit_record,
    connection_provider,
    connection_retry_policy,
)
from integrations.webhooks import (
    KUSTOMER_SIGNATURE_HEADER,
    WORK_SESSION_EVENTS,
    WebhookRefused,
    WorkSessionEvent,
    parse_kustomer_event,
    parse_work_session_event,
    verify_kustomer_delivery,
)
from records.services.leases import db_now


class StatusSyncUnavailable(Exception):
    """The CRM could not be asked who the user is: the failure policy says whether to ask again."""

    def __init__(self, message: str, cause: Exception) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class WebhookResult:
    # applied | unchanged | ignored | echo | unmatched | duplicate | queued
    outcome: str
    reason: str
    agent_email: str = ""
    platform_status: str | None = None

    @property
    def queued(self) -> bool:
        return self.outcome == "queued"


@dataclass(frozen=True)
class AgentMatch:
    agent_id: int | None
    email: str = ""
    reason: str = ""


def status_webhook_receive(*, body: bytes, signature: str | None) -> WebhookResult:
    """Take one Kustomer delivery: raise WebhookRefused (nothing changed) or say what it did.

    Kustomer waits only a few seconds for the answer and sends no timestamp, so nothing here
    depends on the delivery's age and nothing waits on the CRM: an event for a known agent is
    applied at once, one for a user id not seen yet is stored and applied by a task after the
    answer. A redelivery (Kustomer retries anything but a 2xx) is acknowledged and changes nothing.
    """
    settings = sync_settings_get()
    secret = settings.webhook_secret
    if not secret:
        raise WebhookRefused(
            403,
            "No status webhook secret is configured: register the status webhook in the admin, or paste its secret.",
            KUSTOMER_SIGNATURE_HEADER,
        )
    verify_kustomer_delivery(secret=secret, signature=signature, body=body)
    event_id, name, envelope = parse_kustomer_event(body)
    if name not in WORK_SESSION_EVENTS:
        with transaction.atomic():
            if not _take_event_id(event_id, name):
                return _duplicate(event_id)
        return WebhookResult("ignored", f"{name} is not a work-session event")
    event = parse_work_session_event(event_id, name, envelope)
    # Without updatedAt the event's own time is unknown: when it arrived is the best there is.
    occurred_at = event.updated_at or db_now()
    with transaction.atomic():
        # Locked for the whole decision: one agent's events are applied one at a time, in order.
        agent = Agent.objects.select_for_update().filter(crm_user_id=event.user_id).first()
        if agent is not None:
            if not _take_event_id(event_id, name):
                return _duplicate(event_id)
            return _apply_event(agent, event, occurred_at, settings, sync_connection(settings))
        if not _take_event_id(event_id, name, pending_body=body.decode("utf-8", "replace")):
            return _duplicate(event_id)
        # Robust: with the broker gone the delivery is still stored (and acknowledged); the prune
        # task re-enqueues lookups whose message was lost.
        transaction.on_commit(lambda: _enqueue_pending(event_id), robust=True)
    return WebhookResult(
        "queued", f"CRM user {event.user_id} is not known yet: looked up in the CRM, then applied, after this answer"
    )


def _enqueue_pending(event_id: str, countdown: float = 0) -> None:
    from agentstatus.tasks import apply_webhook_event_task

    apply_webhook_event_task.apply_async((event_id,), countdown=countdown)


def webhook_event_apply_pending(*, event_id: str) -> float | None:
    """Look up the unknown user of a stored delivery and apply it (A3); None when done.

    Returns the seconds until the next try when the CRM could not answer. Applying clears the
    stored body in the same transaction, so a second copy of the task finds nothing to do. Its
    order among the agent's other events is its own time (updatedAt), however late it is applied.
    """
    stored = ProcessedWebhookEvent.objects.filter(event_id=event_id).exclude(pending_body="").first()
    if stored is None:
        return None
    _, name, envelope = parse_kustomer_event(stored.pending_body.encode())
    event = parse_work_session_event(event_id, name, envelope)
    occurred_at = event.updated_at or stored.received_at
    settings = sync_settings_get()
    connection = sync_connection(settings)
    match: AgentMatch | None = None
    while True:
        with transaction.atomic():
            claimed = (
                ProcessedWebhookEvent.objects.select_for_update().filter(pk=stored.pk).exclude(pending_body="").first()
            )
            if claimed is None:
                return None
            agent = Agent.objects.select_for_update().filter(crm_user_id=event.user_id).first()
            if agent is not None or match is not None:
                ProcessedWebhookEvent.objects.filter(pk=stored.pk).update(pending_body="")
                if agent is not None:
                    _apply_event(agent, event, occurred_at, settings, connection)
                else:
                    assert match is not None
                    _record_unmatched(event, occurred_at, match)
                return None
        # Asked of the CRM outside any transaction, once per try.
        try:
            match = _resolve_crm_user(event.user_id, connection)
        except CircuitOpen as exc:
            # The CRM is down for everyone: wait out the pause, spending neither a lookup nor budget.
            ProcessedWebhookEvent.objects.filter(pk=stored.pk).update(
                lookup_paused_seconds=F("lookup_paused_seconds") + exc.wait
            )
            return circuit_pause_delay(exc)
        except StatusSyncUnavailable as exc:
            return _retry_lookup(stored, event, occurred_at, exc, connection)


def _retry_lookup(
    stored: ProcessedWebhookEvent,
    event: WorkSessionEvent,
    occurred_at: datetime,
    exc: StatusSyncUnavailable,
    connection: CrmConnection | None,
) -> float | None:
    """Ask again when the failure policy says so (within the retry budget, from the delivery's arrival)."""
    attempts = stored.lookup_attempts + 1
    failing_for = (timezone.now() - stored.received_at).total_seconds() - stored.lookup_paused_seconds
    decision = decide(exc.cause, attempt=attempts, failing_for=failing_for, policy=connection_retry_policy(connection))
    outcome = failure_outcome(decision, exc.cause, attempts=attempts, failing_for=failing_for)
    if outcome.circuit_success is not None:
        connection_circuit_record(connection, success=outcome.circuit_success)
    attempts = outcome.attempts
    if not decision.retry:
        spent = f" (the CRM kept failing for {describe_duration(failing_for)})" if decision.budget_spent else ""
        with transaction.atomic():
            if ProcessedWebhookEvent.objects.filter(pk=stored.pk).exclude(pending_body="").update(pending_body=""):
                _record_unmatched(
                    event, occurred_at, AgentMatch(None, reason=f"gave up after {attempts} lookups: {exc}{spent}")
                )
        return None
    ProcessedWebhookEvent.objects.filter(pk=stored.pk).update(lookup_attempts=attempts)
    return decision.delay


def webhook_events_pending(*, received_before: datetime) -> list[str]:
    """Stored deliveries still waiting for their user lookup (their task message may be lost)."""
    return list(
        ProcessedWebhookEvent.objects.exclude(pending_body="")
        .filter(received_at__lt=received_before)
        .values_list("event_id", flat=True)[:500]
    )


def _duplicate(event_id: str) -> WebhookResult:
    return WebhookResult("duplicate", f"event {event_id} was already received: nothing changed")


def _record_unmatched(event: WorkSessionEvent, occurred_at: datetime, match: AgentMatch) -> WebhookResult:
    status_change_record(
        agent=None,
        source=Source.CRM,
        applied=False,
        reason=match.reason,
        crm_status_ref=event.status_id,
        occurred_at=occurred_at,
        event_id=event.event_id,
        work_session_id=event.session_id,
        crm_user_id=event.user_id,
        agent_email=match.email,
    )
    return WebhookResult("unmatched", match.reason, agent_email=match.email)


# One statement, no savepoint: the unique index decides, and a redelivery is simply not inserted.
_TAKE_EVENT_ID_SQL = (
    f"INSERT INTO {ProcessedWebhookEvent._meta.db_table} "  # noqa: S608
    "(event_id, name, received_at, pending_body, lookup_attempts, lookup_paused_seconds) "
    "VALUES (%s, %s, now(), %s, 0, 0) ON CONFLICT (event_id) DO NOTHING RETURNING id"
)


def _take_event_id(event_id: str, name: str, *, pending_body: str = "") -> bool:
    """Claim the event id in the caller's transaction; False for a redelivery (even a concurrent one)."""
    with db_connection.cursor() as cursor:
        cursor.execute(_TAKE_EVENT_ID_SQL, [event_id, name[:100], pending_body])
        return cursor.fetchone() is not None


def _resolve_crm_user(user_id: str, connection: CrmConnection | None) -> AgentMatch:
    """Ask the CRM who a user id is and keep the id on the agent with that email (A3)."""
    if connection is None:
        return AgentMatch(None, reason=f"no CRM connection for status sync: CRM user {user_id} cannot be matched")
    try:
        provider = connection_provider(connection)
        # CircuitOpen goes to the caller: the lookup waits, it is not a failed try.
        connection_circuit_check(connection)
        crm_agent = provider.get_agent(user_id)
    except CrmNotFound:
        # The CRM answered: as good as a success for its circuit.
        connection_circuit_record(connection, success=True)
        return AgentMatch(None, reason=f"CRM user {user_id} does not exist in the CRM")
    except (CrmUnsupported, UnknownCrmKind) as exc:
        return AgentMatch(None, reason=f"CRM user {user_id} cannot be looked up: {exc}")
    except HANDLED_ERRORS as exc:
        raise StatusSyncUnavailable(f"Could not look up CRM user {user_id}: {exc}", exc) from exc
    connection_circuit_record(connection, success=True)
    email = crm_agent.email.strip().lower()
    agent = Agent.objects.filter(email=email).only("pk").first()
    if agent is None:
        return AgentMatch(None, email, f"no agent has the email {email} of CRM user {user_id} (A3): ignored")
    Agent.objects.filter(pk=agent.pk).update(crm_user_id=user_id, updated_at=timezone.now())
    return AgentMatch(agent.pk, email, f"{email} matched, but its CRM user id changed meanwhile: ignored")


def _apply_event(
    agent: Agent,
    event: WorkSessionEvent,
    occurred_at: datetime,
    settings: StatusSyncSettings,
    connection: CrmConnection | None,
) -> WebhookResult:
    # The database's clock: pushes are stamped with it (the echo window), on whichever host.
    now = db_now()
    state = agent_state(agent)
    crm_event = rules.CrmStatusEvent(
        session_id=event.session_id,
        status_id=event.status_id,
        active=event.active,
        occurred_at=occurred_at,
        signed_in=event.signed_in,
        status_changed_hint=event.status_changed,
    )
    observation = rules.observe_instances(state.work_sessions, crm_event)
    crm_status = (
        CrmStatus.objects.select_related("platform_status")
        .filter(connection=connection, crm_id=event.status_id)
        .first()
        if connection is not None
        else None
    )
    fields = ["work_sessions", "sync_stopped", "updated_at"]
    agent.work_sessions = observation.sessions_after
    agent.sync_stopped = observation.stopped_after
    reports_status = event.signed_in or observation.status_changed
    if reports_status and not rules.is_stale_crm_event(state, crm_event):
        agent.crm_status = crm_status
        agent.crm_status_at = occurred_at
        fields += ["crm_status", "crm_status_at"]

    lookup = _lookup(crm_status, event.status_id)
    # Pushes exist only under two-way sync (a push still waiting when it was switched off is dropped
    # by the worker), so one-way sync skips looking for echoes and for pushes to supersede.
    two_way = settings.direction == SyncDirection.TWO_WAY
    status_change = observation.status_changed and not event.signed_in
    echo_of = _echo_of(agent, event.status_id, now) if two_way and status_change else None
    if echo_of is not None:
        StatusPush.objects.filter(pk=echo_of).update(echo_seen_at=now)
        decision = rules.Decision(rules.Outcome.IGNORE, f"the echo of our push #{echo_of}: not applied again")
        outcome = "echo"
    else:
        decision = rules.decide_crm_change(sync_rules(settings), state, crm_event, observation, lookup)
        outcome = {rules.Outcome.APPLY: "applied", rules.Outcome.UNCHANGED: "unchanged"}.get(
            decision.outcome, "ignored"
        )

    from_status_id = agent.platform_status_id
    if decision.applies:
        agent.platform_status_id = decision.platform_status_id
        agent.status_source = Source.CRM
        agent.status_changed_at = now
        fields += ["platform_status", "status_source", "status_changed_at"]
    if two_way and decision.outcome in (rules.Outcome.APPLY, rules.Outcome.UNCHANGED):
        # The CRM has spoken since: a platform change still waiting to be pushed would undo it.
        status_push_supersede(agent=agent)
    agent.save(update_fields=fields)

    status_change_record(
        agent=agent,
        source=Source.CRM,
        applied=decision.applies,
        reason=decision.reason,
        from_status_id=from_status_id,
        to_status_id=lookup.platform_status_id,
        crm_status=crm_status,
        crm_status_ref=event.status_id,
        mapping=decision.mapping,
        occurred_at=occurred_at,
        event_id=event.event_id,
        work_session_id=event.session_id,
    )
    if observation.transition is not None:
        stopped = observation.transition is rules.InstanceTransition.STOPPED
        status_change_record(
            agent=agent,
            source=Source.SYSTEM,
            applied=False,
            reason=(
                f"sync stopped: {rules.sync_stopped_reason(observation.sessions_after)}"
                if stopped
                else "sync resumed: one CRM instance remains (its next status change applies)"
            ),
            occurred_at=occurred_at,
            event_id=event.event_id,
            work_session_id=event.session_id,
        )
    status_name = (
        crm_status.platform_status.name if decision.applies and crm_status and crm_status.platform_status else None
    )
    return WebhookResult(outcome, decision.reason, agent_email=agent.email, platform_status=status_name)


def _lookup(crm_status: CrmStatus | None, crm_status_id: str) -> rules.MappingLookup:
    if crm_status is None:
        return rules.map_crm_status({}, {}, crm_status_id, {})
    platform = crm_status.platform_status
    return rules.map_crm_status(
        {crm_status.crm_id: crm_status.platform_status_id},
        {crm_status.crm_id: crm_status.name},
        crm_status_id,
        {platform.pk: platform.name} if platform else {},
    )


def _echo_of(agent: Agent, crm_status_id: str, now: datetime) -> int | None:
    sent = StatusPush.objects.filter(
        agent=agent, sent_at__gte=now - rules.ECHO_WINDOW, echo_seen_at__isnull=True
    ).values_list("id", "crm_status__crm_id", "sent_at")
    pushes = [rules.SentPush(push_id, crm_id, sent_at) for push_id, crm_id, sent_at in sent if sent_at is not None]
    return rules.match_echo(pushes, crm_status_id, now=now)


def webhook_events_prune(*, older_than: datetime) -> int:
    """Forget applied webhook event ids received before `older_than`; return how many."""
    deleted, _ = ProcessedWebhookEvent.objects.filter(received_at__lt=older_than, pending_body="").delete()
    return deleted
