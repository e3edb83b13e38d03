from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin

from agentstatus.models import (
    Agent,
    AgentToken,
    CrmStatus,
    PlatformStatus,
    Source,
    StatusChange,
    StatusPush,
    StatusSyncSettings,
)
from agentstatus.rules import sync_stopped_reason
from agentstatus.selectors import status_sync_health, sync_connection, sync_settings_get
from agentstatus.services.changes import agent_status_set
from agentstatus.services.push import status_push_retry
from agentstatus.services.setup import (
    SetupError,
    adapter_token_issue,
    agent_sync_resume,
    crm_statuses_refresh,
    status_webhook_register,
    status_webhook_secret_set,
    status_webhook_url,
)
from integrations.admin_views import ViewOnlyAdminMixin
from integrations.exceptions import CrmError
from integrations.health import HealthRow, HealthSection, register_health_source
from integrations.models import CrmConnection, CrmKind
from integrations.providers.base import Capability
from integrations.providers.registry import PROVIDERS
from integrations.services import connection_can, connection_get_active

# Failures of an admin action that are the admin's to fix or the CRM's to answer: shown, never a 500.
ACTION_ERRORS = (SetupError, CrmError)
RECENT_CHANGES_SHOWN = 50


def _refresh_statuses(model_admin: admin.ModelAdmin[Any], request: HttpRequest) -> None:
    try:
        result = crm_statuses_refresh(settings=sync_settings_get())
    except ACTION_ERRORS as exc:
        model_admin.message_user(request, f"Could not read the CRM statuses: {exc}", messages.ERROR)
        return
    model_admin.message_user(
        request,
        f"CRM statuses refreshed: {result.created} new, {result.updated} updated, {result.gone} no longer in the CRM.",
        messages.SUCCESS,
    )


def _status_kinds() -> list[str]:
    return [kind for kind, provider in PROVIDERS.items() if provider.can(Capability.USER_STATUSES)]


class StatusSyncSettingsForm(forms.ModelForm[StatusSyncSettings]):
    """The webhook secret is write-only: a blank field keeps the stored one, and none is ever shown."""

    webhook_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            "Only for a webhook registered by hand in Kustomer: paste its signing secret. Stored encrypted. "
            "Leave blank to keep the current one; “Register status webhook” sets it for you."
        ),
    )

    class Meta:
        model = StatusSyncSettings
        fields = ["inheritance_enabled", "priority", "direction", "connection"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only CRMs with user statuses can be inherited from (A1).
        field = self.fields["connection"]
        if isinstance(field, forms.ModelChoiceField):
            field.queryset = CrmConnection.objects.filter(kind__in=_status_kinds())

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        connection = cleaned.get("connection") or connection_get_active()
        if cleaned.get("inheritance_enabled") and (
            connection is None or not connection_can(connection, Capability.USER_STATUSES)
        ):
            which = f"{connection} ({connection.get_kind_display()})" if connection else "No CRM connection"
            self.add_error(
                "inheritance_enabled" if cleaned.get("connection") is None else "connection",
                f"{which} has no user statuses to inherit: choose a connection whose CRM has them "
                f"({', '.join(CrmKind(kind).label for kind in _status_kinds())}).",
            )
        return cleaned


@admin.register(StatusSyncSettings)
class StatusSyncSettingsAdmin(admin.ModelAdmin[StatusSyncSettings]):
    form = StatusSyncSettingsForm
    list_display = ["__str__", "inheritance_enabled", "priority", "direction", "connection", "webhook_registered_at"]
    readonly_fields = ["webhook_secret_stored", "webhook_url", "webhook_registered_at", "our_webhook_url", "mapping"]
    fieldsets = [
        ("Agent status inheritance", {"fields": ["inheritance_enabled", "priority", "direction", "connection"]}),
        ("Status mapping", {"fields": ["mapping"]}),
        (
            "Status webhook",
            {
                "fields": [
                    "our_webhook_url",
                    "webhook_url",
                    "webhook_registered_at",
                    "webhook_secret_stored",
                    "webhook_secret",
                ]
            },
        ),
    ]
    actions = ["register_webhook", "refresh_statuses"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: StatusSyncSettings, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if secret := form.cleaned_data.get("webhook_secret"):
            status_webhook_secret_set(settings=obj, secret=secret)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # The row exists from the first visit on, so the admin always has something to edit.
        sync_settings_get()
        return super().changelist_view(request, extra_context)

    @admin.display(description="Webhook secret stored", boolean=True)
    def webhook_secret_stored(self, obj: StatusSyncSettings) -> bool:
        return obj.has_webhook_secret

    @admin.display(description="Our webhook URL")
    def our_webhook_url(self, obj: StatusSyncSettings) -> str:
        return status_webhook_url()

    @admin.display(description="Mapping")
    def mapping(self, obj: StatusSyncSettings) -> str:
        connection = sync_connection(obj)
        statuses = CrmStatus.objects.filter(connection=connection) if connection else CrmStatus.objects.none()
        unmapped = statuses.filter(platform_status__isnull=True).count()
        url = reverse("admin:agentstatus_crmstatus_changelist")
        return format_html(
            '<a href="{}">Manage mapping</a> — {} CRM statuses, {} not mapped', url, statuses.count(), unmapped
        )

    @admin.action(description="Register status webhook in the CRM")
    def register_webhook(self, request: HttpRequest, queryset: QuerySet[StatusSyncSettings]) -> None:
        try:
            url = status_webhook_register(settings=sync_settings_get())
        except ACTION_ERRORS as exc:
            self.message_user(request, f"Could not register the status webhook: {exc}", messages.ERROR)
            return
        self.message_user(request, f"Status webhook registered for {url}; its secret is stored.", messages.SUCCESS)

    @admin.action(description="Refresh CRM statuses from the CRM")
    def refresh_statuses(self, request: HttpRequest, queryset: QuerySet[StatusSyncSettings]) -> None:
        _refresh_statuses(self, request)


@admin.register(PlatformStatus)
class PlatformStatusAdmin(admin.ModelAdmin[PlatformStatus]):
    list_display = ["name", "position", "mapped_from"]
    list_editable = ["position"]
    search_fields = ["name"]

    @admin.display(description="Mapped from CRM statuses")
    def mapped_from(self, obj: PlatformStatus) -> str:
        return ", ".join(obj.crm_statuses.values_list("name", flat=True))


class MappedFilter(admin.SimpleListFilter):
    title = "mapped"
    parameter_name = "mapped"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Mapped"), ("no", "Not mapped")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(platform_status__isnull=False)
        if self.value() == "no":
            return queryset.filter(platform_status__isnull=True)
        return queryset


@admin.register(CrmStatus)
class CrmStatusAdmin(admin.ModelAdmin[CrmStatus]):
    """The "Manage mapping" screen: every CRM status with a platform status to pick (A1)."""

    list_display = ["name", "status_type", "platform_status", "in_crm", "connection", "refreshed_at"]
    list_editable = ["platform_status"]
    list_filter = [MappedFilter, "in_crm", "status_type", "connection"]
    list_select_related = ["connection", "platform_status"]
    search_fields = ["name", "crm_id"]
    readonly_fields = ["connection", "crm_id", "name", "status_type", "position", "in_crm", "refreshed_at"]
    fields = ["name", "crm_id", "status_type", "platform_status", "connection", "position", "in_crm", "refreshed_at"]
    list_per_page = 200
    actions = ["refresh_statuses"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # CRM statuses are defined in the CRM and read from it (the Refresh action).
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "title": "Manage mapping: CRM statuses → platform statuses"}
        return super().changelist_view(request, extra_context)

    @admin.action(description="Refresh CRM statuses from the CRM (all of them)")
    def refresh_statuses(self, request: HttpRequest, queryset: QuerySet[CrmStatus]) -> None:
        _refresh_statuses(self, request)


class RecentChangesFormSet(BaseInlineFormSet):
    def get_queryset(self) -> QuerySet[Any]:
        # An agent changes status all day: the page shows the latest; the full trail is its own list.
        return super().get_queryset().select_related("from_status", "to_status", "crm_status")[:RECENT_CHANGES_SHOWN]


class StatusChangeInline(ViewOnlyAdminMixin, admin.TabularInline[StatusChange, Agent]):
    model = StatusChange
    formset = RecentChangesFormSet
    verbose_name_plural = f"Status changes (latest {RECENT_CHANGES_SHOWN})"
    extra = 0
    can_delete = False
    ordering = ["-at", "-id"]
    readonly_fields = ["at", "source", "from_status", "to_status", "crm_status", "mapping", "applied", "reason"]
    fields = tuple(readonly_fields)


class SyncStoppedFilter(admin.SimpleListFilter):
    title = "sync"
    parameter_name = "sync"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("stopped", "Stopped (several CRM instances)"), ("running", "Running")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("stopped", "running"):
            return queryset.filter(sync_stopped=self.value() == "stopped")
        return queryset


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin[Agent]):
    list_display = [
        "email",
        "name",
        "team",
        "platform_status",
        "status_source",
        "status_changed_at",
        "sync",
        "crm_status",
    ]
    list_filter = [SyncStoppedFilter, "team", "platform_status", "status_source"]
    list_select_related = ["team", "platform_status", "crm_status"]
    search_fields = ["email", "name", "crm_user_id"]
    autocomplete_fields = ["team"]
    readonly_fields = [
        "status_source",
        "status_changed_at",
        "platform_changed_at",
        "crm_user_id",
        "crm_status",
        "crm_status_at",
        "sync",
        "crm_instances",
        "all_changes",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["email", "name", "team"]}),
        (
            "Platform status",
            {"fields": ["platform_status", "status_source", "status_changed_at", "platform_changed_at", "all_changes"]},
        ),
        ("In the CRM", {"fields": ["crm_user_id", "crm_status", "crm_status_at", "sync", "crm_instances"]}),
        ("Timestamps", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    inlines = [StatusChangeInline]
    actions = ["issue_adapter_token", "resume_sync"]

    @admin.display(description="Sync")
    def sync(self, obj: Agent) -> str:
        reason = sync_stopped_reason(obj.work_sessions or {})
        if reason:
            return format_html('<strong style="color:#ba2121">Stopped</strong>: {}', reason)
        return "Running"

    @admin.display(description="Active CRM instances")
    def crm_instances(self, obj: Agent) -> str:
        sessions = obj.work_sessions or {}
        # The CRM's status names, not its ids: the id is kept only for a status we do not know (yet).
        names = dict(CrmStatus.objects.filter(crm_id__in=set(sessions.values())).values_list("crm_id", "name"))
        return (
            ", ".join(
                f"{session} ({names.get(status) or f'status {status}'})" for session, status in sorted(sessions.items())
            )
            or "none"
        )

    @admin.display(description="Audit trail")
    def all_changes(self, obj: Agent) -> str:
        if obj.pk is None:
            return ""
        url = reverse("admin:agentstatus_statuschange_changelist") + f"?agent__id__exact={obj.pk}"
        return format_html('<a href="{}">All status changes of this agent</a>', url)

    def save_model(self, request: HttpRequest, obj: Agent, form: Any, change: bool) -> None:
        # A status set here is an admin change like any other: audited, and pushed under two-way sync.
        new_status = obj.platform_status
        set_status = "platform_status" in form.changed_data and new_status is not None
        if set_status:
            # Saved by the service below instead, so that it is audited like every platform change.
            obj.platform_status_id = form.initial.get("platform_status") if change else None
        super().save_model(request, obj, form, change)
        if set_status and new_status is not None:
            agent_status_set(agent=obj, platform_status=new_status, source=Source.ADMIN)

    @admin.action(description="Issue an adapter token (shown once; earlier tokens are revoked)")
    def issue_adapter_token(self, request: HttpRequest, queryset: QuerySet[Agent]) -> HttpResponse | None:
        for agent in queryset:
            key = adapter_token_issue(agent=agent)
            self.message_user(
                request,
                f"Adapter token for {agent.email}: {key} — store it now, it cannot be shown again.",
                messages.WARNING,
            )
        return HttpResponseRedirect(request.get_full_path())

    @admin.action(description="Resume sync (forget the tracked CRM instances)")
    def resume_sync(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        for agent in queryset:
            agent_sync_resume(agent=agent)
        self.message_user(request, f"Sync resumed for {queryset.count()} agent(s).", messages.SUCCESS)


@admin.register(StatusChange)
class StatusChangeAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[StatusChange]):
    list_display = [
        "at",
        "agent_link",
        "source",
        "from_status",
        "to_status",
        "crm_status",
        "mapping",
        "applied",
        "reason",
    ]
    list_filter = ["source", "applied", "agent__team", "to_status"]
    list_select_related = ["agent", "from_status", "to_status", "crm_status"]
    search_fields = ["agent__email", "agent_email", "crm_user_id", "reason", "event_id"]
    date_hierarchy = "at"
    readonly_fields = [
        "agent",
        "at",
        "occurred_at",
        "source",
        "from_status",
        "to_status",
        "crm_status",
        "crm_status_ref",
        "mapping",
        "applied",
        "reason",
        "crm_user_id",
        "agent_email",
        "event_id",
        "work_session_id",
    ]

    @admin.display(description="Agent")
    def agent_link(self, obj: StatusChange) -> str:
        if obj.agent_id is None:
            return obj.agent_email or f"CRM user {obj.crm_user_id}"
        url = reverse("admin:agentstatus_agent_change", args=[obj.agent_id])
        return format_html('<a href="{}">{}</a>', url, obj.agent.email if obj.agent else obj.agent_id)


@admin.register(StatusPush)
class StatusPushAdmin(admin.ModelAdmin[StatusPush]):
    list_display = [
        "id",
        "agent",
        "platform_status",
        "crm_status",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "echo_seen_at",
        "created_at",
    ]
    list_filter = ["state"]
    list_select_related = ["agent", "platform_status", "crm_status"]
    search_fields = ["agent__email", "last_error"]
    readonly_fields = [
        "agent",
        "change",
        "platform_status",
        "crm_status",
        "state",
        "attempts",
        "sent_at",
        "next_attempt_at",
        "last_error",
        "echo_seen_at",
        "created_at",
        "updated_at",
        "completed_at",
    ]
    actions = ["retry"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry now")
    def retry(self, request: HttpRequest, queryset: QuerySet[StatusPush]) -> None:
        retried = 0
        for push in queryset.exclude(state__in=[StatusPush.State.SUCCEEDED, StatusPush.State.SUPERSEDED]):
            status_push_retry(push=push)
            retried += 1
        self.message_user(request, f"{retried} push(es) queued to run again.", messages.SUCCESS)


@admin.register(AgentToken)
class AgentTokenAdmin(APIKeyModelAdmin):
    # The base class's attributes are inferred as fixed-length tuples; these add the agent column.
    list_display = ("prefix", "name", "agent", "created", "expiry_date", "_has_expired", "revoked")  # type: ignore[assignment]
    list_select_related = ["agent"]
    search_fields = ("name", "prefix", "agent__email")  # type: ignore[assignment]
    autocomplete_fields = ["agent"]


@register_health_source
def status_sync_health_section(connection: CrmConnection | None) -> HealthSection:
    """Status sync: last webhook received, A3 conflicts, unmapped statuses, failed pushes."""
    health = status_sync_health(connection=connection)
    scope = f"&connection__id__exact={connection.pk}" if connection else ""
    last = health.last_webhook_at
    rows = [
        HealthRow(
            "Last status webhook received",
            f"{timezone.localtime(last):%Y-%m-%d %H:%M:%S}" if last else "never",
            reverse("admin:agentstatus_statuschange_changelist") + "?source__exact=crm",
            alert=health.inheritance_enabled and last is None,
        ),
        HealthRow(
            "Agents signed in to several CRM instances (sync stopped)",
            str(health.conflicts),
            reverse("admin:agentstatus_agent_changelist") + "?sync=stopped",
            alert=health.conflicts > 0,
        ),
        HealthRow(
            "CRM statuses not mapped to a platform status",
            str(health.unmapped_statuses),
            reverse("admin:agentstatus_crmstatus_changelist") + "?mapped=no" + scope,
            alert=health.inheritance_enabled and health.unmapped_statuses > 0,
        ),
        HealthRow(
            "Failed status pushes",
            str(health.failed_pushes),
            reverse("admin:agentstatus_statuspush_changelist") + "?state__exact=failed",
            alert=health.failed_pushes > 0,
        ),
    ]
    note = "" if health.inheritance_enabled else "Agent status inheritance is off (Status sync settings)."
    return HealthSection("Agent status sync", rows, note=note)
