"""B1, batching across sessions: comments and record updates of all sessions sent to the CRM together.

With the connection's batching on, a due add_comment or update_record (or an event's comment and
update, one write) of a session whose record exists is not sent by the session's worker: its
write is composed there (agent id, field ids) and stored on the action, which joins the
connection's open batch (`CrmBatch`, in PostgreSQL) and stays pending; the session's later actions
wait behind it. So does a repeat caller's append (the record action of a session whose caller's
open record was found: its comment, reopening, assignee, tags and fields in one write,
`record_append_buffer`); the session is linked to that record when the flush has written it, and
its agent's screen pop is made at once, as the record exists. A record action that creates the
record is never batched. A flush (`batch_flush`, the Celery task records.flush_batch) sends the open batch
once its interval is up: one request for up to `batch_max_items` records (Zendesk's update_many),
then reads the job until it is done. Each action is concluded only by its own record's result: a
success is a success, a failure goes through the one failure policy on its own.

Exactly once:
- the job id is saved before the job is read: a worker that dies after sending resumes reading;
- a send whose answer is lost (no job id, or a batch left "sending" by a dead worker) releases its
  actions to the failure policy; their retry runs unbatched and looks at the record first, as every
  retried comment does (`_has_comment`);
- one write per record a flush (records.batching.flush_selection): the next waits for the next.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Greatest, Now

from integrations.exceptions import CrmNotFound, CrmRequestError, CrmTransientError
from integrations.failures import HANDLED_ERRORS, decide
from integrations.models import CrmConnection
from integrations.providers.base import BatchJob, BatchUpdate, Capability, Comment, CrmProvider, RecordChanges
from integrations.services import connection_provider, connection_retry_policy, custom_field_ids_recent
from records.batching import (
    BatchItem,
    WriteToBatch,
    batch_eligible,
    flush_selection,
    pairs_comment_with_update,
    poll_delay,
)
from records.models import CrmAction, CrmBatch, Session
from records.rules import AddComment, UpdateRecord, action_payload
from records.services import execution
from records.services.leases import db_now, db_now_plus
from records.services.screen_pop import screen_pop_refresh

logger = logging.getLogger(__name__)

# The key of an action's `progress` that holds its buffered write (BatchedWrite.to_json()).
BATCHED = "batched"
# A batch "sending" for longer than this (the request's timeout, twice, and a margin) was left by a
# worker that died mid-request: its answer is lost, and its actions are looked at before resending.
SEND_STALE_MARGIN_SECONDS = 30.0
# How long a sent batch's job is read while the CRM cannot be reached before it is taken as lost
# (Zendesk keeps job results about a day).
POLL_GIVE_UP_SECONDS = 3600.0
# A due batch the broker's message has not flushed after this is flushed by the sweep.
SWEEP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class UpdateSummary:
    """What an update_record's outcome says, composed when it was buffered (the fields counted at the send)."""

    assigned_to: str = ""
    status: str = ""
    notes: tuple[str, ...] = ()
    # Set when the update changes nothing (its outcome is final, no request for it).
    unchanged: str = ""


@dataclass(frozen=True)
class BatchedWrite:
    """What the flush sends for one lead action, and what it then says on its actions."""

    record_id: str
    changes: RecordChanges
    # The update_record of the same event, concluded by the same write.
    companion_id: int | None = None
    # Whether the lead is an add_comment (else it is the update itself).
    has_comment: bool = True
    update: UpdateSummary | None = None
    # The record fields the CRM turned out not to have when the batch was sent (F1).
    lost_notes: tuple[str, ...] = ()
    # Set when the lead is a record action appending the session to this record: the rules' choice
    # of the record, said in its outcome; the flush links the session to the record.
    record_decision: str = ""

    def to_json(self) -> dict[str, Any]:
        comment = self.changes.comment
        update = self.update
        return {
            "record_id": self.record_id,
            "status": self.changes.status,
            "assignee_id": self.changes.assignee_id,
            "add_tags": list(self.changes.add_tags),
            "comment": None if comment is None else {"body": comment.body, "public": comment.public},
            "custom_fields": dict(self.changes.custom_fields),
            "companion_id": self.companion_id,
            "has_comment": self.has_comment,
            "update": None
            if update is None
            else {
                "assigned_to": update.assigned_to,
                "status": update.status,
                "notes": list(update.notes),
                "unchanged": update.unchanged,
            },
            "lost_notes": list(self.lost_notes),
            "record_decision": self.record_decision,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BatchedWrite":
        comment = data.get("comment")
        update = data.get("update")
        return cls(
            record_id=str(data["record_id"]),
            changes=RecordChanges(
                status=data.get("status"),
                assignee_id=data.get("assignee_id"),
                add_tags=tuple(data.get("add_tags") or ()),
                comment=None if comment is None else Comment(body=comment["body"], public=bool(comment["public"])),
                custom_fields=dict(data.get("custom_fields") or {}),
            ),
            companion_id=data.get("companion_id"),
            has_comment=bool(data.get("has_comment", True)),
            update=None
            if update is None
            else UpdateSummary(
                assigned_to=update.get("assigned_to", ""),
                status=update.get("status", ""),
                notes=tuple(update.get("notes") or ()),
                unchanged=update.get("unchanged", ""),
            ),
            lost_notes=tuple(data.get("lost_notes") or ()),
            record_decision=str(data.get("record_decision") or ""),
        )

    def results(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The results of the lead action and of its companion ({} without one), as the unbatched path words them."""
        if self.record_decision:
            outcome = "; ".join([self.record_decision, *self.lost_notes]) + "; sent in a batch"
            return {"record_id": self.record_id, "outcome": outcome, "decision": self.record_decision}, {}
        update_result: dict[str, Any] = {}
        if self.update is not None:
            if self.update.unchanged:
                outcome = self.update.unchanged
            else:
                fields = len(self.changes.custom_fields)
                done = [self.update.assigned_to, f"{fields} field(s) set" if fields else "", self.update.status]
                parts = [item for item in done if item] + list(self.update.notes) + list(self.lost_notes)
                together = "; in one update with the comment before it" if self.has_comment else ""
                outcome = "; ".join(parts) + together + "; sent in a batch"
            update_result = {"record_id": self.record_id, "outcome": outcome}
        if not self.has_comment:
            return update_result, {}
        paired = self.update is not None and not self.update.unchanged
        comment = "added, in one update with the record's changes" if paired else "added"
        return {"record_id": self.record_id, "outcome": f"{comment}, sent in a batch"}, update_result


# -- Buffering (in the session's worker) ------------------------------------------------------------


def action_buffer(
    *, provider: CrmProvider, session: Session, action: CrmAction, companion: CrmAction | None, retried: bool
) -> bool:
    """Put the action's write (with its companion update's) in the connection's open batch, if B1 says so.

    False: the action is to be written now, as without batching. True: it waits, pending, for the
    flush, which concludes it (and the companion) from the CRM's result for its record.
    """
    if not provider.can(Capability.BATCHING) or session.crm_connection is None:
        return False
    payloads = [action_payload(action.kind, action.payload)]
    if companion is not None:
        payloads.append(action_payload(companion.kind, companion.payload))
    comment = next((payload for payload in payloads if isinstance(payload, AddComment)), None)
    update = next((payload for payload in payloads if isinstance(payload, UpdateRecord)), None)
    write = WriteToBatch(
        kinds=tuple(str(a.kind) for a in (action, companion) if a is not None),
        has_record=bool(session.crm_record_id),
        retried=retried,
        has_attachment=comment is not None and comment.attachment is not None,
    )
    batching = provider.batch_settings()
    if not batch_eligible(batching, write):
        return False
    buffered = _compose(provider, session, comment, update, companion)
    if buffered is None:
        return False
    _join_batch(session.crm_connection, batching.interval_seconds, action, buffered, companion)
    return True


def pairs_with_companion(provider: CrmProvider) -> bool:
    """Whether an add_comment is written with its event's update (records.batching.pairs_comment_with_update)."""
    return pairs_comment_with_update(provider.batch_settings(), update_writes_comment=provider.update_writes_comment)


def record_append_buffer(
    *,
    provider: CrmProvider,
    session: Session,
    action: CrmAction,
    record_id: str,
    changes: RecordChanges,
    decision: str,
    extra_comments: bool,
    retried: bool,
) -> bool:
    """Put a record action's append to an existing record (`changes`: its comment, reopening,
    assignee, tags and fields) in the connection's open batch, if B1 says so.

    False: the append is written now. True: it waits, pending, for the flush, which links the
    session to `record_id` and concludes the action from the CRM's result for that record. Only an
    append: record creation is never batched.
    """
    if not provider.can(Capability.BATCHING) or session.crm_connection is None:
        return False
    write = WriteToBatch(
        kinds=(str(action.kind),),
        has_record=bool(record_id),
        retried=retried,
        has_attachment=changes.comment is not None and bool(changes.comment.attachments),
        appends=True,
        extra_comments=extra_comments,
    )
    batching = provider.batch_settings()
    if not batch_eligible(batching, write):
        return False
    buffered = BatchedWrite(record_id, changes, record_decision=decision)
    _join_batch(session.crm_connection, batching.interval_seconds, action, buffered, None)
    return True


def _join_batch(
    connection: CrmConnection,
    interval_seconds: float,
    action: CrmAction,
    buffered: BatchedWrite,
    companion: CrmAction | None,
) -> None:
    with transaction.atomic():
        batch, created = _open_batch(connection, interval_seconds)
        action.batch = batch
        action.progress = {**action.progress, BATCHED: buffered.to_json()}
        action.next_attempt_at = None
        action.save(update_fields=["batch", "progress", "next_attempt_at", "updated_at"])
        if companion is not None:
            CrmAction.objects.filter(pk=companion.pk).update(batch=batch, updated_at=Now())
        if created:
            _enqueue_flush(batch.pk, countdown=float(interval_seconds))


def _compose(
    provider: CrmProvider,
    session: Session,
    comment: AddComment | None,
    update: UpdateRecord | None,
    companion: CrmAction | None,
) -> BatchedWrite | None:
    """The write as the unbatched path would make it; None when it changes nothing (no request then)."""
    record_id = session.crm_record_id
    changes = RecordChanges(comment=None if comment is None else execution.comment_of(comment))
    summary = None
    if update is not None:
        draft = execution.update_compose(provider, session, update)
        if draft.changes_nothing:
            if comment is None:
                return None
            summary = UpdateSummary(unchanged=execution.update_unchanged(session, update, draft)["outcome"])
        else:
            changes = RecordChanges(
                status=draft.status,
                assignee_id=draft.assignee_id,
                comment=changes.comment,
                custom_fields=draft.fields,
            )
            summary = UpdateSummary(
                assigned_to=f"assigned to {update.assignee_email}" if draft.assignee_id else "",
                status=f"status {draft.status}" if draft.status else "",
                notes=draft.notes,
            )
    return BatchedWrite(
        record_id,
        changes,
        companion_id=None if companion is None else companion.pk,
        has_comment=comment is not None,
        update=summary,
    )


def _open_batch(connection: CrmConnection, interval_seconds: float) -> tuple[CrmBatch, bool]:
    """The connection's open batch, locked until the caller's commit; made when there is none (True)."""
    for _ in range(3):
        batch = CrmBatch.objects.select_for_update().filter(connection=connection, state=CrmBatch.State.OPEN).first()
        if batch is not None:
            return batch, False
        try:
            with transaction.atomic():
                batch = CrmBatch.objects.create(connection=connection, due_at=db_now_plus(interval_seconds))
            return batch, True
        except IntegrityError:
            # Another worker opened it meanwhile: join that one.
            continue
    raise CrmTransientError("the connection's open batch kept changing: tried again later")


def _enqueue_flush(batch_id: int, *, countdown: float) -> None:
    from records.tasks import flush_batch_task

    transaction.on_commit(lambda: flush_batch_task.apply_async((batch_id,), countdown=countdown), robust=True)


# -- Flushing --------------------------------------------------------------------------------------


def batch_flush(*, batch_id: int, force: bool = False) -> float | None:
    """One step of the batch: send it once due, else read its job once; seconds until the next step, or None.

    `force` sends an open batch before it is due, and reads a sent one's job without waiting.
    """
    with transaction.atomic():
        batch = CrmBatch.objects.select_for_update().select_related("connection").filter(pk=batch_id).first()
        if batch is None or batch.state == CrmBatch.State.DONE:
            return None
        now = db_now()
        if batch.state == CrmBatch.State.OPEN:
            if batch.due_at > now and not force:
                return (batch.due_at - now).total_seconds()
            leads = _take_items(batch)
            if not leads:
                _finish(batch, "")
                return None
            batch.state, batch.sent_at = CrmBatch.State.SENDING, now
            batch.save(update_fields=["state", "sent_at"])
        elif batch.state == CrmBatch.State.SENDING:
            assert batch.sent_at is not None
            stale = batch.sent_at + timedelta(seconds=_send_stale_seconds())
            if stale > now:
                return (stale - now).total_seconds()
            # The worker that sent it died before saving the job id: what the CRM did is unknown.
            _release_all(batch, CrmTransientError("the batch was sent, but its answer was lost"))
            return None
        elif batch.next_poll_at is not None and batch.next_poll_at > now and not force:
            return (batch.next_poll_at - now).total_seconds()
        else:
            leads = []
    if batch.state == CrmBatch.State.SENDING:
        return _send(batch, leads)
    return _poll(batch)


def _send_stale_seconds() -> float:
    return 2 * float(settings.CRM_HTTP_TIMEOUT_SECONDS) + SEND_STALE_MARGIN_SECONDS


def _take_items(batch: CrmBatch) -> list[CrmAction]:
    """The batch's leads one flush sends (records.batching.flush_selection); the rest go to a new open batch."""
    leads, items = [], []
    for action in batch.actions.filter(status=CrmAction.Status.PENDING).order_by("id"):
        if BATCHED in action.progress:
            leads.append(action)
            items.append(BatchItem(action.pk, str(action.progress[BATCHED]["record_id"])))
        elif not CrmAction.objects.filter(batch=batch, progress__batched__companion_id=action.pk).exists():
            # Neither a lead nor a lead's companion (an admin's Retry cleared its write): it runs on its own.
            _release(action)
    provider = connection_provider(batch.connection)
    chosen, left = flush_selection(items, max_items=max(1, provider.batch_max_items))
    if left:
        later = {item.action_id for item in left}
        # Records already in this flush wait for the next; records past the request's limit go at once.
        capped = len(chosen) >= provider.batch_max_items
        interval = 0.0 if capped else float(provider.batch_settings().interval_seconds)
        batch.state = CrmBatch.State.SENDING  # frees the connection's one open batch for the leftovers
        batch.save(update_fields=["state"])
        successor, created = _open_batch(batch.connection, interval)
        moved = [lead for lead in leads if lead.pk in later]
        companions = [companion for lead in moved if (companion := _companion_id(lead)) is not None]
        CrmAction.objects.filter(pk__in=[lead.pk for lead in moved] + companions).update(batch=successor)
        if created:
            _enqueue_flush(successor.pk, countdown=interval)
    chosen_ids = {item.action_id for item in chosen}
    return [lead for lead in leads if lead.pk in chosen_ids]


def _companion_id(lead: CrmAction) -> int | None:
    value = lead.progress.get(BATCHED, {}).get("companion_id")
    return int(value) if value is not None else None


def _send(batch: CrmBatch, leads: Sequence[CrmAction]) -> float | None:
    """The one request; the job id saved before anything else is done with it."""
    provider = connection_provider(batch.connection)
    try:
        writes = _without_lost_fields(provider, leads)
        job = provider.submit_batch([BatchUpdate(write.record_id, write.changes) for write in writes])
    except HANDLED_ERRORS as exc:
        return _send_failed(batch, exc)
    now = db_now()
    batch.state, batch.job_id, batch.polls = CrmBatch.State.SENT, job.id, 0
    batch.next_poll_at = now + timedelta(seconds=poll_delay(0))
    batch.save(update_fields=["state", "job_id", "polls", "next_poll_at"])
    logger.info("records.batch.sent %s: %s record(s), job %s", batch.pk, len(leads), job.id)
    if job.done:
        return _poll(batch, job)
    return poll_delay(0)


def _without_lost_fields(provider: CrmProvider, leads: Sequence[CrmAction]) -> list[BatchedWrite]:
    """The leads' writes without the record fields the CRM no longer has, each lead told which (F1).

    The unbatched write learns it from the ticket Zendesk answers with; a batch's job answers no
    ticket, so the CRM's field list is read for the flush (only when it carries fields), or taken
    from a flush of the last minute (integrations.services.custom_field_ids_recent).
    """
    writes = [BatchedWrite.from_json(lead.progress[BATCHED]) for lead in leads]
    if not any(write.changes.custom_fields for write in writes):
        return writes
    existing = custom_field_ids_recent(provider)
    kept = []
    for lead, write in zip(leads, writes, strict=True):
        lost = sorted(set(write.changes.custom_fields) - existing)
        if lost:
            session = Session.objects.select_related("crm_connection").get(pk=lead.session_id)
            fields = {key: value for key, value in write.changes.custom_fields.items() if key in existing}
            write = replace(
                write,
                changes=replace(write.changes, custom_fields=fields),
                lost_notes=tuple(execution.fields_lost_notes(session, lost)),
            )
            lead.progress = {**lead.progress, BATCHED: write.to_json()}
            lead.save(update_fields=["progress", "updated_at"])
        kept.append(write)
    return kept


def _send_failed(batch: CrmBatch, exc: Exception) -> float | None:
    """The send failed. Nothing reached the CRM (a 429, our own budget): the items wait for the next
    flush. Otherwise it may have been applied: each item goes through the failure policy, and its
    retry (unbatched) looks at the record first."""
    policy = connection_retry_policy(batch.connection)
    verdict = decide(exc, attempt=1, failing_for=0.0, policy=policy)
    with transaction.atomic():
        batch = CrmBatch.objects.select_for_update().get(pk=batch.pk)
        if not verdict.counts_as_attempt and verdict.retry:
            successor, created = _open_batch(batch.connection, verdict.delay)
            batch.actions.update(batch=successor)
            # Not before the CRM's wait is over.
            CrmBatch.objects.filter(pk=successor.pk).update(due_at=Greatest("due_at", db_now_plus(verdict.delay)))
            if created:
                _enqueue_flush(successor.pk, countdown=verdict.delay)
            _finish(batch, f"not sent ({exc}); its items wait for the next flush")
            return None
        _release_all(batch, exc)
    return None


def _poll(batch: CrmBatch, job: BatchJob | None = None) -> float | None:
    """Read the job once; when it is done, conclude each action from its own record's result."""
    if job is None:
        try:
            job = connection_provider(batch.connection).read_batch(batch.job_id)
        except CrmNotFound as exc:
            with transaction.atomic():
                _release_all(batch, CrmTransientError(f"the CRM no longer has the batch's job ({exc})"))
            return None
        except HANDLED_ERRORS as exc:
            return _poll_again(batch, error=str(exc))
    if not job.done:
        return _poll_again(batch, error="")
    with transaction.atomic():
        locked = CrmBatch.objects.select_for_update().get(pk=batch.pk)
        if locked.state != CrmBatch.State.SENT:
            return None  # another worker concluded it meanwhile
        results = {result.record_id: result for result in job.results}
        sessions = set()
        notes: list[tuple[str, str]] = []
        for lead in locked.actions.filter(status=CrmAction.Status.PENDING, progress__has_key=BATCHED):
            sessions.add(lead.session_id)
            write = BatchedWrite.from_json(lead.progress[BATCHED])
            result = results.get(write.record_id)
            if job.failed or result is None:
                _item_failed(
                    lead, locked.connection, CrmTransientError(f"the batch's job did not do it: {job.message}")
                )
            elif result.error is not None:
                _item_failed(lead, locked.connection, result.error)
            else:
                _item_done(lead, write)
                notes += [(write.record_id, note) for note in write.lost_notes]
        _finish(locked, job.message if job.failed else "")
        _enqueue_sessions(sessions)
    _post_notes(batch, notes)
    return None


def _post_notes(batch: CrmBatch, notes: Sequence[tuple[str, str]]) -> None:
    """Say on the record which fields were not set, as the unbatched write does (F1); best effort, since
    the connection's error already says it and the action is done."""
    if not notes:
        return
    provider = connection_provider(batch.connection)
    for record_id, note in notes:
        try:
            execution.comment_once(provider, record_id, Comment(body=note), False)
        except HANDLED_ERRORS:
            logger.warning("records.batch.note-failed %s on %s", batch.pk, record_id, exc_info=True)


def _poll_again(batch: CrmBatch, *, error: str) -> float | None:
    delay = poll_delay(batch.polls)
    assert batch.sent_at is not None
    if error and (db_now() - batch.sent_at).total_seconds() > POLL_GIVE_UP_SECONDS:
        with transaction.atomic():
            _release_all(batch, CrmTransientError(f"the batch's job could not be read: {error}"))
        return None
    CrmBatch.objects.filter(pk=batch.pk, state=CrmBatch.State.SENT).update(
        polls=batch.polls + 1, next_poll_at=db_now_plus(delay), last_error=error[:2000]
    )
    return delay


def _item_done(lead: CrmAction, write: BatchedWrite) -> None:
    result, companion_result = write.results()
    if write.record_decision:
        _link_appended(lead, write.record_id)
    execution.action_succeed(lead, result)
    if write.companion_id is not None:
        companion = CrmAction.objects.filter(pk=write.companion_id, status=CrmAction.Status.PENDING).first()
        if companion is not None:
            companion.attempts += 1
            execution.action_succeed(companion, companion_result)


def _link_appended(lead: CrmAction, record_id: str) -> None:
    """The session whose append the CRM has done is linked to the record, as the unbatched append
    links it after its write; its agent's pop, made when the append was buffered, is made only if
    the agent has changed since."""
    session = Session.objects.select_related("crm_connection").get(pk=lead.session_id)
    session.crm_record_id = record_id
    session.save(update_fields=["crm_record_id", "updated_at"])
    try:
        with transaction.atomic():
            screen_pop_refresh(session=session)
    except Exception:
        # The append is written: a pop that failed must not make it be written again.
        logger.exception("records.screen-pop.failed %s", session.pk, extra={"session_id": session.pk})


# A batched write the CRM refused is tried once more on its own: the unbatched write follows a
# merged record to its survivor (S8) and refreshes a stale agent id, which a batch cannot.
ALONE_NOTE = " (refused in a batch: tried once more on its own)"


def _item_failed(lead: CrmAction, connection: CrmConnection, exc: Exception) -> None:
    """One item the CRM did not do: released from the batch, then the one failure policy decides."""
    companion_id = _companion_id(lead)
    _release(lead)
    if companion_id is not None:
        CrmAction.objects.filter(pk=companion_id).update(batch=None)
    if isinstance(exc, CrmRequestError) and not lead.last_error.endswith(ALONE_NOTE):
        execution.action_schedule_retry(lead, f"{exc}{ALONE_NOTE}", delay=0)
        return
    execution.action_after_failure(lead, connection, exc)


def _release(action: CrmAction) -> None:
    action.batch = None
    action.progress = {key: value for key, value in action.progress.items() if key != BATCHED}
    action.save(update_fields=["batch", "progress", "updated_at"])


def _release_all(batch: CrmBatch, exc: Exception) -> None:
    """Every action of the batch to the failure policy, as if its own write had failed with `exc`."""
    sessions = set()
    for lead in batch.actions.filter(status=CrmAction.Status.PENDING, progress__has_key=BATCHED):
        sessions.add(lead.session_id)
        _item_failed(lead, batch.connection, exc)
    for action in batch.actions.all():
        sessions.add(action.session_id)
        _release(action)
    _finish(batch, str(exc))
    _enqueue_sessions(sessions)


def _finish(batch: CrmBatch, error: str) -> None:
    batch.state, batch.finished_at, batch.last_error = CrmBatch.State.DONE, db_now(), error[:2000]
    batch.save(update_fields=["state", "finished_at", "last_error"])


def _enqueue_sessions(session_ids: set[int]) -> None:
    """The sessions whose buffered action is concluded: their later actions run now."""
    from records.tasks import run_session_actions_task

    def enqueue() -> None:
        for session_id in sorted(session_ids):
            run_session_actions_task.delay(session_id)

    transaction.on_commit(enqueue, robust=True)


# -- Sweeping ---------------------------------------------------------------------------------------


def batches_needing_work() -> list[int]:
    """Batches whose flush or read is overdue (its message lost, its worker dead), for the sweep."""
    grace = -SWEEP_GRACE_SECONDS
    return list(
        CrmBatch.objects.filter(
            Q(state=CrmBatch.State.OPEN, due_at__lt=db_now_plus(grace))
            | Q(state=CrmBatch.State.SENDING, sent_at__lt=db_now_plus(-_send_stale_seconds()))
            | Q(state=CrmBatch.State.SENT, next_poll_at__lt=db_now_plus(grace))
        ).values_list("id", flat=True)[:1000]
    )


def connection_flush_now(*, connection: CrmConnection) -> list[int]:
    """Send the connection's open batch now instead of at its due time; the ids of the batches stepped."""
    stepped = []
    for batch_id in (
        CrmBatch.objects.filter(connection=connection).exclude(state=CrmBatch.State.DONE).values_list("id", flat=True)
    ):
        batch_flush(batch_id=batch_id, force=True)
        stepped.append(batch_id)
    return stepped
