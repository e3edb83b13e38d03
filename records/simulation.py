"""Dry-run of a settings change: what a session's record would look like under other settings.

Pure functions only. The rule engine is pure, so a session's stored events can be decided again
under any RuleSet without reaching the CRM; which record a session lands on needs CRM data, and
here it is decided by records.rules.choose_record over the records our own earlier sessions of
the same contact landed on (whose current status only the CRM knows: they are taken as open).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from records.rules import (
    Candidate,
    CreateRecord,
    PlannedAction,
    RuleSet,
    SessionEvent,
    SessionState,
    choose_record,
    record_request,
    replay,
)


@dataclass(frozen=True)
class RecordPlan:
    """What a session's record would get: where it goes, its title, tags and assignee."""

    created: bool
    placement: str
    title: str = ""
    tags: tuple[str, ...] = ()
    assignee: str = ""
    rule: str = ""


NO_RECORD = RecordPlan(created=False, placement="no record")


@dataclass(frozen=True)
class Difference:
    what: str
    before: str
    after: str


@dataclass(frozen=True)
class SessionComparison:
    session_id: str
    before: RecordPlan
    after: RecordPlan
    differences: tuple[Difference, ...]


def record_plan(
    rules: RuleSet,
    session_id: str,
    events: Sequence[SessionEvent],
    candidates: Sequence[Candidate],
    now: datetime,
) -> RecordPlan:
    """Decide the session's events again under `rules`; where its record goes, and what it gets."""
    state = SessionState(session_id=session_id)
    planned: list[PlannedAction] = []
    for decision in replay(rules, state, events):
        planned += decision.actions
        state = decision.state
    create = next((action for action in planned if isinstance(action.payload, CreateRecord)), None)
    if create is None or not isinstance(payload := create.payload, CreateRecord):
        return NO_RECORD
    choice = choose_record(record_request(payload, session_type=state.session_type), candidates, now)
    if choice.record_id is None:
        placement = "new record"
    else:
        placement = f"appended to record {choice.record_id}" + (" (reopened)" if choice.reopen else "")
    tags = tuple(filter(None, [payload.session_type_name, *payload.tags]))
    return RecordPlan(
        created=True,
        placement=placement,
        title=payload.subject,
        tags=tags,
        assignee=payload.assignee_email,
        rule=create.rule,
    )


def _words(plan: RecordPlan, what: str) -> str:
    value: Any = getattr(plan, what)
    if isinstance(value, tuple):
        return ", ".join(value) or "(none)"
    return str(value) or "(none)"


def compare_plans(session_id: str, before: RecordPlan, after: RecordPlan) -> SessionComparison:
    """What differs for the session: new record vs append (and to which), title, tags, assignee."""
    differences = []
    if before.placement != after.placement:
        differences.append(Difference("Record", before.placement, after.placement))
    if before.created and after.created:
        for label, what in (("Title", "title"), ("Tags", "tags"), ("Assignee", "assignee")):
            if getattr(before, what) != getattr(after, what):
                differences.append(Difference(label, _words(before, what), _words(after, what)))
    return SessionComparison(session_id, before, after, tuple(differences))


def simulate_session(
    current: RuleSet,
    changed: RuleSet,
    session_id: str,
    events: Sequence[SessionEvent],
    candidates: Sequence[Candidate],
    now: datetime,
) -> SessionComparison:
    """The session under the settings in force and under the changed ones, and what differs."""
    before = record_plan(current, session_id, events, candidates, now)
    after = record_plan(changed, session_id, events, candidates, now)
    return compare_plans(session_id, before, after)
