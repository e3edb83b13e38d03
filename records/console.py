"""What the operations console says about sessions and actions. Pure functions only.

The admin and the commands turn rows into these small dataclasses (records.selectors) and show
what comes back; the session list's state filter runs the same rules as database conditions.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


class SessionState:
    """The session list's state column and filter."""

    DONE = "done"
    WAITING = "waiting"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    FAILED = "failed"
    CHOICES = [
        (DONE, "Done"),
        (WAITING, "Waiting for an event"),
        (IN_PROGRESS, "In progress"),
        (BLOCKED, "Blocked by a failed action"),
        (FAILED, "Failed"),
    ]


@dataclass(frozen=True)
class SessionFacts:
    """What the state of a session is decided from (each one an indexed lookup)."""

    processing_failed: bool
    ended: bool
    unapplied_events: bool
    # The first pending action, if any.
    pending_action_id: int | None
    # The first failed contact or record action (every later action of the session waits for it).
    failed_blocking_action_id: int | None
    # The first failed action of any kind.
    failed_action_id: int | None


@dataclass(frozen=True)
class SessionVerdict:
    state: str
    label: str
    # The action the admin should look at (the one it is blocked by, or the failed one).
    action_id: int | None = None


def session_state(facts: SessionFacts) -> SessionVerdict:
    """Done, waiting for an event, in progress, blocked by action #N, or failed.

    A failed contact or record action blocks the pending actions after it; any failed action with
    nothing left pending is a failure an admin has to retry.
    """
    if facts.processing_failed:
        return SessionVerdict(SessionState.FAILED, "Failed: its events could not be applied")
    if facts.pending_action_id is not None and facts.failed_blocking_action_id is not None:
        blocking = facts.failed_blocking_action_id
        return SessionVerdict(SessionState.BLOCKED, f"Blocked by action #{blocking}", blocking)
    if facts.pending_action_id is not None or facts.unapplied_events:
        return SessionVerdict(SessionState.IN_PROGRESS, "In progress", facts.pending_action_id)
    if facts.failed_action_id is not None:
        failed = facts.failed_action_id
        return SessionVerdict(SessionState.FAILED, f"Failed: action #{failed}", failed)
    if not facts.ended:
        return SessionVerdict(SessionState.WAITING, "Waiting for an event (the session has not ended)")
    return SessionVerdict(SessionState.DONE, "Done")


@dataclass(frozen=True)
class ActionFacts:
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str
    # The failed contact or record action before this one, when there is one.
    blocked_by_id: int | None
    blocked_by_kind: str = ""


def action_explanation(facts: ActionFacts, now: datetime) -> str:
    """Why a pending action has not run, in words; empty for a finished one."""
    if facts.status != "pending":
        return ""
    if facts.blocked_by_id is not None:
        what = f" ({facts.blocked_by_kind})" if facts.blocked_by_kind else ""
        return f"Waits for action #{facts.blocked_by_id}{what}, which failed: retry that one first."
    if facts.next_attempt_at is not None and facts.next_attempt_at > now:
        seconds = max(1, round((facts.next_attempt_at - now).total_seconds()))
        why = f" after: {facts.last_error}" if facts.last_error else ""
        return f"Runs again in {_duration(seconds)}{why}"
    if facts.attempts == 0:
        return "Queued: runs when a worker takes the session."
    return f"Due now (attempt {facts.attempts + 1})."


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


# Numbers, ids and quoted values vary between otherwise identical errors.
_VARYING = re.compile(r"(?<!\w)\d[\w.:-]*|'[^']*'|\"[^\"]*\"")


def error_group(error: str) -> str:
    """The kind of an error, for grouping failures: its first line with ids and numbers blanked.

    "POST /api/v2/tickets.json: 503 ..." and the same with another ticket id fall in one group,
    while the status code stays (it says what went wrong), so 503s and 429s do not.
    """
    line = (error.strip().splitlines() or [""])[0]
    # Keep HTTP status codes: "… -> 503" and ": 503 {…}" tell the cause.
    kept = re.sub(r"(?<=: )([1-5]\d\d)(?=\b)", r"HTTP\1", line)
    blanked = _VARYING.sub("…", kept)
    return blanked.replace("HTTP", "")[:200] or "(no error recorded)"


@dataclass(frozen=True)
class ErrorGroup:
    error: str
    count: int
    example_action_id: int


def group_errors(failures: Iterable[tuple[int, str]]) -> list[ErrorGroup]:
    """(action id, error) pairs grouped by error kind, the largest group first."""
    groups: dict[str, list[int]] = {}
    for action_id, error in failures:
        groups.setdefault(error_group(error), []).append(action_id)
    return sorted(
        (ErrorGroup(error=key, count=len(ids), example_action_id=min(ids)) for key, ids in groups.items()),
        key=lambda group: (-group.count, group.error),
    )
