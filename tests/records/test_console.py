"""The console's pure decisions: a session's state, why an action waits, how errors are grouped."""

from datetime import UTC, datetime, timedelta

import pytest

from records.console import (
    ActionFacts,
    SessionFacts,
    SessionState,
    action_explanation,
    error_group,
    group_errors,
    session_state,
)
from records.simulation import NO_RECORD, RecordPlan, compare_plans

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def facts(**changes: object) -> SessionFacts:
    base: dict[str, object] = {
        "processing_failed": False,
        "ended": True,
        "unapplied_events": False,
        "pending_action_id": None,
        "failed_blocking_action_id": None,
        "failed_action_id": None,
    }
    return SessionFacts(**(base | changes))  # type: ignore[arg-type]  # the table's values


@pytest.mark.parametrize(
    ("changes", "state", "label"),
    [
        ({}, SessionState.DONE, "Done"),
        ({"ended": False}, SessionState.WAITING, "Waiting for an event (the session has not ended)"),
        ({"pending_action_id": 7}, SessionState.IN_PROGRESS, "In progress"),
        ({"unapplied_events": True}, SessionState.IN_PROGRESS, "In progress"),
        (
            {"pending_action_id": 8, "failed_blocking_action_id": 7, "failed_action_id": 7},
            SessionState.BLOCKED,
            "Blocked by action #7",
        ),
        ({"failed_action_id": 9}, SessionState.FAILED, "Failed: action #9"),
        # a failed comment does not hold back the pending actions after it
        ({"failed_action_id": 9, "pending_action_id": 10}, SessionState.IN_PROGRESS, "In progress"),
        (
            {"processing_failed": True, "pending_action_id": 3},
            SessionState.FAILED,
            "Failed: its events could not be applied",
        ),
    ],
)
def test_session_state(changes: dict[str, object], state: str, label: str) -> None:
    verdict = session_state(facts(**changes))

    assert (verdict.state, verdict.label) == (state, label)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (ActionFacts("succeeded", 1, None, "", None), ""),
        (
            ActionFacts("pending", 0, None, "", 4, "Find or create contact"),
            "Waits for action #4 (Find or create contact), which failed: retry that one first.",
        ),
        (
            ActionFacts("pending", 2, NOW + timedelta(seconds=30), "POST /x: 503", None),
            "Runs again in 30 s after: POST /x: 503",
        ),
        (ActionFacts("pending", 2, NOW + timedelta(minutes=10), "", None), "Runs again in 10 min"),
        (ActionFacts("pending", 0, None, "", None), "Queued: runs when a worker takes the session."),
        (ActionFacts("pending", 3, NOW - timedelta(seconds=1), "boom", None), "Due now (attempt 4)."),
    ],
)
def test_action_explanation(action: ActionFacts, expected: str) -> None:
    assert action_explanation(action, NOW) == expected


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("POST /api/v2/tickets/12/comments.json: 503 {}", "POST /api/v2/tickets/98/comments.json: 503 {}", True),
        ("POST /api/v2/tickets.json: 503 {}", "POST /api/v2/tickets.json: 502 {}", False),
        (
            "GET /api/v2/users/search.json: timed out after 15.0s",
            "GET /api/v2/users/search.json: timed out after 5s",
            True,
        ),
        ("gave up after 8 attempts: 'x'", "gave up after 9 attempts: 'y'", True),
        ("POST /api/v2/users.json: 429 , retry after 10s", "POST /api/v2/users.json: 503 x", False),
    ],
)
def test_error_group(first: str, second: str, same: bool) -> None:
    assert (error_group(first) == error_group(second)) is same


def test_group_errors_largest_first_with_an_example() -> None:
    groups = group_errors([(5, "POST /a/1: 503"), (3, "POST /a/2: 503"), (9, "timed out after 5s")])

    assert [(group.count, group.example_action_id) for group in groups] == [(2, 3), (1, 9)]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (
            RecordPlan(True, "appended to record 4", "A", ("voice",), "ana@example.com"),
            RecordPlan(True, "new record", "A", ("voice",), "ana@example.com"),
            [("Record", "appended to record 4", "new record")],
        ),
        (
            RecordPlan(True, "new record", "A", ("voice",), ""),
            RecordPlan(True, "new record", "B", ("voice", "crmbridge"), "ben@example.com"),
            [("Title", "A", "B"), ("Tags", "voice", "voice, crmbridge"), ("Assignee", "(none)", "ben@example.com")],
        ),
        (RecordPlan(True, "new record", "A"), NO_RECORD, [("Record", "new record", "no record")]),
        (NO_RECORD, NO_RECORD, []),
    ],
)
def test_compare_plans(before: RecordPlan, after: RecordPlan, expected: list[tuple[str, str, str]]) -> None:
    differences = compare_plans("c-1", before, after).differences

    assert [(d.what, d.before, d.after) for d in differences] == expected
