"""Screen pop (SPEC O4, ADAPTER.md "Screen pop"): the answering agent's adapter learns the session's record.

A `ScreenPop` row is made as soon as a session has its record and an answering agent (after the
record action links it, and after a connection or transfer of a session that has one). The row
wakes the agent's long poll through Redis; where the CRM can open the record on the agent's
screen itself (Zendesk Talk Partner Edition), a `display_record` CRM action is planned with it,
keyed by session, agent and record, so the CRM is asked once per pop.
"""

import logging
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.exceptions import CrmConfigurationError
from integrations.providers.base import CrmProvider, Record
from integrations.services import connection_provider
from records.models import CrmAction, ScreenPop, Session
from records.outbound import AGENT_EVENTS, answering_agent
from records.rules import DisplayRecord

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "crmbridge:screen-pop:"
# A pop of an ended session made longer ago than this is no longer the agent's current session.
ENDED_SESSION_GRACE = timedelta(minutes=2)
# The long poll looks at the database this often even without a Redis wake-up (a lost message).
RECHECK_SECONDS = 1.0
MAX_WAIT_SECONDS = 60


def _channel(agent_email: str) -> str:
    return f"{CHANNEL_PREFIX}{agent_email.lower()}"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def session_answering_agent(session: Session) -> str:
    events = (
        session.events.filter(applied_at__isnull=False, type__in=AGENT_EVENTS)
        .order_by("occurred_at", "id")
        .values_list("type", "data")
    )
    return answering_agent(session.channel, list(events))


def screen_pop_refresh(
    *, session: Session, provider: CrmProvider | None = None, record_id: str = ""
) -> ScreenPop | None:
    """Make the pop the session's answering agent is due, if it has a record and none was made yet.

    `record_id`: the record the session is being appended to, before the session is linked to it
    (an append waiting in a batch, B1): the record exists, so the agent is shown it at once.
    """
    record_id = record_id or session.crm_record_id
    if not record_id or session.crm_connection_id is None:
        return None
    agent_email = session_answering_agent(session)
    if not agent_email:
        return None
    if ScreenPop.objects.filter(session=session, agent_email=agent_email, record_id=record_id).exists():
        return None
    if provider is None:
        try:
            assert session.crm_connection is not None
            provider = connection_provider(session.crm_connection)
        except CrmConfigurationError as exc:
            logger.warning("records.screen-pop.no-provider %s: %s", session.pk, exc)
            return None
    record = Record(id=record_id, subject="", status="", requester_id=session.crm_contact_id or None)
    try:
        with transaction.atomic():
            pop = ScreenPop.objects.create(
                session=session,
                agent_email=agent_email,
                record_id=record_id,
                record_url=provider.record_web_url(record) or "",
                contact_id=session.crm_contact_id,
                channel=session.channel,
            )
            if provider.supports_screen_pop_display:
                _plan_display(session, pop)
    except IntegrityError:
        # Another worker made the same pop a moment ago.
        return None
    transaction.on_commit(lambda: _notify(agent_email), robust=True)
    return pop


def _plan_display(session: Session, pop: ScreenPop) -> None:
    from records.tasks import run_session_actions_task

    CrmAction.objects.get_or_create(
        idempotency_key=f"{session.pk}:display:{pop.agent_email}:{pop.record_id}",
        defaults={
            "session": session,
            "kind": DisplayRecord.KIND,
            "payload": DisplayRecord(agent_email=pop.agent_email, record_id=pop.record_id).to_json(),
            "rule": "O4",
            "reason": f"screen pop: open record {pop.record_id} on {pop.agent_email}'s screen in the CRM",
        },
    )
    transaction.on_commit(lambda: run_session_actions_task.delay(session.pk), robust=True)


def _notify(agent_email: str) -> None:
    try:
        _redis().publish(_channel(agent_email), b"1")
    except redis.RedisError as exc:
        # The long poll re-reads the database every second: a lost wake-up costs at most that.
        logger.warning("records.screen-pop.notify-failed %s", exc)


# The newest pops looked at per poll: an agent has a handful of sessions at a time, not hundreds.
NEWEST_POPS = 20


def _newest(agent_email: str, after: int | None) -> ScreenPop | None:
    """The agent's newest pop of a current session (newer than `after`), its first delivery noted.

    Nothing is consumed: a poll the agent's closed tab left waiting on the server cannot take a pop
    from the tab that replaced it, and a panel opened mid-call shows the call's record at once.
    Two one-table reads rather than a join: a poll runs every second, and a join's locks taken in
    its own order could deadlock with a TRUNCATE of both tables (a test's flush).
    """
    pops = ScreenPop.objects.filter(agent_email=agent_email.lower())
    if after is not None:
        pops = pops.filter(id__gt=after)
    candidates = list(pops.order_by("-id")[:NEWEST_POPS])
    if not candidates:
        return None
    ended = dict(Session.objects.filter(pk__in={pop.session_id for pop in candidates}).values_list("pk", "ended_at"))
    # Current: the session goes on, or its record came just now (an end-of-call pick, S5, makes it
    # late; the platform's clock for the end is not ours, so the pop's own time decides).
    recent = timezone.now() - ENDED_SESSION_GRACE
    pop = next(
        (
            pop
            for pop in candidates
            if pop.session_id in ended and (ended[pop.session_id] is None or pop.created_at >= recent)
        ),
        None,
    )
    if pop is not None and pop.delivered_at is None:
        pop.delivered_at = timezone.now()
        ScreenPop.objects.filter(id=pop.id, delivered_at__isnull=True).update(delivered_at=pop.delivered_at)
    return pop


def screen_pop_wait(*, agent_email: str, wait_seconds: float, after: int | None = None) -> ScreenPop | None:
    """Long poll: the agent's current pop newer than `after` as soon as it exists, or None after `wait_seconds`.

    Without `after` the current pop answers at once; with none, the poll waits for the next one.
    """
    pop = _newest(agent_email, after)
    if pop is not None or wait_seconds <= 0:
        return pop
    if after is None:
        after = (
            ScreenPop.objects.filter(agent_email=agent_email.lower())
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
            or 0
        )
    deadline = time.monotonic() + min(wait_seconds, MAX_WAIT_SECONDS)
    pubsub = None
    try:
        pubsub = _redis().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(_channel(agent_email))
    except redis.RedisError as exc:
        logger.warning("records.screen-pop.subscribe-failed %s", exc)
        pubsub = None
    try:
        while True:
            # Checked after subscribing too: a pop made in between would otherwise wait a second.
            pop = _newest(agent_email, after)
            remaining = deadline - time.monotonic()
            if pop is not None or remaining <= 0:
                return pop
            step = min(remaining, RECHECK_SECONDS)
            if pubsub is None:
                time.sleep(step)
                continue
            try:
                pubsub.get_message(timeout=step)
            except redis.RedisError:
                pubsub = None
    finally:
        if pubsub is not None:
            pubsub.close()
