"""Reads about CRM connections for the admin console: request usage and the circuit state."""

from dataclasses import dataclass

from integrations.http import usage_key
from integrations.models import CrmConnection
from integrations.providers.registry import PROVIDERS
from integrations.ratelimit import MinuteUsage
from integrations.services import rate_gate


def connection_usage(connection: CrmConnection) -> list[MinuteUsage]:
    """The connection's CRM requests in the last hour, per minute (counted in integrations.http)."""
    return rate_gate().usage(usage_key(connection.base_url))


def connection_budget(connection: CrmConnection) -> int | None:
    """The requests per minute the admin allowed for this CRM, if any."""
    value = (connection.config or {}).get("rate_limit_per_minute")
    return int(value) if value else None


@dataclass(frozen=True)
class CircuitState:
    state: str  # "closed", "open" or "half-open"
    detail: str = ""


def connection_circuit_state(connection: CrmConnection) -> CircuitState | None:
    """The connection's circuit breaker, for the health page; None while this build has none.

    The hook the health panel already reads: the per-connection circuit breaker (issue 15) fills it.
    """
    return None


def connection_web_url(connection: CrmConnection | None, *, record_id: str = "", contact_id: str = "") -> str:
    """A link into the CRM for one of its records or contacts; "" when there is none to give.

    Only http(s) links: the base URL is the admin's, but a link is never a `javascript:` one.
    """
    if connection is None or not (record_id or contact_id) or connection.kind not in PROVIDERS:
        return ""
    url = PROVIDERS[connection.kind].web_url(connection.base_url, record_id=record_id, contact_id=contact_id)
    return url if url.lower().startswith(("https://", "http://")) else ""
