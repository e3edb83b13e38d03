"""CRM connections: creating and activating them, and building their providers."""

import functools
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.exceptions import CrmError
from integrations.models import CrmConnection
from integrations.providers.base import ConnectionSettings, CrmProvider
from integrations.providers.registry import get_provider, get_provider_class
from integrations.ratelimit import RedisRateGate, WorkClass

logger = logging.getLogger(__name__)


@functools.cache
def rate_gate() -> RedisRateGate:
    """The Redis rate gate (and request counters) every worker shares."""
    return RedisRateGate.from_url(settings.REDIS_URL)


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


@transaction.atomic
def connection_create(
    *,
    name: str,
    kind: str,
    base_url: str,
    config: dict[str, Any],
    secrets: dict[str, Any],
    activate: bool = True,
) -> CrmConnection:
    """Create (or update, for the same kind and URL) a connection with encrypted secrets."""
    get_provider_class(kind)
    connection = CrmConnection.objects.filter(kind=kind, base_url=base_url).first() or CrmConnection(
        kind=kind, base_url=base_url
    )
    connection.name = name
    connection.config = config
    connection.set_secrets(secrets)
    connection.full_clean(exclude=["is_active"])
    connection.save()
    if activate:
        connection_activate(connection=connection)
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
