"""Carrying out the outbox: each session's CRM actions, in order, exactly once in the CRM.

A worker takes a lease on the session (so its actions never run in parallel or out of order),
runs the due actions, and reports when it wants to run again. Exactly-once in the CRM comes from
the actions themselves: the attempt is counted before the call, and a retried create or comment
first looks for what the earlier attempt may have made — when it may have made something (a write
went unanswered or answered 5xx, its worker died mid-call). An attempt held back by a rate limit or
refused with a 4xx wrote nothing, so its retry resumes without reading the CRM again.
"""

import enum
import logging
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from integrations.circuit import CircuitOpen, circuit_pause_delay, circuit_pause_text
from integrations.exceptions import CrmNotFound, CrmRequestError
from integrations.failures import HANDLED_ERRORS, Failure, decide, failure_outcome
from integrations.models import CrmConnection
from integrations.providers.base import (
    Attachment,
    Capability,
    Comment,
    Contact,
    CrmProvider,
    NewRecord,
    Record,
    RecordChanges,
)
from integrations.ratelimit import WorkClass
from integrations.services import (
    agent_id_find,
    connection_circuit_check,
    connection_circuit_record,
    connection_get_active,
    connection_provider,
    connection_record_failure,
    connection_retry_policy,
)
from records.models import CrmAction, CustomField, Session
from records.rules import (
    AddComment,
    Candidate,
    CreateRecord,
    DisplayRecord,
    EnsureContact,
    MalformedPayload,
    RecordMode,
    RecordRequest,
    UpdateRecord,
    action_payload,
    choose_contact,
    choose_record,
    record_request,
)
from records.selectors import (
    action_companion_update,
    custom_field_crm_ids,
    session_caller_contact,
    session_contact_action,
    session_display_ahead,
    session_made_its_contact,
    session_next_action,
    session_original_call,
    sessions_latest_by_record,
)
from records.services.leases import (
    LEASE_TAKEOVER_MARGIN_SECONDS,
    db_now,
    db_now_plus,
    lease_heartbeat,
    session_lease_claim,
    session_lease_release,
    session_lease_remaining,
    session_lease_renew,
)
from records.services.processing import PROCESSING_MAX_ATTEMPTS
from records.services.screen_pop import screen_pop_refresh
from records.vocabulary import BLOCKING_KINDS, ActionKind

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ActionFailed(Exception):
    """A problem no retry will fix (bad request, missing configuration): the action fails visibly."""


class WaitForEvent(Exception):
    """The action needs a later event (the agent's contact pick, the end of the call): it waits."""


class SearchContactAgain(Exception):
    """The CRM refused the caller's known contact (deleted or merged away): the session's
    ensure_contact runs again, searching this time, and the record waits for it."""


class AppendBuffered(Exception):
    """The record action's append to an existing record waits in the connection's batch (B1): its
    flush links the session and concludes the action, and the agent is shown the record now."""

    def __init__(self, record_id: str) -> None:
        super().__init__(f"the append to record {record_id} waits for the connection's next batch")
        self.record_id = record_id


# The key of an ensure_contact result that says the action created the contact (not found it).
CREATED_CONTACT = "created_contact"
# The key of an ensure_contact result that says how it came to the contact (a ContactLink).
CONTACT_LINK = "contact_link"


class ContactLink(enum.StrEnum):
    """How an ensure_contact linked the session's contact."""

    GIVEN = "given"  # O2: the contact the agent called
    CREATED = "created"
    WEB = "web"  # a new contact for an unauthenticated web user (S16)
    FOUND = "found"  # the one contact the search found
    NEWEST = "newest"  # several matched: the newest one (S5 when the agent picked none)
    PICKED = "picked"  # several matched: the agent's pick (S5)
    KNOWN = "known"  # the contact the caller's earlier session linked, reused without a search


# Links that tie the caller's phone to one contact beyond doubt, so the caller's next session from
# that phone reuses the contact instead of searching: not a guess among several, not the agent's
# pick for one call.
CALLER_LINKS = (ContactLink.CREATED, ContactLink.FOUND, ContactLink.KNOWN)
# A waiting action is looked at again after this even if its event never comes.
WAIT_RECHECK_SECONDS = 60


@dataclass(frozen=True)
class RunResult:
    executed: int
    # Seconds until the session's actions should run again, or None when nothing is due.
    retry_in: float | None


def session_run_actions(*, session_id: int) -> RunResult:
    """Run the session's due actions in order; say when to come back for the rest.

    The session's lease (records.services.leases) keeps two workers off one session. One that
    meets another's live lease comes back just after it expires, so a killed holder's work is
    taken over within seconds; a holder that lets go cleanly re-checks for new actions itself.
    """
    lease = session_lease_claim(session_id)
    if lease is None:
        remaining = session_lease_remaining(session_id)
        if remaining is None and not Session.objects.filter(pk=session_id).exists():
            return RunResult(executed=0, retry_in=None)
        # None: its holder let go between the two queries, so it is free now.
        return RunResult(executed=0, retry_in=(remaining or 0.0) + LEASE_TAKEOVER_MARGIN_SECONDS)
    executed = 0
    retry_in: float | None = None
    try:
        while (action := session_next_action(session_id)) is not None:
            if action.batch_id is not None:
                # Waiting in its connection's batch (B1): the flush that concludes it runs the rest,
                # but for the agent's screen pop of a record that exists (a repeat caller's append waits).
                action = session_display_ahead(session_id)
                if action is None:
                    break
            now = db_now()
            if action.next_attempt_at and action.next_attempt_at > now:
                retry_in = (action.next_attempt_at - now).total_seconds()
                break
            if not session_lease_renew(lease):
                # Stalled past the lease and another worker took over: it carries on from here.
                logger.warning("records.lease.lost %s", session_id, extra={"session_id": session_id})
                return RunResult(executed=executed, retry_in=None)
            with lease_heartbeat(lease):
                executed += len(_execute(action))
            if action.status == CrmAction.Status.PENDING and action.batch_id is None:
                # Waiting for its retry; one that joined a batch lets a screen pop past (above).
                break
    finally:
        session_lease_release(lease)
    if retry_in is None and (action := session_next_action(session_id)) is not None and action.batch_id is None:
        # Actions written while the lease was held (their own enqueue found it taken) or a retry.
        due = action.next_attempt_at
        retry_in = max(0.0, (due - db_now()).total_seconds()) if due else 0.0
    return RunResult(executed=executed, retry_in=retry_in)


def action_execute(*, action: CrmAction) -> CrmAction:
    """Make one attempt at an action, recording its outcome on the row."""
    if action.batch_id is not None:
        # Already waiting in a batch (B1): its flush concludes it; writing it here too would write it twice.
        return action
    return _execute(action)[0]


def _execute(action: CrmAction) -> tuple[CrmAction, ...]:
    """One attempt at the action (and at the update of the same event it carries); the actions it concluded."""
    session = Session.objects.select_related("crm_connection").get(pk=action.session_id)
    # Whether an earlier attempt may have changed the CRM: then what it made is looked for first.
    retried = action.may_have_written
    # Counted before the call, and assumed to write: if this worker dies mid-call, the next attempt
    # knows to look first. One that fails having written nothing gives the assumption back (_WriteWatch).
    action.attempts += 1
    action.may_have_written = True
    action.save(update_fields=["attempts", "may_have_written", "updated_at"])
    connection = session.crm_connection
    record_before = session.crm_record_id
    watch = _WriteWatch(action, before=retried)
    try:
        with watch:
            if connection is None:
                connection = connection_get_active()
                if connection is None:
                    raise ActionFailed("No active CRM connection: add one in the admin, then retry this action.")
                session.crm_connection = connection
                session.save(update_fields=["crm_connection", "updated_at"])
            provider = watch.watching(connection_provider(connection, work_class=_work_class(action)))
            connection_circuit_check(connection)
            companion = action_companion_update(action)
            from records.services.batching import action_buffer, pairs_with_companion

            if companion is not None and not pairs_with_companion(provider):
                companion = None

            # Buffered for the connection's next flush (B1), it stays "may have written": should the
            # flush's answer be lost, its unbatched retry looks for the comment before writing it.
            if action_buffer(provider=provider, session=session, action=action, companion=companion, retried=retried):
                return (action,)
            if companion is None:
                result = action_attempt(provider=provider, session=session, action=action, retried=retried)
            else:
                result, companion_result = _attempt_with_companion(provider, session, action, companion, retried)
    except MalformedPayload as exc:
        # Our planner wrote what this executor cannot read: no retry fixes that, and the CRM is not to blame.
        logger.exception("records.action.malformed %s", action.pk, extra={"action_id": action.pk})
        return (_fail(action, f"bug in CRM Bridge: this action's stored payload cannot be read ({exc})"),)
    except WaitForEvent as exc:
        action.attempts -= 1
        return (action_schedule_retry(action, str(exc), delay=WAIT_RECHECK_SECONDS),)
    except SearchContactAgain as exc:
        # Not the record's failure: it runs as soon as its contact is found again.
        action.attempts -= 1
        return (action_schedule_retry(action, str(exc), delay=0),)
    except AppendBuffered as exc:
        # Still "may have written" (saved above): should the flush's answer be lost, the unbatched
        # retry looks for the session's comment on the record before appending again.
        connection_circuit_record(connection, success=True)
        _screen_pop(session, provider, record_id=exc.record_id)
        return (action,)
    except CircuitOpen as exc:
        return (_wait_for_circuit(action, exc),)
    except ActionFailed as exc:
        return (_fail(action, str(exc)),)
    except HANDLED_ERRORS as exc:
        return (action_after_failure(action, connection, exc),)
    connection_circuit_record(connection, success=True)
    if action.kind == ActionKind.CREATE_RECORD or result.get("record_id") not in (None, record_before):
        # O4: the session has its record (or moved to the survivor of a merge): its agent's adapter hears now.
        _screen_pop(session, provider)
    action_succeed(action, result)
    if companion is None:
        return (action,)
    companion.attempts += 1
    action_succeed(companion, companion_result)
    return (action, companion)


def _work_class(action: CrmAction) -> WorkClass:
    """A session's contact and record (what the agent waits to see) go ahead of follow-up writes in
    the rate gate every worker shares: under a rate limit, a call's ticket does not queue behind
    the comments of all the calls before it."""
    return WorkClass.RECORD if action.kind in BLOCKING_KINDS else WorkClass.LIVE


def _screen_pop(session: Session, provider: CrmProvider, *, record_id: str = "") -> None:
    try:
        screen_pop_refresh(session=session, provider=provider, record_id=record_id)
    except Exception:
        # The record is made: a pop that failed must not make the action run (and the CRM write) again.
        logger.exception("records.screen-pop.failed %s", session.pk, extra={"session_id": session.pk})


class _WriteWatch:
    """Gives an attempt's "may have written" back when it fails having sent no write the CRM did not
    refuse: held back by a rate limit or the circuit, refused with a 4xx, stopped before any write.
    Its retry then resumes where it stopped instead of reading the CRM for what it never made."""

    def __init__(self, action: CrmAction, *, before: bool) -> None:
        self.action = action
        self.before = before
        self.provider: CrmProvider | None = None
        self.writes_at_start = 0

    def watching(self, provider: CrmProvider) -> CrmProvider:
        self.provider = provider
        self.writes_at_start = provider.writes_maybe_applied()
        return provider

    def __enter__(self) -> "_WriteWatch":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            return
        if self.provider is None or self.provider.writes_maybe_applied() == self.writes_at_start:
            self.action.may_have_written = self.before


def action_succeed(action: CrmAction, result: dict[str, Any]) -> None:
    action.status = CrmAction.Status.SUCCEEDED
    action.may_have_written = False
    if decision := result.pop("decision", None):
        action.reason = f"{action.reason} → {decision}"
    action.result = result
    action.last_error = ""
    action.next_attempt_at = None
    action.failing_since = None
    action.progress = {}
    action.completed_at = timezone.now()
    action.save(
        update_fields=[
            "attempts",
            "may_have_written",
            "progress",
            "status",
            "reason",
            "result",
            "last_error",
            "next_attempt_at",
            "failing_since",
            "completed_at",
            "updated_at",
        ]
    )


def _attempt_with_companion(
    provider: CrmProvider, session: Session, action: CrmAction, companion: CrmAction, retried: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An add_comment and the update_record of the same event that follows it, in one CRM write."""
    comment = action_payload(action.kind, action.payload)
    update = action_payload(companion.kind, companion.payload)
    if not isinstance(comment, AddComment) or not isinstance(update, UpdateRecord):
        raise MalformedPayload(f"actions {action.pk} and {companion.pk} are not a comment and an update")
    return _comment_and_update(provider, session, comment, update, retried)


def _wait_for_circuit(action: CrmAction, exc: CircuitOpen) -> CrmAction:
    """The connection's circuit is open: come back after the pause, spending neither an attempt nor budget."""
    action.attempts -= 1
    if action.failing_since is not None:
        # The pause is not the action's failing time: its budget clock stops meanwhile.
        action.failing_since += timedelta(seconds=exc.wait)
    return action_schedule_retry(action, circuit_pause_text(action.last_error, exc), delay=circuit_pause_delay(exc))


def action_after_failure(action: CrmAction, connection: CrmConnection | None, exc: Exception) -> CrmAction:
    """What the one failure policy (integrations.failures) says about the error: retry when, or fail."""
    now = timezone.now()
    failing_for = (now - action.failing_since).total_seconds() if action.failing_since else 0.0
    decision = decide(exc, attempt=action.attempts, failing_for=failing_for, policy=connection_retry_policy(connection))
    outcome = failure_outcome(decision, exc, attempts=action.attempts, failing_for=failing_for)
    connection_record_failure(
        connection=connection, outcome=outcome, error=exc, log_name="records.action", row_id=action.pk
    )
    action.attempts = outcome.attempts
    if not decision.retry:
        return _fail(action, outcome.text)
    if decision.spends_budget and action.failing_since is None:
        action.failing_since = now
    error = outcome.text
    if decision.failure == Failure.OWN_LIMIT and action.last_error:
        # Nothing was sent: the last real answer is still why the action has not succeeded.
        error = _without_own_limit_note(action.last_error) + OWN_LIMIT_NOTE
    elif decision.failure == Failure.OUR_INFRASTRUCTURE:
        logger.warning("records.action.infrastructure %s: %s", action.pk, exc, extra={"action_id": action.pk})
        error = f"our own service failed, not the CRM ({exc.__class__.__name__}: {exc})"
    return action_schedule_retry(action, error, delay=decision.delay)


OWN_LIMIT_NOTE = " (waiting for our own request budget)"


def _without_own_limit_note(error: str) -> str:
    return error.removesuffix(OWN_LIMIT_NOTE)


def action_schedule_retry(action: CrmAction, error: str, *, delay: float) -> CrmAction:
    logger.info("records.action.retry %s in %.1fs: %s", action.pk, delay, error, extra={"action_id": action.pk})
    action.last_error = error[:2000]
    # On the database's clock, which every host's due check compares with.
    action.next_attempt_at = db_now_plus(delay)
    action.save(
        update_fields=["attempts", "may_have_written", "last_error", "next_attempt_at", "failing_since", "updated_at"]
    )
    return action


def _fail(action: CrmAction, error: str) -> CrmAction:
    logger.warning("records.action.failed %s: %s", action.pk, error, extra={"action_id": action.pk})
    action.status = CrmAction.Status.FAILED
    action.last_error = error[:2000]
    action.next_attempt_at = None
    action.failing_since = None
    action.save(
        update_fields=[
            "status",
            "attempts",
            "may_have_written",
            "last_error",
            "next_attempt_at",
            "failing_since",
            "updated_at",
        ]
    )
    return action


@transaction.atomic
def action_retry(*, action: CrmAction) -> CrmAction:
    """An admin's Retry: the action (failed or waiting) runs again as soon as a worker takes it."""
    from records.tasks import run_session_actions_task

    action.status = CrmAction.Status.PENDING
    action.next_attempt_at = None
    action.failing_since = None  # the retry budget starts afresh
    action.progress = {}  # and what the CRM said earlier is asked again
    action.attempts_before_retry = action.attempts
    action.save(
        update_fields=["status", "next_attempt_at", "failing_since", "progress", "attempts_before_retry", "updated_at"]
    )
    transaction.on_commit(lambda: run_session_actions_task.delay(action.session_id), robust=True)
    return action


# Handlers: (provider, session, payload, retried) -> result stored on the action. A result's
# "decision" is the choice made against CRM data (which record, which contact): it is added to the
# action's reason, so the admin page says why without logs.


def _ensure_contact(
    provider: CrmProvider,
    session: Session,
    payload: EnsureContact,
    retried: bool,
    action: CrmAction | None = None,
) -> dict[str, Any]:
    if session.crm_contact_id:
        return {"contact_id": session.crm_contact_id, "outcome": "already linked"}
    if payload.contact_id:
        return _link_contact(session, payload.contact_id, "the contact the agent called (O2)", ContactLink.GIVEN)
    name = payload.name or session.external_id
    if payload.always_create:
        # An unauthenticated web user is a new contact each time (S16); the session id as its
        # external id lets a retry find the contact a lost answer created.
        web_id = f"web-session:{session.external_id}"
        found = provider.find_contacts(external_id=web_id) if retried else []
        decision = "created a contact for an unauthenticated web user (S16)"
        if found:
            return _link_contact(session, found[0].id, decision, ContactLink.WEB)
        web_contact = provider.create_contact(name=name, external_id=web_id)
        return _link_contact(session, web_contact.id, decision, ContactLink.WEB, created=True)

    phone, email, external_id = payload.phone or None, payload.email or None, payload.external_id or None
    progress = EnsureContactProgress.from_json(action.progress if action is not None else {})
    if phone and not (email or external_id) and not progress.search:
        # A caller known by phone alone: the contact their last session linked, without a search.
        # Should the CRM have deleted or merged it, the record's write is refused and this action
        # runs again with a search (see _search_if_known_contact).
        known = session_caller_contact(session=session, phone=phone, key=CONTACT_LINK, links=CALLER_LINKS)
        if known is not None:
            decision = f"the caller's contact from their session {known.session_external_id} (no search)"
            return _link_contact(session, known.contact_id, decision, ContactLink.KNOWN)
    contacts = _find_contacts(provider, external_id, email, phone)
    if len(contacts) > 1 and payload.ask_agent_when_several:
        return _pick_among(session, contacts)
    contact = choose_contact(contacts)
    if contact is not None:
        link = ContactLink.FOUND if len(contacts) == 1 else ContactLink.NEWEST
        return _link_contact(session, contact.id, f"found {len(contacts)} contact(s), linked the newest", link)
    try:
        contact = provider.create_contact(name=name, phone=phone, email=email, external_id=external_id)
    except CrmRequestError as exc:
        # Another session of the same caller created the contact between our search and create
        # (the CRM refuses a second user with that phone or email): link that one instead.
        contact = choose_contact(_find_contacts(provider, external_id, email, phone))
        if contact is None:
            raise
        return _link_contact(
            session,
            contact.id,
            f"linked the contact a concurrent session created ({exc.status_code})",
            ContactLink.FOUND,
        )
    created_for = "new app user" if external_id else "new phone number" if phone else "new user"
    decision = f"created the contact ({created_for}, S16)"
    return _link_contact(session, contact.id, decision, ContactLink.CREATED, created=True)


@dataclass(frozen=True)
class EnsureContactProgress:
    """What an ensure_contact keeps on its action: whether the caller's known contact was refused,
    so that this time it searches."""

    search: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"search": True} if self.search else {}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EnsureContactProgress":
        return cls(search=bool(data.get("search")))


def _find_contacts(
    provider: CrmProvider, external_id: str | None, email: str | None, phone: str | None
) -> list[Contact]:
    """By the most precise identifier first: app user id, then email, then phone."""
    for key, value in (("external_id", external_id), ("email", email), ("phone", phone)):
        if value:
            contacts = provider.find_contacts(**{key: value})
            if contacts:
                return contacts
    return []


def _pick_among(session: Session, contacts: list[Contact]) -> dict[str, Any]:
    """S5: several contacts match the caller: the agent's pick, or at the end the newest one."""
    selected = str(session.state.get("selected_contact_id") or "")
    if selected:
        decision = f"the agent picked contact {selected} among {len(contacts)} (S5)"
        return _link_contact(session, selected, decision, ContactLink.PICKED)
    if not session.state.get("ended"):
        raise WaitForEvent(f"{len(contacts)} contacts match the caller: waiting for the agent's pick (S5)")
    newest = choose_contact(contacts)
    assert newest is not None
    decision = (
        f"the agent picked none of {len(contacts)} matching contacts: at the end of the call, "
        f"linked the most recently created one, {newest.id} (S5)"
    )
    return _link_contact(session, newest.id, decision, ContactLink.NEWEST)


def _link_contact(
    session: Session, contact_id: str, decision: str, link: ContactLink, *, created: bool = False
) -> dict[str, Any]:
    session.crm_contact_id = contact_id
    session.save(update_fields=["crm_contact_id", "updated_at"])
    result = {"contact_id": contact_id, "outcome": decision, "decision": decision, CONTACT_LINK: str(link)}
    # The record lookup then knows the contact has no records to read (see _candidates_for).
    return result | ({CREATED_CONTACT: True} if created else {})


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _candidates(provider: CrmProvider, session: Session) -> list[Candidate]:
    """The contact's records, each with what our latest session on it knew (queue, menu, channel)."""
    records = provider.list_contact_records(session.crm_contact_id)
    if not records:
        return []
    by_record = sessions_latest_by_record(
        connection_id=session.crm_connection_id, record_ids=[r.id for r in records], exclude_id=session.pk
    )
    candidates = []
    for record in records:
        other = by_record.get(record.id)
        candidates.append(
            Candidate(
                record_id=record.id,
                status=record.status,
                is_open=provider.is_open(record),
                can_reopen=provider.can_reopen(record),
                updated_at=_parse_time(record.updated_at),
                closed_at=_parse_time(record.closed_at),
                queue_id=other.queue_id if other else "",
                leaf_queue=" > ".join(other.state.get("queue_path") or ()) if other else "",
                menu_path=other.menu_path if other else "",
                channel=other.channel if other else "",
                voicemail=other.voicemail if other else False,
            )
        )
    return candidates


def _record_request(session: Session, payload: CreateRecord) -> RecordRequest:
    original_id = payload.callback.original_session_id
    original = session_original_call(original_id) if original_id else None
    return record_request(
        payload,
        session_type=session.session_type,
        original_record_id=original.record_id if original else "",
        original_call_seconds=original.call_seconds if original else None,
    )


@dataclass(frozen=True)
class RecordDraft:
    """What the session's record is to carry, composed before the CRM is asked where it goes."""

    notes: tuple[str, ...]
    assignee_id: str | None
    tags: tuple[str, ...]
    fields: dict[str, Any]


class Placement(enum.StrEnum):
    FOUND_EARLIER = "found"  # a retried create found the record an earlier attempt made
    LINKED_EARLIER = "linked"  # an earlier attempt appended and linked, then failed on its notes
    CREATE = "create"
    APPEND = "append"


@dataclass(frozen=True)
class RecordLocation:
    """Where the session's record is: found, already linked, to be created, or an existing one to append to."""

    placement: Placement
    decision: str
    record_id: str | None = None
    reopen: bool = False


@dataclass(frozen=True)
class CreateRecordProgress:
    """What a create_record attempt already read of the CRM, kept on the action (CrmAction.progress).

    A retry (after a 5xx, a lost answer, a 429 pause) resumes with them instead of asking again:
    the agent lookup and field list of the draft, and the rules' choice among the contact's
    records. What a lost write may have changed (a record made by the earlier attempt) is still
    looked up on every retry.
    """

    draft: RecordDraft | None = None
    location: RecordLocation | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.draft is not None:
            data["draft"] = {
                "notes": list(self.draft.notes),
                "assignee_id": self.draft.assignee_id,
                "tags": list(self.draft.tags),
                "fields": dict(self.draft.fields),
            }
        if self.location is not None:
            data["location"] = {
                "placement": str(self.location.placement),
                "decision": self.location.decision,
                "record_id": self.location.record_id,
                "reopen": self.location.reopen,
            }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CreateRecordProgress":
        draft, location = data.get("draft"), data.get("location")
        return cls(
            draft=RecordDraft(
                notes=tuple(draft["notes"]),
                assignee_id=draft["assignee_id"],
                tags=tuple(draft["tags"]),
                fields=dict(draft["fields"]),
            )
            if draft
            else None,
            location=RecordLocation(
                placement=Placement(location["placement"]),
                decision=location["decision"],
                record_id=location["record_id"],
                reopen=bool(location["reopen"]),
            )
            if location
            else None,
        )


def _keep_progress(action: CrmAction | None, progress: CreateRecordProgress) -> None:
    if action is not None:
        action.progress = progress.to_json()
        CrmAction.objects.filter(pk=action.pk).update(progress=action.progress)


def _create_record(
    provider: CrmProvider,
    session: Session,
    payload: CreateRecord,
    retried: bool,
    action: CrmAction | None = None,
) -> dict[str, Any]:
    """Find the session's record (append, maybe reopen) or create it; then its first notes and fields."""
    if session.crm_record_id and not retried:
        return {"record_id": session.crm_record_id, "outcome": "already linked"}
    if not session.crm_contact_id:
        raise ActionFailed("The session has no CRM contact to be the record's requester.")
    progress = CreateRecordProgress.from_json(action.progress) if action is not None else CreateRecordProgress()
    draft = progress.draft or _compose_record(provider, session, payload)
    if progress.draft is None:
        progress = replace(progress, draft=draft)
        _keep_progress(action, progress)
    location: RecordLocation | None = None
    try:
        location = _locate_record(provider, session, payload, retried, progress.location)
        if location.placement in (Placement.CREATE, Placement.APPEND) and progress.location is None:
            _keep_progress(action, replace(progress, location=location))
        if location.placement == Placement.APPEND and action is not None:
            _buffer_append(provider, session, payload, draft, location, action, retried)
        record_id, created, lost = _write_record(provider, session, payload, draft, location, retried)
    except CrmRequestError as exc:
        # Reading the contact's records or creating one for it refused: the contact may be gone.
        if location is None or location.placement == Placement.CREATE:
            _search_if_known_contact(session, action, progress, exc)
        raise
    notes = [*draft.notes, *fields_lost_notes(session, lost)]
    _annotate_record(provider, session, payload, record_id, created=created, notes=notes, retried=retried)
    decision = location.decision
    return {"record_id": record_id, "outcome": "; ".join([decision, *notes]), "decision": decision}


def _search_if_known_contact(
    session: Session, action: CrmAction | None, progress: CreateRecordProgress, exc: CrmRequestError
) -> None:
    """When the refused contact is the caller's known one (reused without a search), find the contact
    again: its ensure_contact runs once more, searching, and then this record (SearchContactAgain)."""
    contact_action = session_contact_action(session)
    if action is None or contact_action is None or contact_action.result.get(CONTACT_LINK) != ContactLink.KNOWN:
        return
    refused = session.crm_contact_id
    with transaction.atomic():
        contact_action.status = CrmAction.Status.PENDING
        contact_action.reason = contact_action.reason.removesuffix(f" → {contact_action.result.get('outcome', '')}")
        contact_action.result = {}
        contact_action.progress = EnsureContactProgress(search=True).to_json()
        contact_action.last_error = f"the CRM refused the caller's known contact {refused} ({exc}): searching again"
        contact_action.next_attempt_at = None
        contact_action.completed_at = None
        contact_action.save(
            update_fields=[
                "status",
                "reason",
                "result",
                "progress",
                "last_error",
                "next_attempt_at",
                "completed_at",
                "updated_at",
            ]
        )
        session.crm_contact_id = ""
        session.save(update_fields=["crm_contact_id", "updated_at"])
        # The choice among the refused contact's records is void; what the draft read still holds.
        _keep_progress(action, replace(progress, location=None))
    logger.info("records.contact.known-refused %s", session.pk, extra={"session_id": session.pk})
    raise SearchContactAgain(f"the caller's known contact {refused} was refused by the CRM: finding the contact again")


def _compose_record(provider: CrmProvider, session: Session, payload: CreateRecord) -> RecordDraft:
    """Compose: the assignee, tags and fields, with a note for each that the CRM cannot take."""
    notes = [payload.note] if payload.note else []
    assignee_id = _assignee_id(provider, payload.assignee_email, notes)
    tags = [provider.session_type_tag(payload.session_type_name)] if payload.session_type_name else []
    tags += payload.tags
    if not provider.can(Capability.TAGS):
        # R8 names the CRMs with tags; a Salesforce case has none to set.
        tags = []
    fields = _crm_fields(session, payload.fields)
    mapped = dict(payload.mapped_fields)
    if mapped:
        existing = provider.existing_custom_fields()
        keys = payload.mapped_keys
        for field_id in sorted(set(mapped) - existing):
            notes.append(
                f"Custom data field '{keys.get(field_id, field_id)}' is mapped to CRM field '{field_id}', "
                "which was not found in the CRM (S11)."
            )
            del mapped[field_id]
    fields.update(mapped)
    return RecordDraft(notes=tuple(notes), assignee_id=assignee_id, tags=tuple(tags), fields=fields)


def _locate_record(
    provider: CrmProvider,
    session: Session,
    payload: CreateRecord,
    retried: bool,
    chosen: RecordLocation | None = None,
) -> RecordLocation:
    """Locate: the record an earlier attempt made or linked, else the rules' choice among the contact's
    records (`chosen`: the choice an earlier attempt made, kept on the action, is not made again)."""
    found = provider.find_records_by_external_id(payload.external_id) if retried else []
    if found:
        return RecordLocation(Placement.FOUND_EARLIER, "found the record an earlier attempt created", found[0].id)
    if session.crm_record_id:
        return RecordLocation(Placement.LINKED_EARLIER, "linked by an earlier attempt", session.crm_record_id)
    if chosen is not None:
        return chosen
    choice = choose_record(
        _record_request(session, payload), _candidates_for(provider, session, payload), timezone.now()
    )
    if choice.record_id is None:
        return RecordLocation(Placement.CREATE, choice.reason)
    return RecordLocation(Placement.APPEND, choice.reason, choice.record_id, reopen=choice.reopen)


def _write_record(
    provider: CrmProvider,
    session: Session,
    payload: CreateRecord,
    draft: RecordDraft,
    location: RecordLocation,
    retried: bool,
) -> tuple[str, bool, list[str]]:
    """Write: create the record or append the session to the located one; (record id, created, fields lost)."""
    if location.placement == Placement.FOUND_EARLIER:
        assert location.record_id is not None
        # Where the CRM makes the record and its first comment in two calls (Kustomer's note), the
        # earlier attempt may have stopped between them.
        comment_once(provider, location.record_id, Comment(body=payload.first_comment), retried=True)
        return location.record_id, True, []
    if location.placement == Placement.LINKED_EARLIER:
        assert location.record_id is not None
        return location.record_id, False, []
    if location.placement == Placement.CREATE:
        new_record = NewRecord(
            subject=payload.subject,
            external_id=payload.external_id,
            requester_id=session.crm_contact_id,
            first_comment=Comment(body=payload.first_comment, public=False),
            assignee_id=draft.assignee_id,
            tags=draft.tags,
        )
        record, lost = _write_assigned(
            provider,
            payload.assignee_email,
            draft.assignee_id,
            draft.fields,
            lambda assignee, known: provider.create_record(
                replace(new_record, assignee_id=assignee, custom_fields=known)
            ),
        )
        return record.id, True, lost
    record_id = location.record_id
    assert record_id is not None
    changes = _append_changes(provider, session, payload, draft, location)
    # One update carries the session's comment, reopening, assignment, tags and fields.
    if retried and changes.comment is not None and _has_comment(provider, record_id, changes.comment.body):
        changes = replace(changes, comment=None)
    _, lost = _write_assigned(
        provider,
        payload.assignee_email,
        draft.assignee_id,
        draft.fields,
        lambda assignee, known: provider.update_record(
            record_id, replace(changes, assignee_id=assignee, custom_fields=known)
        ),
    )
    return record_id, False, lost


def _append_changes(
    provider: CrmProvider, session: Session, payload: CreateRecord, draft: RecordDraft, location: RecordLocation
) -> RecordChanges:
    """What appending the session to a found record writes, but its fields: the session's comment,
    reopening, assignee and tags."""
    return RecordChanges(
        status=provider.default_open_status if location.reopen else None,
        assignee_id=draft.assignee_id,
        add_tags=draft.tags,
        comment=Comment(body=f"Session {session.external_id} added to this record.\n{payload.first_comment}"),
    )


def _buffer_append(
    provider: CrmProvider,
    session: Session,
    payload: CreateRecord,
    draft: RecordDraft,
    location: RecordLocation,
    action: CrmAction,
    retried: bool,
) -> None:
    """Raise AppendBuffered when the append waits for the connection's next batch (B1); else return,
    and it is written now. A retried append is never batched: it looks for its comment first."""
    from records.services.batching import record_append_buffer

    assert location.record_id is not None
    changes = replace(_append_changes(provider, session, payload, draft, location), custom_fields=draft.fields)
    if record_append_buffer(
        provider=provider,
        session=session,
        action=action,
        record_id=location.record_id,
        changes=changes,
        decision=location.decision,
        # Posted after the write as comments of their own, which one batched write cannot carry.
        extra_comments=bool(draft.notes or payload.entered_number),
        retried=retried,
    ):
        raise AppendBuffered(location.record_id)


def _annotate_record(
    provider: CrmProvider,
    session: Session,
    payload: CreateRecord,
    record_id: str,
    *,
    created: bool,
    notes: list[str],
    retried: bool,
) -> None:
    """Annotate: link the session to its record, then the record's notes (each once, on a retry too)."""
    session.crm_record_id = record_id
    session.save(update_fields=["crm_record_id", "updated_at"])
    if created and provider.posts_phone_number_note and payload.phone_number:
        comment_once(provider, record_id, Comment(body=f"Phone number: {payload.phone_number}"), retried)
    if payload.entered_number:
        comment_once(provider, record_id, Comment(body=f"Dialed number: {payload.entered_number}"), retried)
    for note in notes:
        comment_once(provider, record_id, Comment(body=note), retried)


def _candidates_for(provider: CrmProvider, session: Session, payload: CreateRecord) -> list[Candidate]:
    # A voicemail never appends, but its reason counts the open records it did not use (S4).
    if payload.mode == RecordMode.NEW:
        return []
    if session_made_its_contact(session=session, marker=CREATED_CONTACT):
        # This session created the contact a moment ago and no other session of ours has a record on
        # it: it has no records, so reading them would cost a request for nothing.
        return []
    return _candidates(provider, session)


def _assignee_id(provider: CrmProvider, email: str, notes: list[str]) -> str | None:
    if not email:
        return None
    agent_id = agent_id_find(provider, email=email)
    if agent_id is None:
        notes.append(f"Agent {email} was not found in the CRM: the record was not assigned.")
    return agent_id


def _with_fresh_agent(
    provider: CrmProvider, email: str, assignee_id: str | None, write: Callable[[str | None], T]
) -> T:
    """Write with the (cached) agent id; if the CRM refuses the write, look the agent up afresh and,
    when the id has changed (the agent was deleted and made again), write once more with it.

    A refused write made nothing (a 4xx), so writing again makes no second record or comment.
    """
    try:
        return write(assignee_id)
    except CrmNotFound:
        raise
    except CrmRequestError:
        if not email or assignee_id is None:
            raise
        fresh = agent_id_find(provider, email=email, fresh=True)
        if fresh == assignee_id:
            raise
    return write(fresh)


def _write_assigned(
    provider: CrmProvider,
    email: str,
    assignee_id: str | None,
    fields: dict[str, Any],
    write: Callable[[str | None, dict[str, Any]], Record],
) -> tuple[Record, list[str]]:
    """A record write carrying the assignee and the F2 fields: a stale agent id refreshed
    (`_with_fresh_agent`), fields the CRM forgot dropped (`_write_fields`)."""
    return _with_fresh_agent(
        provider,
        email,
        assignee_id,
        lambda assignee: _write_fields(provider, fields, lambda known: write(assignee, known)),
    )


def _crm_fields(session: Session, values: Mapping[str, Any]) -> dict[str, Any]:
    """F2 values by product key -> by CRM field id, for the fields created in this CRM (F1)."""
    if not values:
        return {}
    ids = custom_field_crm_ids(connection_id=session.crm_connection_id, keys=values)
    return {ids[key]: value for key, value in values.items() if key in ids}


def _has_comment(provider: CrmProvider, record_id: str, body: str, session_id: str = "") -> bool:
    """Whether the record has this comment; with `session_id`, among those since that session was appended.

    Two sessions on one record may post the same words (two calls' identical `call_finished`):
    the later session's retry must not take the earlier session's comment for its own.
    """
    comments = provider.list_comments(record_id)
    marker = f"Session {session_id} added to this record." if session_id else ""
    starts = [index for index, existing in enumerate(comments) if marker and existing.body.startswith(marker)]
    return any(existing.body == body for existing in comments[starts[-1] if starts else 0 :])


def comment_once(provider: CrmProvider, record_id: str, comment: Comment, retried: bool, session_id: str = "") -> bool:
    """Add a comment unless a retried attempt finds an earlier one already did (same body)."""
    if retried and _has_comment(provider, record_id, comment.body, session_id):
        return False
    provider.add_comment(record_id, comment)
    return True


def _write_to_record(provider: CrmProvider, session: Session, write: Callable[[str], T]) -> tuple[str, T]:
    """Write to the session's record; if the CRM refuses because it was merged away, to the survivor.

    A merge (A into B) closes A, and a closed record refuses writes (Zendesk's 422): only then is
    the record read, so the usual write costs no extra call (S8).
    """
    if not session.crm_record_id:
        raise ActionFailed("The session has no CRM record.")
    record_id = session.crm_record_id
    try:
        return record_id, write(record_id)
    except CrmNotFound:
        raise
    except CrmRequestError as exc:
        record = provider.get_record(record_id)
        for _ in range(5):
            if not record.merged_into_id:
                break
            record = provider.get_record(record.merged_into_id)
        if record.id == record_id or not provider.can_reopen(record):
            raise ActionFailed(
                f"Record {record.id} is {record.status}: the CRM refused the change ({exc.status_code})."
            ) from exc
    session.crm_record_id = record.id
    session.save(update_fields=["crm_record_id", "updated_at"])
    return record.id, write(record.id)


def comment_of(payload: AddComment) -> Comment:
    attachments: tuple[Attachment, ...] = ()
    if (attachment := payload.attachment) is not None:
        attachments = (
            Attachment(
                filename=attachment.filename, content_type=attachment.content_type, content=attachment.text.encode()
            ),
        )
    return Comment(body=payload.body, attachments=attachments)


def _add_comment(
    provider: CrmProvider,
    session: Session,
    payload: AddComment,
    retried: bool,
    action: CrmAction | None = None,
) -> dict[str, Any]:
    original_id = session.crm_record_id
    comment = comment_of(payload)
    record_id, added = _write_to_record(
        provider,
        session,
        lambda target: comment_once(provider, target, comment, retried or target != original_id, session.external_id),
    )
    outcome = "added" if added else "an earlier attempt had already added it"
    if record_id != original_id:
        outcome += f" to record {record_id}, which record {original_id} was merged into (S8)"
    return {"record_id": record_id, "outcome": outcome}


@dataclass(frozen=True)
class UpdateDraft:
    """What an update_record action sets, composed before the write: agent id and fields resolved."""

    assignee_id: str | None
    fields: dict[str, Any]
    status: str | None
    notes: tuple[str, ...]

    @property
    def changes_nothing(self) -> bool:
        return self.assignee_id is None and not self.fields and self.status is None


def update_compose(provider: CrmProvider, session: Session, payload: UpdateRecord) -> UpdateDraft:
    notes: list[str] = []
    assignee_id = _assignee_id(provider, payload.assignee_email, notes)
    status = None
    if payload.resolve:
        status = provider.resolved_status or None
        if status is None:
            notes.append(f"{provider.kind} has no resolved status to set")
    return UpdateDraft(assignee_id, _crm_fields(session, payload.fields), status, tuple(notes))


def update_unchanged(session: Session, payload: UpdateRecord, draft: UpdateDraft) -> dict[str, Any]:
    missing = "the record fields are not created in this CRM (F1)" if payload.fields else "nothing to set"
    return {"record_id": session.crm_record_id, "outcome": "; ".join(["no change", missing, *draft.notes])}


def _write_update(
    provider: CrmProvider,
    session: Session,
    payload: UpdateRecord,
    draft: UpdateDraft,
    retried: bool,
    comment: Comment | None = None,
) -> tuple[dict[str, Any], bool]:
    """The update's one write, carrying `comment` too when given (unless an earlier attempt added it);
    the result, and whether the comment was added by this write."""
    original_id = session.crm_record_id
    changes = RecordChanges(status=draft.status, assignee_id=draft.assignee_id)
    added = False

    def write(target: str) -> tuple[Record, list[str]]:
        nonlocal added
        carried = comment
        if carried is not None and (retried or target != original_id):
            # An earlier attempt's write may have applied before its answer was lost.
            carried = None if _has_comment(provider, target, carried.body, session.external_id) else carried
        added = carried is not None
        return _write_assigned(
            provider,
            payload.assignee_email,
            draft.assignee_id,
            draft.fields,
            lambda assignee, known: provider.update_record(
                target, replace(changes, assignee_id=assignee, custom_fields=known, comment=carried)
            ),
        )

    record_id, (_, lost) = _write_to_record(provider, session, write)
    lost_notes = fields_lost_notes(session, lost)
    for note in lost_notes:
        comment_once(provider, record_id, Comment(body=note), retried)
    done = [
        f"assigned to {payload.assignee_email}" if draft.assignee_id else "",
        f"{len(draft.fields) - len(lost)} field(s) set" if len(draft.fields) > len(lost) else "",
        f"status {draft.status}" if draft.status else "",
    ]
    outcome = "; ".join([item for item in done if item] + list(draft.notes) + lost_notes)
    return {"record_id": record_id, "outcome": outcome}, added


def _update_record(
    provider: CrmProvider,
    session: Session,
    payload: UpdateRecord,
    retried: bool,
    action: CrmAction | None = None,
) -> dict[str, Any]:
    draft = update_compose(provider, session, payload)
    if draft.changes_nothing:
        return update_unchanged(session, payload, draft)
    result, _ = _write_update(provider, session, payload, draft, retried)
    return result


def _comment_and_update(
    provider: CrmProvider,
    session: Session,
    comment_payload: AddComment,
    update_payload: UpdateRecord,
    retried: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One event's comment and its record update (call ended, CSAT, SmartAction, voicemail closed) in
    one write: a Zendesk ticket PUT or a Salesforce composite carries both, so the event costs one
    request instead of two. The results of the comment action and of the update action."""
    draft = update_compose(provider, session, update_payload)
    if draft.changes_nothing:
        comment_result = _add_comment(provider, session, comment_payload, retried)
        return comment_result, update_unchanged(session, update_payload, draft)
    original_id = session.crm_record_id
    update_result, added = _write_update(
        provider, session, update_payload, draft, retried, comment=comment_of(comment_payload)
    )
    record_id = update_result["record_id"]
    outcome = "added" if added else "an earlier attempt had already added it"
    if record_id != original_id:
        outcome += f" to record {record_id}, which record {original_id} was merged into (S8)"
    comment_result = {"record_id": record_id, "outcome": f"{outcome}, in one update with the record's changes"}
    update_result["outcome"] += "; in one update with the comment before it"
    return comment_result, update_result


def _write_fields(
    provider: CrmProvider, fields: dict[str, Any], write: Callable[[dict[str, Any]], Record]
) -> tuple[Record, list[str]]:
    """Write with the F2 fields; return the record and the field ids the CRM no longer has.

    A CRM forgets fields (an admin deleted them, a sandbox restarted) while we keep their ids.
    Zendesk drops unknown ids silently and lists every field it has on the ticket it returns, so
    the answer tells without another request; Kustomer refuses the write, and only then is its
    field list read and the write made again without the missing ones.
    """
    try:
        record = write(fields)
    except CrmRequestError:
        if not fields:
            raise
        existing = provider.existing_custom_fields()
        if set(fields) <= existing:
            raise
        known = {field_id: value for field_id, value in fields.items() if field_id in existing}
        return write(known), sorted(set(fields) - existing)
    return record, sorted(set(fields) - set(record.custom_fields))


def fields_lost_notes(session: Session, lost: list[str]) -> list[str]:
    """Say which record fields the CRM no longer has, on the record (returned) and the connection.

    Their ids are forgotten, so later sessions skip them until the fields are made again (F1).
    """
    if not lost:
        return []
    from records.services.custom_fields import custom_fields_record_error

    stale = CustomField.objects.filter(connection_id=session.crm_connection_id, crm_field_id__in=lost)
    names = sorted(stale.values_list("key", flat=True)) or lost
    stale.delete()
    listed = ", ".join(names)
    if session.crm_connection is not None:
        custom_fields_record_error(
            connection=session.crm_connection,
            error=f"the CRM no longer has {len(lost)} record field(s) ({listed}); run Create custom fields again",
        )
    return [
        f"{len(lost)} record field(s) were not set because the CRM no longer has them: {listed} "
        f"(CRM field ids {', '.join(lost)}). An admin can make them again with Create custom fields (F1)."
    ]


def _display_record(
    provider: CrmProvider,
    session: Session,
    payload: DisplayRecord,
    retried: bool,
    action: CrmAction | None = None,
) -> dict[str, Any]:
    """O4: ask the CRM to open the record on the answering agent's screen (Zendesk Talk Partner Edition)."""
    email = payload.agent_email
    agent_id = agent_id_find(provider, email=email)
    if agent_id is None:
        raise ActionFailed(f"Agent {email} was not found in the CRM: the record cannot be opened on their screen.")

    def display(user_id: str | None) -> str:
        if user_id is None:
            # The CRM refused the cached id and has no agent with this email any more.
            raise ActionFailed(f"Agent {email} is no longer in the CRM: the record cannot be opened on their screen.")
        provider.display_record(user_id, payload.record_id)
        return user_id

    shown_to = _with_fresh_agent(provider, email, agent_id, display)
    return {"record_id": payload.record_id, "outcome": f"opened on {email}'s screen (CRM user {shown_to})"}


def action_attempt(*, provider: CrmProvider, session: Session, action: CrmAction, retried: bool) -> dict[str, Any]:
    """The CRM calls of one attempt at the action, by the handler of its kind, without the bookkeeping
    of `action_execute`; returns the result stored on the action. MalformedPayload when the stored
    payload cannot be read."""
    payload = action_payload(action.kind, action.payload)
    match payload:
        case EnsureContact():
            return _ensure_contact(provider, session, payload, retried, action)
        case CreateRecord():
            return _create_record(provider, session, payload, retried, action)
        case AddComment():
            return _add_comment(provider, session, payload, retried, action)
        case UpdateRecord():
            return _update_record(provider, session, payload, retried, action)
        case DisplayRecord():
            return _display_record(provider, session, payload, retried, action)
    typing.assert_never(payload)


def sessions_needing_work(*, stale_after: timedelta) -> tuple[list[int], list[int]]:
    """Sessions whose enqueue was lost (broker down, worker died): unapplied events, due actions.

    Run every few seconds by the sweeper, so it is two indexed queries (the unapplied events'
    and the pending actions' partial indexes), compared with the database's clock.
    """
    stale_before = db_now_plus(-stale_after.total_seconds())
    unapplied = list(
        Session.objects.filter(events__applied_at__isnull=True, events__received_at__lt=stale_before)
        # One that kept raising waits for an admin's "Process again" (see processing.py).
        .filter(processing_attempts__lt=PROCESSING_MAX_ATTEMPTS)
        .values_list("id", flat=True)
        .distinct()[:1000]
    )
    # One filter() call, so that one and the same action is pending, stale and due.
    due = list(
        Session.objects.filter(Q(actions_lease_until__isnull=True) | Q(actions_lease_until__lt=Now()))
        .filter(
            Q(actions__next_attempt_at__isnull=True) | Q(actions__next_attempt_at__lte=Now()),
            actions__status=CrmAction.Status.PENDING,
            actions__updated_at__lt=stale_before,
        )
        # Waiting in a batch: its flush concludes it, then runs the rest (records.services.batching).
        .exclude(Exists(CrmAction.objects.filter(session=OuterRef("pk"), status="pending", batch__isnull=False)))
        # Held back by a failed contact or record action: waiting for an admin's Retry, not a sweep.
        .exclude(actions__status=CrmAction.Status.FAILED, actions__kind__in=BLOCKING_KINDS)
        .values_list("id", flat=True)
        .distinct()[:1000]
    )
    return unapplied, due
