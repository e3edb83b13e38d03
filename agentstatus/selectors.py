"""Reads for the API, the admin and the services: settings, the adapter's answer, the mapping."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from agentstatus import rules
from agentstatus.models import (
    Agent,
    CrmStatus,
    PlatformStatus,
    ProcessedWebhookEvent,
    StatusPush,
    StatusSyncSettings,
    SyncDirection,
)
from integrations.models import CrmConnection
from integrations.services import connection_get_active


def sync_settings_get() -> StatusSyncSettings:
    """The settings row, created with its defaults (inheritance off) the first time it is asked for."""
    settings, _ = StatusSyncSettings.objects.select_related("connection").get_or_create(
        pk=StatusSyncSettings.SINGLETON_ID
    )
    return settings


def sync_rules(settings: StatusSyncSettings) -> rules.SyncSettings:
    return rules.SyncSettings(
        inheritance_enabled=settings.inheritance_enabled,
        priority=settings.priority,
        two_way=settings.direction == SyncDirection.TWO_WAY,
    )


def sync_connection(settings: StatusSyncSettings) -> CrmConnection | None:
    """The connection whose statuses are inherited: the chosen one, else the active one."""
    return settings.connection or connection_get_active()


def agent_state(agent: Agent) -> rules.AgentState:
    return rules.AgentState(
        platform_status_id=agent.platform_status_id,
        platform_changed_at=agent.platform_changed_at,
        crm_status_at=agent.crm_status_at,
        work_sessions=dict(agent.work_sessions or {}),
    )


def crm_mapping(connection: CrmConnection) -> list[tuple[str, int | None]]:
    """The connection's CRM statuses in the CRM's order, each with the platform status it maps to."""
    rows = CrmStatus.objects.filter(connection=connection, in_crm=True).order_by("position", "id")
    return [(crm_id, target) for crm_id, target in rows.values_list("crm_id", "platform_status_id")]


def platform_statuses() -> QuerySet[PlatformStatus]:
    return PlatformStatus.objects.all()


def platform_status_find(value: str) -> PlatformStatus | None:
    """A platform status by id or by name (case-insensitive), as the adapter names it."""
    value = value.strip()
    if value.isdigit():
        found = PlatformStatus.objects.filter(pk=int(value)).first()
        if found is not None:
            return found
    return PlatformStatus.objects.filter(name__iexact=value).first()


@dataclass(frozen=True)
class AgentStatusView:
    """What the adapter shows the agent (A5)."""

    agent: Agent
    status: PlatformStatus | None
    source: str
    changed_at: datetime | None
    crm_overrides: bool
    sync_stopped: bool
    sync_stopped_reason: str | None
    statuses: list[PlatformStatus]


def agent_status_view(agent: Agent, settings: StatusSyncSettings | None = None) -> AgentStatusView:
    settings = settings or sync_settings_get()
    sessions = dict(agent.work_sessions or {})
    return AgentStatusView(
        agent=agent,
        status=agent.platform_status,
        source=agent.status_source,
        changed_at=agent.status_changed_at,
        crm_overrides=rules.crm_overrides(sync_rules(settings), sync_stopped=agent.sync_stopped),
        sync_stopped=agent.sync_stopped,
        sync_stopped_reason=rules.sync_stopped_reason(sessions),
        statuses=list(platform_statuses()),
    )


@dataclass(frozen=True)
class StatusSyncHealth:
    inheritance_enabled: bool
    last_webhook_at: datetime | None
    conflicts: int
    unmapped_statuses: int
    failed_pushes: int


def status_sync_health(*, connection: CrmConnection | None = None) -> StatusSyncHealth:
    """The status sync at a glance: last webhook, agents stopped by A3, unmapped statuses, failed pushes."""
    statuses = CrmStatus.objects.filter(platform_status__isnull=True, in_crm=True)
    pushes = StatusPush.objects.filter(state=StatusPush.State.FAILED)
    if connection is not None:
        statuses = statuses.filter(connection=connection)
        pushes = pushes.filter(crm_status__connection=connection)
    last = ProcessedWebhookEvent.objects.order_by("-received_at").values_list("received_at", flat=True).first()
    return StatusSyncHealth(
        inheritance_enabled=sync_settings_get().inheritance_enabled,
        last_webhook_at=last,
        conflicts=Agent.objects.filter(sync_stopped=True).count(),
        unmapped_statuses=statuses.count(),
        failed_pushes=pushes.count(),
    )
