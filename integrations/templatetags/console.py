"""`{% health_panel %}`: the health sections every app registered (integrations.health)."""

from typing import Any

from django import template

from integrations.health import health_sections
from integrations.models import CrmConnection

register = template.Library()


@register.inclusion_tag("integrations/health_panel.html")
def health_panel(connection: CrmConnection | None = None) -> dict[str, Any]:
    return {"sections": health_sections(connection), "connection": connection}
