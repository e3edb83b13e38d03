"""The one failure policy (integrations.failures): a table of errors and what is done about each."""

import pytest
import redis
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from integrations.exceptions import (
    CredentialsUnreadable,
    CrmAuthError,
    CrmNotFound,
    CrmOwnLimitReached,
    CrmRateLimited,
    CrmRequestError,
    CrmTransientError,
    CrmUnsupported,
    UnknownCrmKind,
)
from integrations.failures import (
    Failure,
    RetryPolicy,
    backoff_seconds,
    broker_countdown,
    classify,
    decide,
    describe_duration,
    failure_outcome,
    read_retry_delay,
)

POLICY = RetryPolicy(base_seconds=2.0, cap_seconds=600.0, budget_seconds=86400.0)
HALF = 0.5  # the dice: equal jitter puts a step of s at 0.75 s


@pytest.mark.parametrize(
    ("error", "failure", "retry", "counts", "spends"),
    [
        (CrmTransientError("GET x: 503 unavailable"), Failure.CRM_UNAVAILABLE, True, True, True),
        (CrmTransientError("GET x: timed out after 15s"), Failure.CRM_UNAVAILABLE, True, True, True),
        (CrmTransientError("GET x: ConnectionError: refused"), Failure.CRM_UNAVAILABLE, True, True, True),
        (CrmRateLimited("429", retry_after=30), Failure.RATE_LIMITED, True, False, True),
        (CrmRateLimited("429 without Retry-After", retry_after=60), Failure.RATE_LIMITED, True, False, True),
        (CrmOwnLimitReached("our budget", retry_after=5), Failure.OWN_LIMIT, True, False, False),
        (CrmAuthError("401"), Failure.CREDENTIALS, False, True, False),
        (CrmNotFound("404", status_code=404), Failure.STALE_ID, False, True, False),
        (CrmRequestError("422 invalid email", status_code=422), Failure.REFUSED, False, True, False),
        (CrmUnsupported("no API"), Failure.UNSUPPORTED, False, False, False),
        (UnknownCrmKind("no provider"), Failure.UNSUPPORTED, False, False, False),
        (CredentialsUnreadable("key rotated away"), Failure.UNSUPPORTED, False, False, False),
        (redis.ConnectionError("Redis gone"), Failure.OUR_INFRASTRUCTURE, True, False, False),
        (redis.TimeoutError("Redis slow"), Failure.OUR_INFRASTRUCTURE, True, False, False),
        (OperationalError("server closed the connection"), Failure.OUR_INFRASTRUCTURE, True, False, False),
        (InterfaceError("connection already closed"), Failure.OUR_INFRASTRUCTURE, True, False, False),
        (BrokerError("broker down"), Failure.OUR_INFRASTRUCTURE, True, False, False),
        (IntegrityError("duplicate key"), Failure.OUR_BUG, False, False, False),
        (DataError("value too long"), Failure.OUR_BUG, False, False, False),
        (KeyError("subject"), Failure.OUR_BUG, False, False, False),
        (TypeError("NoneType"), Failure.OUR_BUG, False, False, False),
        (ValueError("bad date"), Failure.OUR_BUG, False, False, False),
    ],
)
def test_each_error_is_classified_once(
    error: Exception, failure: Failure, retry: bool, counts: bool, spends: bool
) -> None:
    decision = decide(error, attempt=1, failing_for=0.0, policy=POLICY, rand=lambda: HALF)

    assert classify(error) == failure
    assert decision.failure == failure
    assert decision.retry is retry
    assert decision.counts_as_attempt is counts
    assert decision.spends_budget is spends
    assert (decision.delay > 0) is retry


@pytest.mark.parametrize(
    ("error", "attempt", "failing_for", "retry", "delay", "budget_spent"),
    [
        # backoff: 1.5 s, 3 s, 6 s ... capped at 10 min (equal jitter at one half)
        (CrmTransientError("503"), 1, 0.0, True, 1.5, False),
        (CrmTransientError("503"), 2, 2.0, True, 3.0, False),
        (CrmTransientError("503"), 3, 5.0, True, 6.0, False),
        (CrmTransientError("503"), 30, 7200.0, True, 450.0, False),
        # the CRM down for an hour, then for most of a day: still retried
        (CrmTransientError("503"), 200, 3600.0, True, 450.0, False),
        (CrmTransientError("503"), 400, 86399.0, True, 450.0, False),
        # the budget spent: given up
        (CrmTransientError("503"), 401, 86400.0, False, 0.0, True),
        (CrmRateLimited("429", retry_after=90), 3, 86400.0, False, 0.0, True),
        # Retry-After honoured, plus up to a second of jitter, even when longer than the backoff cap
        (CrmRateLimited("429", retry_after=30), 1, 0.0, True, 30.5, False),
        (CrmRateLimited("429", retry_after=3600), 1, 100.0, True, 3600.5, False),
        # our own limit and our own infrastructure: retried however long they last
        (CrmOwnLimitReached("own", retry_after=5), 1, 10 * 86400.0, True, 5.5, False),
        (redis.ConnectionError("gone"), 3, 10 * 86400.0, True, 6.0, False),
        # a refusal fails at once, however young
        (CrmRequestError("422", status_code=422), 1, 0.0, False, 0.0, False),
    ],
)
def test_retry_within_the_time_budget_with_capped_backoff(
    error: Exception, attempt: int, failing_for: float, retry: bool, delay: float, budget_spent: bool
) -> None:
    decision = decide(error, attempt=attempt, failing_for=failing_for, policy=POLICY, rand=lambda: HALF)

    assert decision.retry is retry
    assert decision.delay == delay
    assert decision.budget_spent is budget_spent


@pytest.mark.parametrize(
    ("attempt", "rand", "seconds"),
    [(1, 0.0, 1.0), (1, 1.0, 2.0), (2, 0.0, 2.0), (3, 0.5, 6.0), (10, 1.0, 600.0), (20, 0.0, 300.0)],
)
def test_backoff_seconds_grows_exponentially_with_jitter_and_a_cap(attempt: int, rand: float, seconds: float) -> None:
    assert backoff_seconds(attempt, base=2.0, cap=600.0, rand=lambda: rand) == seconds


@pytest.mark.parametrize(
    ("delay", "countdown"),
    [(0.0, 0.0), (600.0, 600.0), (840.0, 840.0), (840.5, None), (3600.0, None)],
)
def test_a_delay_longer_than_the_broker_holds_is_left_to_the_sweeper(delay: float, countdown: float | None) -> None:
    assert broker_countdown(delay, visibility_timeout=900.0) == countdown


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5 s"), (59.4, "59 s"), (60, "1 min"), (90, "1.5 min"), (3600, "1 h"), (86400, "1 day"), (172800, "2 days")],
)
def test_durations_in_words(seconds: float, text: str) -> None:
    assert describe_duration(seconds) == text


@pytest.mark.parametrize(
    ("error", "retry", "delay"),
    [
        (CrmTransientError("GET x: 500 oops"), 1, 0.15),
        (CrmTransientError("GET x: timed out after 15s"), 2, 0.3),
        (CrmTransientError("GET x: ConnectionError: refused"), 2, 0.3),
        (CrmTransientError("GET x: 503 still"), 3, None),
        (CrmRateLimited("429", retry_after=1), 1, 1.1),
        (CrmRateLimited("429", retry_after=0), 2, 0.1),
        (CrmRateLimited("429", retry_after=30), 1, None),
        (CrmOwnLimitReached("own budget", retry_after=0.5), 1, None),
        (CrmAuthError("401"), 1, None),
        (CrmNotFound("404", status_code=404), 1, None),
        (CrmRequestError("422", status_code=422), 1, None),
        (redis.ConnectionError("our redis"), 1, None),
    ],
)
def test_read_retry_delay_retries_transient_reads_briefly_in_place(
    error: Exception, retry: int, delay: float | None
) -> None:
    assert read_retry_delay(error, retry=retry, rand=lambda: HALF) == (None if delay is None else pytest.approx(delay))


STALE = {Failure.STALE_ID: "the agent has no active CRM session to set the status on"}
DAY = 86400.0 + 1


@pytest.mark.parametrize(
    ("error", "attempts", "failing_for", "wordings", "text", "kept", "circuit", "credentials", "unexpected"),
    [
        (CrmTransientError("GET x: 503 busy"), 3, 60.0, None, "GET x: 503 busy", 3, False, False, False),
        (
            CrmTransientError("GET x: 503 busy"),
            6,
            DAY,
            None,
            "gave up after 6 attempts: GET x: 503 busy (the CRM kept failing for 1 day)",
            6,
            False,
            False,
            False,
        ),
        (CrmRateLimited("GET x: 429", retry_after=5), 2, 10.0, None, "GET x: 429", 1, None, False, False),
        (
            CrmAuthError("GET x: 401 no"),
            1,
            0.0,
            None,
            "CRM refused the credentials: GET x: 401 no",
            1,
            None,
            True,
            False,
        ),
        (CrmNotFound("PUT x: 404 gone", status_code=404), 1, 0.0, None, "PUT x: 404 gone", 1, True, False, False),
        (
            CrmNotFound("PUT x: 404 gone", status_code=404),
            1,
            0.0,
            STALE,
            "the agent has no active CRM session to set the status on: PUT x: 404 gone",
            1,
            True,
            False,
            False,
        ),
        (CrmRequestError("POST x: 422 no", status_code=422), 1, 0.0, None, "POST x: 422 no", 1, True, False, False),
        (KeyError("users"), 1, 0.0, None, "unexpected answer from the CRM (KeyError: 'users')", 0, None, False, True),
        (redis.ConnectionError("down"), 2, 0.0, None, "down", 1, None, False, False),
        (CrmUnsupported("no such API"), 1, 0.0, None, "no such API", 0, None, False, False),
    ],
)
def test_failure_outcome_words_and_books_each_failure_once(
    error: Exception,
    attempts: int,
    failing_for: float,
    wordings: dict[Failure, str] | None,
    text: str,
    kept: int,
    circuit: bool | None,
    credentials: bool,
    unexpected: bool,
) -> None:
    decision = decide(error, attempt=attempts, failing_for=failing_for, policy=POLICY, rand=lambda: HALF)

    outcome = failure_outcome(decision, error, attempts=attempts, failing_for=failing_for, wordings=wordings)

    assert outcome.text == text
    assert outcome.attempts == kept
    assert outcome.circuit_success is circuit
    assert outcome.blames_credentials is credentials
    assert outcome.unexpected is unexpected


def test_read_retry_delay_makes_no_retry_when_none_are_allowed() -> None:
    assert read_retry_delay(CrmTransientError("GET x: 500 oops"), retry=1, retries=0) is None
