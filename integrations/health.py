"""The health panel on the admin home and on each connection's health page.

integrations imports nothing from the apps above it, so each app registers a function that
returns its section (records: actions and sessions; ticketsearch: imports; agentstatus: status
sync) when its admin module is loaded; this module owns the CRM request chart.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from integrations.models import CrmConnection
from integrations.ratelimit import MinuteUsage


@dataclass(frozen=True)
class HealthRow:
    label: str
    value: str
    # Where the admin sees the rows counted (a filtered list), if anywhere.
    url: str = ""
    # Shown as a problem (red) rather than information.
    alert: bool = False


@dataclass(frozen=True)
class HealthSection:
    title: str
    rows: Sequence[HealthRow] = ()
    chart: SafeString | None = None
    note: str = ""


HealthSource = Callable[[CrmConnection | None], HealthSection | None]

# Filled by the apps' admin modules (see module docstring); called in this order.
HEALTH_SOURCES: list[HealthSource] = []


def register_health_source(source: HealthSource) -> HealthSource:
    """Add `source(connection or None) -> HealthSection | None` to the health panel."""
    if source not in HEALTH_SOURCES:
        HEALTH_SOURCES.append(source)
    return source


def health_sections(connection: CrmConnection | None) -> list[HealthSection]:
    """Every registered section, for one connection or (None) the whole product."""
    return [section for source in HEALTH_SOURCES if (section := source(connection)) is not None]


@dataclass(frozen=True)
class UsageTotals:
    sent: int
    rate_limited: int
    faults: int
    held_back: int
    busiest_minute: int
    minutes_over_budget: int = 0
    budget: int | None = None
    per_minute: Sequence[MinuteUsage] = field(default_factory=tuple)


def usage_totals(usage: Sequence[MinuteUsage], budget: int | None) -> UsageTotals:
    """The hour's totals, and how close the busiest minute came to the connection's budget."""
    return UsageTotals(
        sent=sum(minute.sent for minute in usage),
        rate_limited=sum(minute.rate_limited for minute in usage),
        faults=sum(minute.fault for minute in usage),
        held_back=sum(minute.held_back for minute in usage),
        busiest_minute=max((minute.sent for minute in usage), default=0),
        minutes_over_budget=sum(1 for minute in usage if budget and minute.sent >= budget),
        budget=budget,
        per_minute=tuple(usage),
    )


CHART_WIDTH = 600
CHART_HEIGHT = 120
# Colours of the bars' parts: answered, faults (timeouts, 5xx), 429s.
OK_COLOUR, FAULT_COLOUR, LIMITED_COLOUR, BUDGET_COLOUR = "#417690", "#ba2121", "#e69a00", "#333"


def usage_chart_svg(usage: Sequence[MinuteUsage], budget: int | None) -> SafeString:
    """A bar per minute (answered, faults, 429s stacked) and the budget as a dashed line.

    Server-rendered SVG: no script, no CDN; each bar's tooltip gives the minute's figures.
    """
    top = max([budget or 0, *(minute.sent for minute in usage), 1])
    slot = CHART_WIDTH / max(1, len(usage))
    scale = (CHART_HEIGHT - 10) / top
    bars = []
    for index, minute in enumerate(usage):
        x = index * slot
        answered = max(0, minute.sent - minute.fault - minute.rate_limited)
        y = float(CHART_HEIGHT)
        parts = []
        for count, colour in (
            (answered, OK_COLOUR),
            (minute.fault, FAULT_COLOUR),
            (minute.rate_limited, LIMITED_COLOUR),
        ):
            if count:
                height = count * scale
                y -= height
                parts.append((f"{x + 0.5:.1f}", f"{y:.1f}", f"{max(1.0, slot - 1):.1f}", f"{height:.1f}", colour))
        tooltip = (
            f"{minute.minute:%H:%M} UTC: {minute.sent} sent, {minute.fault} faults, "
            f"{minute.rate_limited} rate-limited, {minute.held_back} held back"
        )
        rects = format_html_join("", '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"></rect>', parts)
        bars.append(
            format_html(
                '<g class="minute" data-sent="{}"><title>{}</title>'
                '<rect x="{}" y="0" width="{}" height="{}" fill="transparent"></rect>{}</g>',
                minute.sent,
                tooltip,
                f"{x:.1f}",
                f"{slot:.1f}",
                CHART_HEIGHT,
                rects,
            )
        )
    budget_line = SafeString("")
    if budget:
        y_budget = CHART_HEIGHT - budget * scale
        budget_line = format_html(
            '<line class="budget" x1="0" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-dasharray="4 3"></line>'
            '<text x="4" y="{}" font-size="10" fill="{}">budget {}/min</text>',
            CHART_WIDTH,
            f"{y_budget:.1f}",
            f"{y_budget:.1f}",
            BUDGET_COLOUR,
            f"{max(10.0, y_budget - 2):.1f}",
            BUDGET_COLOUR,
            budget,
        )
    first = usage[0].minute if usage else None
    return format_html(
        # Scaled to the panel's width (viewBox), so the newest minutes on the right are never cut off.
        '<svg class="usage-chart" role="img" viewBox="0 0 {} {}" width="100%" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>'
        '<rect x="0" y="0" width="{}" height="{}" fill="#f8f8f8"></rect>{}{}'
        '<text x="0" y="{}" font-size="10" fill="#666">60 min ago</text>'
        '<text x="{}" y="{}" font-size="10" fill="#666" text-anchor="end">now</text></svg>',
        CHART_WIDTH,
        CHART_HEIGHT + 14,
        _chart_title(first, budget),
        CHART_WIDTH,
        CHART_HEIGHT,
        mark_safe("".join(bars)),  # noqa: S308  # each bar was built with format_html
        budget_line,
        CHART_HEIGHT + 12,
        CHART_WIDTH,
        CHART_HEIGHT + 12,
    )


def _chart_title(first: datetime | None, budget: int | None) -> str:
    since = f" since {first:%H:%M} UTC" if first else ""
    limit = f", budget {budget} per minute" if budget else ", no budget set"
    return f"CRM requests per minute{since}{limit}"
