"""CRM connections: creating and activating them, and building their providers."""

import dataclasses
import functools
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from integrations.agents import AgentIdCache
from integrations.cache import SharedCache
from integrations.circuit import CircuitBreaker, CircuitOpen, circuit_pause_delay
from integrations.exceptions import CrmError
from integrations.failures import (
    COUNTDOWN_MARGIN_SECONDS,
    Decision,
    FailureOutcome,
    RetryPolicy,
    broker_countdown,
    decide,
    failure_outcome,
)
from integrations.models import CrmConnection
from integrations.providers.base import Capability, ConnectionSettings, CrmProvider, SettingSpec, setting_value
from integrations.providers.registry import PROVIDERS, get_provider, get_provider_class
from integrations.ratelimit import RedisRateGate, WorkClass

logger = logging.getLogger(__name__)


@functools.cache
def rate_gate() -> RedisRateGate:
    """The Redis rate gate (and request counters) every worker shares."""
    return RedisRateGate.from_url(settings.REDIS_URL)


@functools.cache
def circuit_breaker() -> CircuitBreaker:
    """The per-connection circuit breaker every worker shares (integrations.circuit), in Redis."""
    return CircuitBreaker.from_url(
        settings.REDIS_URL,
        threshold=settings.CRM_CIRCUIT_FAILURES,
        cool_down_seconds=settings.CRM_CIRCUIT_COOL_DOWN_SECONDS,
        # An action's few CRM calls, each bounded by the HTTP timeout.
        probe_seconds=4 * settings.CRM_HTTP_TIMEOUT_SECONDS,
        min_run_seconds=settings.CRM_CIRCUIT_MIN_RUN_SECONDS,
    )


def connection_circuit_check(connection: CrmConnection) -> None:
    """Raise CircuitOpen while the connection's circuit pauses its work; else the work may go
    (the circuit is closed, or this caller is its half-open probe)."""
    if (wait := circuit_breaker().wait_seconds(connection.base_url)) is not None:
        raise CircuitOpen(wait)


def connection_circuit_record(connection: CrmConnection | None, *, success: bool) -> None:
    """Feed the connection's circuit breaker; a Redis failure here must not change the work's outcome."""
    if connection is None:
        return
    breaker = circuit_breaker()
    try:
        if success:
            breaker.record_success(connection.base_url)
        elif breaker.record_failure(connection.base_url):
            logger.warning("integrations.circuit.open %s", connection.pk, extra={"connection": connection.pk})
    except redis.RedisError:
        logger.warning("integrations.circuit.unavailable %s", connection.pk, exc_info=True)


def connection_record_failure(
    *, connection: CrmConnection | None, outcome: FailureOutcome, error: BaseException, log_name: str, row_id: int
) -> None:
    """The side effects of a failed attempt that `outcome` (integrations.failures) asks for.

    The circuit breaker is fed, a refusal of the credentials becomes the connection's last error,
    and an answer of an unexpected shape is logged with its traceback (call it inside the
    `except` block). `log_name` and `row_id` name the row in the log (`records.action`, its id).
    """
    if outcome.circuit_success is not None:
        connection_circuit_record(connection, success=outcome.circuit_success)
    if outcome.blames_credentials and connection is not None:
        connection_record_error(connection=connection, error=str(error))
    if outcome.unexpected:
        # A CRM answer of an unexpected shape: failed visibly rather than crashing the worker in a loop.
        logger.exception("%s.unexpected %s", log_name, row_id, extra={"row_id": row_id})


@functools.cache
def agent_id_cache() -> AgentIdCache:
    """Agent ids every worker shares (integrations.agents), in Redis."""
    return AgentIdCache.from_url(settings.REDIS_URL)


def agent_id_find(provider: CrmProvider, *, email: str, fresh: bool = False) -> str | None:
    """The CRM user id of the agent with this email: from the shared cache, else (or `fresh`) the CRM's."""
    cache, crm = agent_id_cache(), provider.settings.base_url
    if not fresh and (cached := cache.get(crm, email)) is not None:
        return cached
    agent = provider.find_agent(email=email)
    if agent is None:
        cache.forget(crm, email)
        return None
    cache.put(crm, email, agent.id)
    return agent.id


# How long the CRM's field list, read for a batch flush, serves the flushes after it, on every
# worker (issue 10: one read a minute, not one a flush). The cost: a field deleted in the CRM meanwhile
# is noticed that much later in batched writes (its value dropped, the note saying so later).
FIELD_IDS_KEEP_SECONDS = 60
FIELD_IDS_KEY_PREFIX = "crmbridge:field-ids:"


@functools.cache
def field_ids_cache() -> SharedCache:
    """The CRMs' custom field ids every worker shares, in Redis."""
    return SharedCache(
        redis.Redis.from_url(settings.REDIS_URL), prefix=FIELD_IDS_KEY_PREFIX, keep_seconds=FIELD_IDS_KEEP_SECONDS
    )


def custom_field_ids_recent(provider: CrmProvider) -> frozenset[str]:
    """The CRM's custom field ids as some worker read them in the last FIELD_IDS_KEEP_SECONDS, else read now."""
    cache, crm = field_ids_cache(), provider.settings.base_url
    if (kept := cache.get(crm)) is not None:
        return frozenset(json.loads(kept))
    ids = provider.existing_custom_fields()
    cache.put(crm, json.dumps(sorted(ids)))
    return ids


def custom_field_ids_forget(connection: CrmConnection) -> None:
    """The connection's fields changed (F1 made some): the next reader asks the CRM."""
    field_ids_cache().forget(connection.base_url)


def connection_retry_policy(connection: CrmConnection | None) -> RetryPolicy:
    """The failure policy's backoff and budget for work on this connection (integrations.failures).

    The budget is CRM_RETRY_BUDGET_SECONDS unless the connection sets its own
    (`config["retry_budget_seconds"]`).
    """
    own = (connection.config or {}).get("retry_budget_seconds") if connection is not None else None
    return RetryPolicy(
        base_seconds=settings.CRM_RETRY_BACKOFF_SECONDS,
        cap_seconds=settings.CRM_RETRY_BACKOFF_MAX_SECONDS,
        budget_seconds=float(own) if own is not None else settings.CRM_RETRY_BUDGET_SECONDS,
    )


def connection_set_retry_budget(connection: CrmConnection, *, seconds: float | None) -> None:
    """Give the (unsaved) connection its own retry budget, or None: CRM_RETRY_BUDGET_SECONDS again."""
    config = {key: value for key, value in (connection.config or {}).items() if key != "retry_budget_seconds"}
    if seconds is not None:
        config["retry_budget_seconds"] = seconds
    connection.config = config


def retry_countdown(delay: float, *, clamp: bool = False) -> float | None:
    """The countdown a task may give the broker for this retry; None: too long, left to the sweeper.

    With `clamp` (work no sweeper looks for), a longer wait is cut to the longest the broker holds.
    """
    visibility_timeout = float(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600))
    countdown = broker_countdown(delay, visibility_timeout=visibility_timeout)
    if countdown is None and clamp:
        return max(0.0, visibility_timeout - COUNTDOWN_MARGIN_SECONDS)
    return countdown


@dataclasses.dataclass(frozen=True)
class TaskFailureVerdict:
    """What the failure policy says about a failed task that no sweeper looks for (F1, imports)."""

    decision: Decision
    # Seconds since the task's CRM trouble began (this failure included).
    failing_for: float
    # The countdown to retry with, cut to what the broker holds; None when not retried.
    countdown: float | None
    # The `failing_since` the retry carries: unchanged when this failure did not spend the budget.
    failing_since: float | None
    # The failed attempts the retry carries: this one included, unless it did not count (a 429,
    # our own Redis or database).
    attempts: int
    # What the admin is shown: the error while retried, why the task stopped otherwise.
    text: str


def task_failure_verdict(
    exc: Exception, *, connection: CrmConnection | None, attempts: int, failing_since: float | None
) -> TaskFailureVerdict:
    """The one failure policy for a task's own retries, and the connection's circuit breaker fed.

    `attempts` counts the task's failed attempts before this one (a pause of the circuit is none:
    not Celery's retry count, which counts every retry); `failing_since` is a POSIX time or None.
    """
    now = timezone.now().timestamp()
    first = failing_since or now
    decision = decide(exc, attempt=attempts + 1, failing_for=now - first, policy=connection_retry_policy(connection))
    outcome = failure_outcome(decision, exc, attempts=attempts + 1, failing_for=now - first)
    if outcome.circuit_success is not None:
        connection_circuit_record(connection, success=outcome.circuit_success)
    return TaskFailureVerdict(
        decision=decision,
        failing_for=now - first,
        countdown=retry_countdown(decision.delay, clamp=True) if decision.retry else None,
        failing_since=first if decision.spends_budget else failing_since,
        attempts=outcome.attempts,
        text=outcome.text,
    )


@dataclasses.dataclass(frozen=True)
class TaskPause:
    """A task that met its connection's open circuit: when it comes back, and the budget clock it carries."""

    countdown: float
    # Moved on by the pause, so the time the CRM was paused is not taken from the retry budget.
    failing_since: float | None


def task_circuit_pause(pause: CircuitOpen, *, failing_since: float | None) -> TaskPause:
    """The connection's circuit is open: come back after the pause, spending neither an attempt nor budget."""
    return TaskPause(
        countdown=circuit_pause_delay(pause),
        failing_since=failing_since + pause.wait if failing_since is not None else None,
    )


def connection_get_active() -> CrmConnection | None:
    return CrmConnection.objects.filter(is_active=True).first()


def connection_settings(connection: CrmConnection, *, work_class: WorkClass = WorkClass.LIVE) -> ConnectionSettings:
    return ConnectionSettings(
        kind=connection.kind,
        base_url=connection.base_url,
        config=dict(connection.config),
        secrets=connection.secrets,
        timeout=settings.CRM_HTTP_TIMEOUT_SECONDS,
        rate_limit_per_minute=connection.config.get("rate_limit_per_minute") or None,
        work_class=work_class,
        limit_exceeded_retry_seconds=settings.CRM_LIMIT_EXCEEDED_RETRY_SECONDS,
        read_retries=settings.CRM_READ_RETRIES,
    )


def connection_provider(connection: CrmConnection, *, work_class: WorkClass = WorkClass.LIVE) -> CrmProvider:
    """The provider for this connection, sharing the Redis rate gate with every other worker."""
    return get_provider(connection_settings(connection, work_class=work_class), rate_gate=rate_gate())


@transaction.atomic
def connection_activate(*, connection: CrmConnection) -> CrmConnection:
    """Make this the one active connection (the others are switched off in the same transaction)."""
    CrmConnection.objects.filter(is_active=True).exclude(pk=connection.pk).update(is_active=False)
    connection.is_active = True
    connection.save(update_fields=["is_active", "updated_at"])
    return connection


def connection_settings_spec(kind: str) -> tuple[SettingSpec, ...]:
    """The settings the provider of `kind` declares (UnknownCrmKind for a kind without one)."""
    return get_provider_class(kind).settings_spec


def connection_can(connection: CrmConnection, capability: Capability) -> bool:
    """Whether the connection's CRM can do this (False for a kind without a provider)."""
    provider = PROVIDERS.get(connection.kind)
    return provider is not None and provider.can(capability)


def connection_apply_settings(
    connection: CrmConnection,
    values: Mapping[str, Any],
    *,
    rate_limit_per_minute: int | None = None,
    clear: Collection[str] = (),
    base_url_changed: bool = False,
) -> None:
    """Check `values` against the provider's declared settings and put them on the (unsaved) connection.

    Non-secret settings go to `config`, secret ones to the encrypted secrets. A blank secret keeps
    the stored one, and `clear` names optional secrets to forget (a Salesforce security token no
    longer needed); a required setting must be given or already stored. Raises ValidationError
    keyed by setting name, before anything is changed.

    `base_url_changed`: the connection is moving to another URL, so no stored secret is kept for
    it (the old host's credentials are never sent to a new one); every required secret is asked
    for again.
    """
    spec = connection_settings_spec(connection.kind)
    known = {setting.name for setting in spec}
    errors: dict[str, str] = {
        name: f"unknown setting for {connection.kind}; known: {', '.join(sorted(known))}"
        for name in values
        if name not in known
    }
    stored_secrets = connection.secrets if connection.has_secrets and not base_url_changed else {}
    config = {key: value for key, value in (connection.config or {}).items() if key not in known}
    secrets = {key: value for key, value in stored_secrets.items() if key in known}
    for setting in spec:
        error = _place_setting(connection, setting, values, clear=clear, config=config, secrets=secrets)
        if error is None and not setting.typed:
            present = secrets.get(setting.name) if setting.secret else config.get(setting.name)
            error = None if present else _missing_error(connection, setting, base_url_changed=base_url_changed)
        if error:
            errors[setting.name] = error
    errors |= _required_with_errors(spec, values, config, secrets, errors, base_url_changed=base_url_changed)
    if errors:
        raise ValidationError(errors)
    config["rate_limit_per_minute"] = rate_limit_per_minute
    connection.config = config
    connection.set_secrets(secrets)


def _place_setting(
    connection: CrmConnection,
    setting: SettingSpec,
    values: Mapping[str, Any],
    *,
    clear: Collection[str],
    config: dict[str, Any],
    secrets: dict[str, Any],
) -> str | None:
    """Put one declared setting where it belongs (config or secrets); the error that keeps it out."""
    if setting.typed:
        # Typed settings (B1's toggle, interval, services) are kept as JSON values, defaults unstored.
        if setting.name not in values:
            if setting.name in (connection.config or {}):
                config[setting.name] = connection.config[setting.name]
            return None
        try:
            config[setting.name] = setting_value(setting, values[setting.name])
        except ValueError as exc:
            return f"{setting.label}: {exc}."
        return None
    value = (values.get(setting.name) or "").strip()
    if setting.email and value:
        try:
            validate_email(value)
        except ValidationError:
            return "Enter a valid email address."
    if setting.secret:
        if setting.name in clear:
            secrets.pop(setting.name, None)
            if value:
                return f"Either enter a {setting.label.lower()} or forget the stored one."
        elif value:
            secrets[setting.name] = value
    elif value or setting.name in values:
        config[setting.name] = value
    elif (connection.config or {}).get(setting.name):
        config[setting.name] = connection.config[setting.name]
    return None


def _missing_error(connection: CrmConnection, setting: SettingSpec, *, base_url_changed: bool) -> str | None:
    """Why a setting with no value cannot stay empty (None when it may)."""
    if setting.required and setting.secret and base_url_changed:
        return f"The base URL changed: enter the {setting.label} for the new URL again."
    if setting.required:
        return f"{setting.label} is required for {connection.get_kind_display()}."
    return None


def _required_with_errors(
    spec: Sequence[SettingSpec],
    values: Mapping[str, str | None],
    config: Mapping[str, Any],
    secrets: Mapping[str, Any],
    errors: Mapping[str, str],
    *,
    base_url_changed: bool,
) -> dict[str, str]:
    """Settings needed together with another one that is given (a Salesforce password with a username)."""
    labels = {setting.name: setting.label for setting in spec}
    found: dict[str, str] = {}
    for setting in spec:
        other = setting.required_with
        if not other or setting.name in errors or other in errors or other in found:
            continue
        given = (values.get(other) or "").strip() or config.get(other) or secrets.get(other)
        present = secrets.get(setting.name) if setting.secret else config.get(setting.name)
        if given and not present:
            if setting.secret and base_url_changed:
                found[setting.name] = f"The base URL changed: enter the {setting.label} for the new URL again."
            else:
                found[setting.name] = f"{setting.label} is required with a {labels[other].lower()}."
    return found


@transaction.atomic
def connection_create(
    *,
    name: str,
    kind: str,
    base_url: str,
    settings: Mapping[str, Any],
    rate_limit_per_minute: int | None = None,
    activate: bool = True,
) -> CrmConnection:
    """Create (or update, for the same kind and URL) a connection from its provider's declared settings.

    Raises ValidationError naming the setting or field that is wrong; nothing is saved then.
    """
    get_provider_class(kind)
    connection = CrmConnection.objects.filter(kind=kind, base_url=base_url).first() or CrmConnection(
        kind=kind, base_url=base_url
    )
    connection.name = name
    connection_apply_settings(connection, settings, rate_limit_per_minute=rate_limit_per_minute)
    connection.full_clean(exclude=["is_active"])
    connection.save()
    if activate:
        connection_activate(connection=connection)
    return connection


def connection_change_settings(*, connection: CrmConnection, values: Mapping[str, Any]) -> CrmConnection:
    """Change some of the connection's declared settings (B1's batching, say), the others kept.

    Checked as the admin form checks them; ValidationError keyed by setting name, nothing saved then.
    """
    connection_apply_settings(
        connection, values, rate_limit_per_minute=(connection.config or {}).get("rate_limit_per_minute")
    )
    connection.save(update_fields=["config", "encrypted_secrets", "updated_at"])
    return connection


def connection_record_error(*, connection: CrmConnection, error: str) -> None:
    connection.last_error = error[:2000]
    connection.last_error_at = timezone.now()
    connection.save(update_fields=["last_error", "last_error_at", "updated_at"])


def connection_test(*, connection: CrmConnection) -> str | None:
    """Make one authenticated call; return the error (also stored on the connection) or None."""
    try:
        connection_provider(connection).test_connection()
    except CrmError as exc:
        connection_record_error(connection=connection, error=str(exc))
        return str(exc)
    connection.last_error = ""
    connection.save(update_fields=["last_error", "updated_at"])
    return None
