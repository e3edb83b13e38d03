"""Choices among CRM candidates, made in the executor with CRM data but decided here, purely."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from integrations.providers.base import Contact
from records.rules.actions import CreateRecord
from records.rules.ruleset import CALLBACK_SHORT_CALL_SECONDS, DEFAULT_CLOSED_WITHIN_DAYS, RecordMode
from records.vocabulary import SessionType


@dataclass(frozen=True)
class Candidate:
    """One of the contact's CRM records, with what the product knows of the session that made it."""

    record_id: str
    status: str
    is_open: bool
    can_reopen: bool
    updated_at: datetime | None
    # When the CRM solved or closed it (Zendesk's solved_at metric, Kustomer's last done); R2
    # counts from this, never from the last update (an automation's tag or survey moves that).
    closed_at: datetime | None = None
    # From the latest of our sessions linked to the record; empty when no session of ours made it.
    queue_id: str = ""
    leaf_queue: str = ""
    menu_path: str = ""
    channel: str = ""
    voicemail: bool = False


@dataclass(frozen=True)
class RecordChoice:
    record_id: str | None
    reopen: bool
    reason: str

    @property
    def creates(self) -> bool:
        return self.record_id is None


@dataclass(frozen=True)
class RecordRequest:
    mode: RecordMode
    channel: str = ""
    queue_id: str = ""
    leaf_queue: str = ""
    menu_path: str = ""
    session_type: str = ""
    append_to_open_records: bool = True
    append_to_recently_closed: bool = False
    closed_within_days: int = DEFAULT_CLOSED_WITHIN_DAYS
    never_append: bool = False
    outbound_record_id: str = ""
    # S7: the original session's record, and how long that call lasted.
    callback_kind: str = ""
    original_record_id: str = ""
    original_call_seconds: float | None = None


def record_request(
    payload: CreateRecord,
    *,
    session_type: str,
    original_record_id: str = "",
    original_call_seconds: float | None = None,
) -> RecordRequest:
    """The record lookup a create_record action asks for, for choose_record."""
    policy = payload.policy
    return RecordRequest(
        mode=payload.mode,
        channel=payload.channel,
        queue_id=payload.queue_id,
        leaf_queue=payload.leaf_queue,
        menu_path=payload.menu_path,
        session_type=session_type,
        append_to_open_records=policy.append_to_open_records,
        append_to_recently_closed=policy.append_to_recently_closed,
        closed_within_days=policy.closed_within_days,
        never_append=policy.never_append,
        outbound_record_id=payload.outbound_record_id,
        callback_kind=payload.callback.kind,
        original_record_id=original_record_id,
        original_call_seconds=original_call_seconds,
    )


@dataclass(frozen=True)
class _Candidates:
    """The contact's records as each mode looks at them."""

    newest_first: Sequence[Candidate]
    by_id: Mapping[str, Candidate]
    now: datetime


def _describe(candidate: Candidate) -> str:
    return f"record {candidate.record_id} ({candidate.status})"


def choose_record(request: RecordRequest, candidates: Sequence[Candidate], now: datetime) -> RecordChoice:
    """Which record the session lands on: an existing one (maybe reopened) or a new one, and why."""
    newest_first = sorted(candidates, key=lambda c: c.updated_at or datetime.min.replace(tzinfo=now.tzinfo))
    newest_first.reverse()
    seen = _Candidates(newest_first, {candidate.record_id: candidate for candidate in candidates}, now)
    # An unknown mode looks up like an inbound session does.
    return _CHOOSERS.get(request.mode, _choose_inbound)(request, seen)


def _choose_new(request: RecordRequest, seen: _Candidates) -> RecordChoice:
    return RecordChoice(None, False, "new record")


def _choose_voicemail(request: RecordRequest, seen: _Candidates) -> RecordChoice:
    open_ones = sum(1 for candidate in seen.newest_first if candidate.is_open)
    return RecordChoice(None, False, f"new voicemail record even with {open_ones} open record(s) (S4)")


def _choose_callback(request: RecordRequest, seen: _Candidates) -> RecordChoice:
    """S7."""
    original = seen.by_id.get(request.original_record_id)
    short = request.original_call_seconds is not None and request.original_call_seconds < CALLBACK_SHORT_CALL_SECONDS
    if request.callback_kind == "callback_button" and not short:
        return _choose_outbound(request, seen, "call back after a call of 10 s or more: ")
    if original is not None and original.is_open:
        how = "hang up and call back" if request.callback_kind == "hangup_and_callback" else "a call under 10 s"
        return RecordChoice(original.record_id, False, f"appended to {_describe(original)}: call back after {how} (S7)")
    missing = "is not open" if original else "is unknown"
    return RecordChoice(None, False, f"new record: the original call's record {missing} (S7)")


def _choose_outbound(request: RecordRequest, seen: _Candidates, prefix: str = "") -> RecordChoice:
    """S3, and O1 when the agent picked a record."""
    if request.never_append:
        return RecordChoice(None, False, f"{prefix}new record: appending to existing records is off (R9)")
    if request.outbound_record_id:
        chosen = seen.by_id.get(request.outbound_record_id)
        if chosen is not None and chosen.is_open:
            return RecordChoice(
                chosen.record_id, True, f"{prefix}appended to the agent's choice {_describe(chosen)} (O1)"
            )
        return RecordChoice(
            None, False, f"{prefix}new record: the chosen record {request.outbound_record_id} is not open"
        )
    if not seen.newest_first:
        return RecordChoice(None, False, f"{prefix}new record: the contact has no record (S3)")
    latest = seen.newest_first[0]
    if latest.is_open:
        return RecordChoice(
            latest.record_id, True, f"{prefix}appended to the latest {_describe(latest)}, set open (S3)"
        )
    return RecordChoice(None, False, f"{prefix}new record: the latest {_describe(latest)} is not open (S3)")


def _choose_inbound(request: RecordRequest, seen: _Candidates) -> RecordChoice:
    """S6 with R1, R2 and R9; S4's voicemail record reused by a later IVR call."""
    if request.never_append:
        return RecordChoice(None, False, "new record: appending to existing records is off (R9)")
    if not request.append_to_open_records:
        return RecordChoice(None, False, "new record: appending to open records is off (R1)")
    same = [
        candidate
        for candidate in seen.newest_first
        if candidate.queue_id == request.queue_id
        and candidate.menu_path == request.menu_path
        and candidate.channel == request.channel
        and not candidate.voicemail
    ]
    queue, menu = request.leaf_queue or "none", request.menu_path or "none"
    match = f"same contact, queue {queue}, menu {menu}, channel {request.channel}"
    for candidate in same:
        if candidate.is_open:
            return RecordChoice(candidate.record_id, False, f"appended to {_describe(candidate)}: {match} (R1/S6)")
    # S4: a voicemail record can be reused by a later IVR call.
    if request.session_type == SessionType.VOICE_INBOUND_IVR:
        for candidate in seen.newest_first:
            if candidate.voicemail and candidate.is_open:
                return RecordChoice(candidate.record_id, False, f"appended to voicemail {_describe(candidate)} (S4)")
    reopened, r2 = _reopen_recently_closed(request, same, seen.now, match)
    if reopened is not None:
        return reopened
    others = ", ".join(_describe(candidate) for candidate in seen.newest_first[:5]) or "none"
    return RecordChoice(None, False, f"new record: no open record with {match} (contact's records: {others}){r2}")


def _reopen_recently_closed(
    request: RecordRequest, same: Sequence[Candidate], now: datetime, match: str
) -> tuple[RecordChoice | None, str]:
    """R2: the matching record closed within the window, reopened; else why none was (or "")."""
    if not request.append_to_recently_closed:
        return None, ""
    since = now - timedelta(days=request.closed_within_days)
    within = f"closed within {request.closed_within_days} days"
    # Most recently closed first: that is the one the customer is calling back about.
    closed = sorted(
        ((c.closed_at, c) for c in same if not c.is_open and c.closed_at is not None),
        key=lambda pair: pair[0],
        reverse=True,
    )
    for closed_at, candidate in closed:
        if candidate.can_reopen and closed_at >= since:
            closed_on = closed_at.strftime("%Y-%m-%d %H:%M UTC")
            reason = f"appended to {_describe(candidate)}, {within} (closed {closed_on}), and reopened: {match} (R2)"
            return RecordChoice(candidate.record_id, True, reason), ""
    if not closed:
        return None, ""
    closed_at, latest = closed[0]
    when = closed_at.strftime("%Y-%m-%d")
    return None, f"; no record {within} can be reopened (R2): the latest, record {latest.record_id}, was closed {when}"


_CHOOSERS: Mapping[str, Callable[[RecordRequest, _Candidates], RecordChoice]] = {
    RecordMode.NEW: _choose_new,
    RecordMode.VOICEMAIL: _choose_voicemail,
    RecordMode.CALLBACK: _choose_callback,
    RecordMode.OUTBOUND: _choose_outbound,
    RecordMode.INBOUND: _choose_inbound,
}


def choose_contact(contacts: Sequence[Contact]) -> Contact | None:
    """Several contacts share the number: the most recently created one (S5's fallback)."""
    # Ids break ties within a second: CRMs hand them out in increasing order.
    return max(contacts, key=lambda contact: (contact.created_at or "", contact.id.zfill(40)), default=None)
