"""One failure policy for every outbox and task that calls a CRM (actions, status pushes, user
lookups, custom-field creation, ticket imports): what went wrong, whether and when to try again,
and whether the try counts as a CRM attempt. Pure: no I/O, the clock and the dice are passed in.

Transient CRM trouble (5xx, timeouts, refused connections, 429) is retried with capped
exponential backoff (a 429's Retry-After honoured) for as long as the retry budget lasts, counted
from the first failure: a CRM down for an hour does not fail work that has a day. A refusal that
no retry will fix (4xx, wrong credentials, a stale id, no such API) fails at once. Trouble of our
own (Redis, the database, the broker, our own request budget) is retried without end and is
never counted as an attempt at the CRM, nor against the budget.
"""

import enum
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import redis
from django.db import DatabaseError, InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from integrations.exceptions import (
    CrmAuthError,
    CrmConfigurationError,
    CrmError,
    CrmNotFound,
    CrmOwnLimitReached,
    CrmRateLimited,
    CrmRequestError,
    CrmTransientError,
    CrmUnsupported,
)

# Everything the policy has a verdict for; callers catch this tuple and hand the error over.
HANDLED_ERRORS: tuple[type[Exception], ...] = (
    CrmError,
    redis.RedisError,
    DatabaseError,
    InterfaceError,
    BrokerError,
    KeyError,
    TypeError,
    ValueError,
)

# A delay the broker must hold stays this far below its visibility timeout: a longer one would be
# redelivered (run twice) while still waiting, so it is left to the sweeper instead.
COUNTDOWN_MARGIN_SECONDS = 60.0


class Failure(enum.StrEnum):
    CRM_UNAVAILABLE = "crm_unavailable"  # timeout, refused connection, 5xx
    RATE_LIMITED = "rate_limited"  # 429, or the CRM's request-limit answer, with its wait
    OWN_LIMIT = "own_limit"  # our own per-minute budget for the CRM is spent: nothing was sent
    CREDENTIALS = "credentials"  # 401/403: wrong credentials or a missing permission
    STALE_ID = "stale_id"  # 404: the record or user is gone (deleted or merged away)
    REFUSED = "refused"  # any other 4xx: the CRM refused the request itself
    UNSUPPORTED = "unsupported"  # no provider, no such API, unreadable stored credentials
    OUR_INFRASTRUCTURE = "our_infrastructure"  # our Redis, database or broker
    # KeyError/TypeError/ValueError, a refused SQL write: a payload or an answer of a shape we did not expect
    OUR_BUG = "our_bug"


@dataclass(frozen=True)
class Rule:
    retry: bool
    # Whether the try counts as an attempt at the CRM (shown on the row; "was anything sent").
    counts_as_attempt: bool
    # Whether the time it fails for is taken from the retry budget (False: retried without end).
    spends_budget: bool
    # Whether the wait is the CRM's (Retry-After) rather than our backoff.
    waits_as_told: bool = False


RULES: dict[Failure, Rule] = {
    Failure.CRM_UNAVAILABLE: Rule(retry=True, counts_as_attempt=True, spends_budget=True),
    Failure.RATE_LIMITED: Rule(retry=True, counts_as_attempt=False, spends_budget=True, waits_as_told=True),
    Failure.OWN_LIMIT: Rule(retry=True, counts_as_attempt=False, spends_budget=False, waits_as_told=True),
    Failure.CREDENTIALS: Rule(retry=False, counts_as_attempt=True, spends_budget=False),
    Failure.STALE_ID: Rule(retry=False, counts_as_attempt=True, spends_budget=False),
    Failure.REFUSED: Rule(retry=False, counts_as_attempt=True, spends_budget=False),
    Failure.UNSUPPORTED: Rule(retry=False, counts_as_attempt=False, spends_budget=False),
    Failure.OUR_INFRASTRUCTURE: Rule(retry=True, counts_as_attempt=False, spends_budget=False),
    Failure.OUR_BUG: Rule(retry=False, counts_as_attempt=False, spends_budget=False),
}

# Most specific first: CrmOwnLimitReached is a CrmRateLimited is a CrmTransientError.
_CLASSES: tuple[tuple[tuple[type[BaseException], ...], Failure], ...] = (
    ((CrmOwnLimitReached,), Failure.OWN_LIMIT),
    ((CrmRateLimited,), Failure.RATE_LIMITED),
    ((CrmTransientError,), Failure.CRM_UNAVAILABLE),
    ((CrmAuthError,), Failure.CREDENTIALS),
    ((CrmNotFound,), Failure.STALE_ID),
    ((CrmRequestError,), Failure.REFUSED),
    ((CrmUnsupported, CrmConfigurationError, CrmError), Failure.UNSUPPORTED),
    # The database gone or its connection cut; an IntegrityError or DataError is our bug instead.
    ((redis.RedisError, OperationalError, InterfaceError, BrokerError), Failure.OUR_INFRASTRUCTURE),
    ((DatabaseError,), Failure.OUR_BUG),
)


def classify(error: BaseException) -> Failure:
    """What kind of failure this error is; anything unforeseen is our own bug."""
    for classes, failure in _CLASSES:
        if isinstance(error, classes):
            return failure
    return Failure.OUR_BUG


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff steps and the time budget of transient CRM trouble (settings, or the connection's own)."""

    base_seconds: float
    cap_seconds: float
    budget_seconds: float


@dataclass(frozen=True)
class Decision:
    failure: Failure
    retry: bool
    # Seconds until the next try (0 when there is none).
    delay: float
    counts_as_attempt: bool
    spends_budget: bool
    # True when it is not retried because the budget ran out (rather than never retried).
    budget_spent: bool = False


def backoff_seconds(attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random, capped."""
    step = min(cap, base * 2 ** max(0, attempt - 1))
    return step / 2 + rand() * step / 2


def decide(
    error: BaseException,
    *,
    attempt: int,
    failing_for: float,
    policy: RetryPolicy,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Whether and when to try again after `error`.

    `attempt` is the try that failed (1 for the first; the backoff grows with it), `failing_for`
    the seconds since the first failure of this run of failures (0 for the first one).
    """
    failure = classify(error)
    rule = RULES[failure]
    base = Decision(
        failure=failure,
        retry=False,
        delay=0.0,
        counts_as_attempt=rule.counts_as_attempt,
        spends_budget=rule.spends_budget,
    )
    if not rule.retry:
        return base
    if rule.spends_budget and failing_for >= policy.budget_seconds:
        return replace(base, budget_spent=True)
    if rule.waits_as_told:
        assert isinstance(error, CrmRateLimited)
        # A little jitter, so the workers a 429 stopped together do not all come back in one instant.
        delay = max(0.0, error.retry_after) + rand()
    else:
        delay = backoff_seconds(attempt, base=policy.base_seconds, cap=policy.cap_seconds, rand=rand)
    return replace(base, retry=True, delay=delay)


# Idempotent reads (a GET, a search) answered 5xx, timed out, refused, or 429 with a short wait are
# retried in place, inside the one request, this many times: a CRM failing a third of its requests
# at random then costs a read a few hundred milliseconds, not a whole action attempt and its backoff.
# Writes are never retried in place (a lost answer may hide a write that was applied).
READ_RETRIES = 2  # the default of CRM_READ_RETRIES
# The in-place backoff: equal jitter, doubling from the base, capped (the whole wait stays ~1 s).
READ_BACKOFF_BASE_SECONDS = 0.2
READ_BACKOFF_CAP_SECONDS = 0.8
# A 429 is waited out in place only when it asks for this little; a longer wait is the task's.
READ_RETRY_MAX_WAIT_SECONDS = 1.0


def read_retry_delay(
    error: BaseException, *, retry: int, retries: int = READ_RETRIES, rand: Callable[[], float] = random.random
) -> float | None:
    """Seconds to wait before retrying an idempotent read in place after `error`, or None: raise it.

    `retry` is the retry about to be made (1 for the first), `retries` how many are made at most.
    Only trouble the CRM may not have next time is retried: its 5xx, a timeout, a refused
    connection, a 429 asking for a short wait. Our own request budget (nothing was sent) and every
    refusal are the caller's to handle.
    """
    if retry > retries:
        return None
    failure = classify(error)
    if failure == Failure.CRM_UNAVAILABLE:
        return backoff_seconds(retry, base=READ_BACKOFF_BASE_SECONDS, cap=READ_BACKOFF_CAP_SECONDS, rand=rand)
    short = isinstance(error, CrmRateLimited) and error.retry_after <= READ_RETRY_MAX_WAIT_SECONDS
    if failure == Failure.RATE_LIMITED and short:
        assert isinstance(error, CrmRateLimited)
        # A little jitter, so the readers one 429 stopped do not all come back in one instant.
        return max(0.0, error.retry_after) + rand() * READ_BACKOFF_BASE_SECONDS
    return None


@dataclass(frozen=True)
class FailureOutcome:
    """What a failed attempt comes to on the row that shows it (an action, a status push), from its Decision."""

    decision: Decision
    # The row's attempts after this one: given back when nothing reached the CRM or it said to wait.
    attempts: int
    # The text the row shows: the error itself while retried, why it failed for good otherwise.
    text: str
    # How the circuit breaker is fed: False a failure (the CRM is down), True a success (it
    # answered, if only to refuse), None not at all (nothing was learnt of the CRM).
    circuit_success: bool | None
    # The CRM refused the credentials: the connection's own last error says so too.
    blames_credentials: bool
    # An answer of a shape we did not expect: logged with its traceback (our bug, not the CRM's).
    unexpected: bool


# What the CRM's failure says of whether it is up, for the circuit breaker.
_CIRCUIT_FEED: dict[Failure, bool] = {
    Failure.CRM_UNAVAILABLE: False,
    Failure.REFUSED: True,
    Failure.STALE_ID: True,
}


def failure_outcome(
    decision: Decision,
    error: BaseException,
    *,
    attempts: int,
    failing_for: float,
    wordings: Mapping[Failure, str] | None = None,
) -> FailureOutcome:
    """The one wording and bookkeeping of a failed attempt, for every outbox row.

    `attempts` counts the attempt that failed, `failing_for` the seconds of the run of failures
    (the budget's). `wordings` are a caller's own words for a failure that ends the work, put
    before the error ("the agent has no active CRM session to set the status on").
    """
    attempts = attempts if decision.counts_as_attempt else attempts - 1
    own = (wordings or {}).get(decision.failure)
    if decision.retry:
        text = str(error)
    elif decision.budget_spent:
        spent = describe_duration(failing_for)
        text = f"gave up after {attempts} attempts: {error} (the CRM kept failing for {spent})"
    elif own is not None:
        text = f"{own}: {error}"
    elif decision.failure == Failure.CREDENTIALS:
        text = f"CRM refused the credentials: {error}"
    elif decision.failure == Failure.OUR_BUG:
        text = f"unexpected answer from the CRM ({error.__class__.__name__}: {error})"
    else:
        text = str(error)
    return FailureOutcome(
        decision=decision,
        attempts=attempts,
        text=text,
        circuit_success=_CIRCUIT_FEED.get(decision.failure),
        blames_credentials=not decision.retry and decision.failure == Failure.CREDENTIALS,
        unexpected=not decision.retry and not decision.budget_spent and decision.failure == Failure.OUR_BUG,
    )


def broker_countdown(delay: float, *, visibility_timeout: float) -> float | None:
    """The countdown to give the broker for a retry, or None: too long to hold, left to the sweeper."""
    return delay if delay <= visibility_timeout - COUNTDOWN_MARGIN_SECONDS else None


def describe_duration(seconds: float) -> str:
    """A budget or a wait in words an admin reads at a glance: 45 s, 10 min, 3 h, 1 day."""
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            text = f"{seconds / size:.1f}".removesuffix(".0")
            return f"{text} {unit}{'s' if unit == 'day' and text != '1' else ''}"
    return f"{seconds:.0f} s"
