"""Reads about CRM connections for the admin console: request usage and the circuit state."""

from dataclasses import dataclass

from integrations.circuit import Circuit, circuit_state
from integrations.failures import describe_duration
from integrations.http import usage_key
from integrations.models import CrmConnection
from integrations.providers.registry import PROVIDERS
from integrations.ratelimit import MinuteUsage
from integrations.services import circuit_breaker, rate_gate


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
    """The connection's circuit breaker (integrations.circuit), for the health panel and /metrics."""
    reading = circuit_breaker().read(connection.base_url)
    state = circuit_state(reading)
    if state == Circuit.OPEN:
        detail = f"(work paused for {describe_duration(reading.open_ms / 1000)} more, then one probe)"
    elif state == Circuit.HALF_OPEN:
        detail = "(probing the CRM)" if reading.probing else "(the next action is the probe)"
    else:
        detail = f"({reading.failures} consecutive failure(s))" if reading.failures else ""
    return CircuitState(state=str(state), detail=detail)


def connection_web_url(connection: CrmConnection | None, *, record_id: str = "", contact_id: str = "") -> str:
    """A link into the CRM for one of its records or contacts; "" when there is none to give.

    Only http(s) links: the base URL is the admin's, but a link is never a `javascript:` one.
    """
    if connection is None or not (record_id or contact_id) or connection.kind not in PROVIDERS:
        return ""
    url = PROVIDERS[connection.kind].web_url(connection.base_url, record_id=record_id, contact_id=contact_id)
    return url if url.lower().startswith(("https://", "http://")) else ""
