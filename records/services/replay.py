"""Bulk replay after a CRM outage: retry a connection's failed actions of a time window, in order.

Replaying is only a Retry of many actions at once: each action goes back to pending and its
session's worker runs it, so the executor's guarantees hold (session order, a retried create looks
up what an earlier attempt made, never a second record).
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Count, F, Min

from integrations.models import CrmConnection
from records.console import ErrorGroup, SessionState, group_errors, session_state
from records.models import CrmAction, Replay, Session
from records.selectors import failed_actions, session_facts, sessions_with_facts


@dataclass(frozen=True)
class ReplayPreview:
    actions: int
    sessions: int
    groups: list[ErrorGroup]


def replay_preview(*, connection: CrmConnection, since: datetime, until: datetime) -> ReplayPreview:
    """How many actions failed in the window, in how many sessions, and why (grouped by error)."""
    failed = failed_actions(connection=connection, since=since, until=until)
    rows = list(failed.values_list("id", "last_error"))
    return ReplayPreview(
        actions=len(rows),
        sessions=failed.values("session_id").distinct().count(),
        groups=group_errors(rows),
    )


@transaction.atomic
def replay_start(*, connection: CrmConnection, since: datetime, until: datetime, requested_by: str = "") -> Replay:
    """Put the window's failed actions back to pending and run their sessions, oldest failure first."""
    from records.tasks import run_session_actions_task

    failed = failed_actions(connection=connection, since=since, until=until).select_for_update(of=("self",))
    action_ids = list(failed.values_list("id", flat=True))
    # Sessions in the order their first failed action was written: the outage's order.
    session_ids = list(
        CrmAction.objects.filter(id__in=action_ids)
        .values("session_id")
        .annotate(first=Min("id"))
        .order_by("first")
        .values_list("session_id", flat=True)
    )
    # As action_retry does for one: pending again, with the full number of attempts again.
    CrmAction.objects.filter(id__in=action_ids).update(
        status=CrmAction.Status.PENDING, next_attempt_at=None, attempts_before_retry=F("attempts")
    )
    replay = Replay.objects.create(
        connection=connection,
        since=since,
        until=until,
        action_ids=action_ids,
        session_count=len(session_ids),
        requested_by=requested_by,
    )

    def enqueue() -> None:
        for session_id in session_ids:
            run_session_actions_task.delay(session_id)

    transaction.on_commit(enqueue, robust=True)
    return replay


@dataclass(frozen=True)
class ReplayProgress:
    total: int
    succeeded: int
    failed: int
    pending: int
    sessions: int
    # Sessions by state (records.console.SessionState), once their actions have run.
    sessions_by_state: dict[str, int]

    @property
    def finished(self) -> bool:
        return self.pending == 0

    @property
    def percent(self) -> int:
        return 100 if not self.total else round(100 * (self.total - self.pending) / self.total)


def replay_progress(*, replay: Replay) -> ReplayProgress:
    """Where the replayed actions are now, and how their sessions stand."""
    counts = dict(
        CrmAction.objects.filter(id__in=replay.action_ids)
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    session_ids = CrmAction.objects.filter(id__in=replay.action_ids).values("session_id")
    by_state: dict[str, int] = {}
    for session in sessions_with_facts(Session.objects.filter(id__in=session_ids)):
        state = session_state(session_facts(session)).state
        by_state[state] = by_state.get(state, 0) + 1
    return ReplayProgress(
        total=len(replay.action_ids),
        succeeded=counts.get(CrmAction.Status.SUCCEEDED, 0) + counts.get(CrmAction.Status.SKIPPED, 0),
        failed=counts.get(CrmAction.Status.FAILED, 0),
        pending=counts.get(CrmAction.Status.PENDING, 0),
        sessions=replay.session_count,
        sessions_by_state={label: by_state.get(key, 0) for key, label in SessionState.CHOICES if by_state.get(key)},
    )
