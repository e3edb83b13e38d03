"""Reads of records: the executor's reads (the next action, the sessions on a contact's records,
a callback's original call, the CRM ids of record fields; services write, selectors read); session
states, blocked actions and health counts for the admin console (each
count a lookup on one of the outbox's partial or status indexes — action_pending, action_failed,
action_status, session_processing_failed — never a scan of all actions), and a session as the
agent's adapter sees it (ADAPTER.md).
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from integrations.exceptions import CrmConfigurationError
from integrations.models import CrmConnection
from integrations.providers.base import Record
from integrations.services import connection_provider
from records.console import SessionFacts, SessionState
from records.models import CrmAction, CustomField, Event, Session
from records.outbound import AGENT_EVENTS, event_agent_email
from records.services.screen_pop import session_answering_agent
from records.vocabulary import BLOCKING_KINDS, ActionKind, EventType

# A pending, due action nobody has touched for this long: its worker or its message was lost.
STUCK_AFTER = timedelta(minutes=10)

_FAILED = CrmAction.Status.FAILED
_PENDING = CrmAction.Status.PENDING


def _session_actions(status: str, **filters: object) -> QuerySet[CrmAction]:
    return CrmAction.objects.filter(session_id=OuterRef("pk"), status=status, **filters).order_by("id")


def sessions_with_facts(queryset: QuerySet[Session]) -> QuerySet[Session]:
    """Annotate what records.console.session_state needs, one indexed subquery each."""
    return queryset.annotate(
        first_pending_id=Subquery(_session_actions(_PENDING).values("id")[:1]),
        first_failed_blocking_id=Subquery(_session_actions(_FAILED, kind__in=BLOCKING_KINDS).values("id")[:1]),
        first_failed_id=Subquery(_session_actions(_FAILED).values("id")[:1]),
        has_unapplied=Exists(Event.objects.filter(session_id=OuterRef("pk"), applied_at__isnull=True)),
    )


def session_facts(session: Session) -> SessionFacts:
    """The facts of a session annotated by sessions_with_facts (or read now if it was not)."""
    if not hasattr(session, "first_pending_id"):
        session = sessions_with_facts(Session.objects.filter(pk=session.pk)).get()
    return SessionFacts(
        processing_failed=session.processing_attempts > 0,
        ended=session.ended_at is not None,
        unapplied_events=bool(session.has_unapplied),  # type: ignore[attr-defined]  # annotation
        pending_action_id=session.first_pending_id,  # type: ignore[attr-defined]  # annotation
        failed_blocking_action_id=session.first_failed_blocking_id,  # type: ignore[attr-defined]  # annotation
        failed_action_id=session.first_failed_id,  # type: ignore[attr-defined]  # annotation
    )


def sessions_in_state(queryset: QuerySet[Session], state: str) -> QuerySet[Session]:
    """The sessions records.console.session_state puts in `state`, as one database condition."""
    pending = Exists(_session_actions(_PENDING))
    failed = Exists(_session_actions(_FAILED))
    failed_blocking = Exists(_session_actions(_FAILED, kind__in=BLOCKING_KINDS))
    unapplied = Exists(Event.objects.filter(session_id=OuterRef("pk"), applied_at__isnull=True))
    processing_failed = Q(processing_attempts__gt=0)
    conditions = {
        SessionState.FAILED: processing_failed | (failed & ~pending & ~unapplied),
        SessionState.BLOCKED: ~processing_failed & pending & failed_blocking,
        SessionState.IN_PROGRESS: ~processing_failed & ((pending & ~failed_blocking) | (~pending & unapplied)),
        SessionState.WAITING: ~processing_failed & ~pending & ~unapplied & ~failed & Q(ended_at__isnull=True),
        SessionState.DONE: ~processing_failed & ~pending & ~unapplied & ~failed & Q(ended_at__isnull=False),
    }
    return queryset.filter(conditions[state])


def actions_with_blocker(queryset: QuerySet[CrmAction]) -> QuerySet[CrmAction]:
    """Annotate each action with the failed contact or record action before it that holds it back."""
    blocker = CrmAction.objects.filter(
        session_id=OuterRef("session_id"), status=_FAILED, kind__in=BLOCKING_KINDS, id__lt=OuterRef("id")
    ).order_by("id")
    return queryset.annotate(
        blocked_by_id=Subquery(blocker.values("id")[:1]), blocked_by_kind=Subquery(blocker.values("kind")[:1])
    )


@dataclass(frozen=True)
class RecordsHealth:
    failed_actions: int
    pending_actions: int
    stuck_actions: int
    failed_sessions: int
    blocked_sessions: int
    processing_failed_sessions: int


def records_health(*, connection: CrmConnection | None = None, now: datetime | None = None) -> RecordsHealth:
    """Counts for the health panel, for one connection or all of them."""
    now = now or timezone.now()
    actions = CrmAction.objects.all()
    sessions = Session.objects.all()
    if connection is not None:
        actions = actions.filter(session__crm_connection=connection)
        sessions = sessions.filter(crm_connection=connection)
    failed = actions.filter(status=_FAILED)
    pending = actions.filter(status=_PENDING)
    stuck = pending.filter(updated_at__lt=now - STUCK_AFTER).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    failing_sessions = failed.values("session_id").distinct()
    blocked = pending.filter(session_id__in=failed.filter(kind__in=BLOCKING_KINDS).values("session_id"))
    return RecordsHealth(
        failed_actions=failed.count(),
        pending_actions=pending.count(),
        stuck_actions=stuck.count(),
        failed_sessions=failing_sessions.count(),
        blocked_sessions=blocked.values("session_id").distinct().count(),
        processing_failed_sessions=sessions.filter(processing_attempts__gt=0).count(),
    )


def failed_actions(*, connection: CrmConnection, since: datetime, until: datetime) -> QuerySet[CrmAction]:
    """The connection's actions that failed (last changed) in the window, in session order."""
    return CrmAction.objects.filter(
        status=_FAILED, updated_at__gte=since, updated_at__lte=until, session__crm_connection=connection
    ).order_by("session_id", "id")


@dataclass(frozen=True)
class AdapterSession:
    session_id: str
    channel: str
    session_type: str
    phone_number: str
    record_id: str | None
    record_url: str | None
    contact_id: str | None
    answering_agent: str
    ended: bool
    actions: tuple[CrmAction, ...]


def session_agent_emails(session: Session) -> set[str]:
    """Every agent the session's events name: assigned, connected, transferred to, or who placed it."""
    emails = set()
    for data in session.events.filter(type__in=AGENT_EVENTS).values_list("data", flat=True):
        emails |= {event_agent_email(data, "agent"), event_agent_email(data, "to_agent")}
    return emails - {""}


def adapter_session_get(*, session_id: str, agent_email: str) -> AdapterSession | None:
    """The session, if this agent took part in it (assigned, connected, transferred to, or placed it)."""
    session = Session.objects.select_related("crm_connection").filter(external_id=session_id).first()
    if session is None or agent_email.lower() not in session_agent_emails(session):
        return None
    record_url = None
    if session.crm_record_id and session.crm_connection is not None:
        try:
            provider = connection_provider(session.crm_connection)
            record = Record(
                id=session.crm_record_id, subject="", status="", requester_id=session.crm_contact_id or None
            )
            record_url = provider.record_web_url(record)
        except CrmConfigurationError:
            record_url = None
    return AdapterSession(
        session_id=session.external_id,
        channel=session.channel,
        session_type=session.session_type,
        phone_number=session.phone_number,
        record_id=session.crm_record_id or None,
        record_url=record_url,
        contact_id=session.crm_contact_id or None,
        answering_agent=session_answering_agent(session),
        ended=session.ended_at is not None,
        actions=tuple(session.actions.order_by("id")),
    )


# -- The executor's reads (records.services.execution writes) -------------------------------------


def session_next_action(session_id: int) -> CrmAction | None:
    """The session's first pending action, unless a failed action it depends on stands before it."""
    action = CrmAction.objects.filter(session_id=session_id, status=_PENDING).order_by("id").first()
    if action is None:
        return None
    blocked = CrmAction.objects.filter(
        session_id=session_id, status=_FAILED, kind__in=BLOCKING_KINDS, id__lt=action.id
    ).exists()
    return None if blocked else action


def session_display_ahead(session_id: int) -> CrmAction | None:
    """The session's pending screen-pop display (O4) that need not wait while an earlier action waits
    in a batch (B1): it opens the record on the agent's screen and changes nothing on it."""
    return (
        CrmAction.objects.filter(
            session_id=session_id, status=_PENDING, kind=ActionKind.DISPLAY_RECORD, batch__isnull=True
        )
        .order_by("id")
        .first()
    )


def action_companion_update(action: CrmAction) -> CrmAction | None:
    """The update_record planned for the same event right after this add_comment, when it is due.

    An event's comment and its record update (call ended, CSAT, SmartAction, voicemail closed) then
    share one CRM write.
    """
    if action.kind != ActionKind.ADD_COMMENT or action.event_id is None:
        return None
    following = CrmAction.objects.filter(session_id=action.session_id, id__gt=action.id).order_by("id").first()
    if following is None or following.kind != ActionKind.UPDATE_RECORD or following.event_id != action.event_id:
        return None
    if following.status != _PENDING or following.next_attempt_at is not None:
        # One that failed or waits on its own (an earlier attempt without the comment) keeps its own course.
        return None
    return following


def session_made_its_contact(*, session: Session, marker: str) -> bool:
    """Whether the session's ensure_contact created its CRM contact (its result carries `marker`) and no
    other session of ours is linked to that contact since.

    A second session of the same new caller may have linked the contact meanwhile (a concurrent
    call); once it has a record, that record is on the contact, so then the contact's records are
    read. One still without a record has none to find there: it reads the contact's records itself
    when it makes its own.
    """
    created = CrmAction.objects.filter(
        session=session,
        kind=ActionKind.ENSURE_CONTACT,
        status=CrmAction.Status.SUCCEEDED,
        **{f"result__{marker}": True},
    ).exists()
    if not created:
        return False
    others = Session.objects.filter(crm_connection_id=session.crm_connection_id, crm_contact_id=session.crm_contact_id)
    return not others.exclude(pk=session.pk).exclude(crm_record_id="").exists()


@dataclass(frozen=True)
class CallerContact:
    """The contact a caller's earlier session linked, and that session's id (for the action's reason)."""

    contact_id: str
    session_external_id: str


def session_caller_contact(*, session: Session, phone: str, key: str, links: Collection[str]) -> CallerContact | None:
    """The contact our latest other session from this phone linked, when that session's ensure_contact
    says (its result's `key` is one of `links`) it linked it beyond doubt."""
    latest = (
        CrmAction.objects.filter(
            kind=ActionKind.ENSURE_CONTACT,
            status=CrmAction.Status.SUCCEEDED,
            session__phone_number=phone,
            session__crm_connection_id=session.crm_connection_id,
        )
        .exclude(session_id=session.pk)
        .exclude(session__crm_contact_id="")
        .order_by("-session__created_at", "-id")
        .values("result", "session__crm_contact_id", "session__external_id")
        .first()
    )
    if latest is None or (latest["result"] or {}).get(key) not in links:
        return None
    return CallerContact(
        contact_id=latest["session__crm_contact_id"], session_external_id=latest["session__external_id"]
    )


def session_contact_action(session: Session) -> CrmAction | None:
    """The session's succeeded ensure_contact: how it came to its contact."""
    return (
        CrmAction.objects.filter(session=session, kind=ActionKind.ENSURE_CONTACT, status=CrmAction.Status.SUCCEEDED)
        .order_by("-id")
        .first()
    )


def sessions_latest_by_record(
    *, connection_id: int | None, record_ids: list[str], exclude_id: int
) -> dict[str, Session]:
    """For each of these CRM records, our latest other session on it (what it knew: queue, menu, channel)."""
    linked = (
        Session.objects.filter(crm_connection_id=connection_id, crm_record_id__in=record_ids)
        .exclude(pk=exclude_id)
        .order_by("crm_record_id", "-created_at")
        .distinct("crm_record_id")
    )
    return {other.crm_record_id: other for other in linked}


@dataclass(frozen=True)
class OriginalCall:
    """What a callback's planning needs of the call it returns (R6): its record and its length."""

    record_id: str = ""
    call_seconds: float | None = None


def session_original_call(external_id: str) -> OriginalCall:
    """The record and the length of the session with this id; empty when there is none."""
    original = Session.objects.filter(external_id=external_id).first()
    if original is None:
        return OriginalCall()
    ended = original.events.filter(type=EventType.SESSION_ENDED).first()
    duration = ended.data.get("call_duration") if ended else None
    return OriginalCall(
        record_id=original.crm_record_id,
        call_seconds=float(duration) if isinstance(duration, int | float) else None,
    )


def custom_field_crm_ids(*, connection_id: int | None, keys: Iterable[str]) -> dict[str, str]:
    """The CRM field id of each record field (F2 key) created in this connection's CRM (F1)."""
    return dict(
        CustomField.objects.filter(connection_id=connection_id, key__in=list(keys)).values_list("key", "crm_field_id")
    )
