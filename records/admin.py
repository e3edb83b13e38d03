from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from records.models import CrmAction, Event, Session
from records.services.execution import action_retry


class ReadOnlyInline(admin.TabularInline[Any, Any]):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventInline(ReadOnlyInline):
    model = Event
    readonly_fields = ["occurred_at", "type", "event_id", "applied_at", "outcome"]
    fields = tuple(readonly_fields)
    ordering = ["occurred_at", "id"]


class CrmActionInline(ReadOnlyInline):
    model = CrmAction
    fk_name = "session"
    readonly_fields = ["id", "kind", "rule", "reason", "caused_by", "status", "attempts", "last_error", "result"]
    fields = tuple(readonly_fields)

    @admin.display(description="Caused by")
    def caused_by(self, obj: CrmAction) -> str:
        return f"{obj.event.type} ({obj.event.event_id})" if obj.event else ""


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin[Session]):
    list_display = ["external_id", "session_type", "phone_number", "agent_email", "crm_record_id", "started_at"]
    list_filter = ["channel", "session_type", "crm_connection"]
    search_fields = ["external_id", "phone_number", "agent_email", "crm_record_id", "crm_contact_id"]
    list_select_related = ["crm_connection"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "external_id",
        "channel",
        "session_type",
        "phone_number",
        "agent_email",
        "started_at",
        "ended_at",
        "crm_connection",
        "crm_contact_id",
        "crm_record_id",
        "state",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["external_id", "channel", "session_type", "phone_number", "agent_email"]}),
        ("Timeline", {"fields": ["started_at", "ended_at", "created_at", "updated_at"]}),
        ("In the CRM", {"fields": ["crm_connection", "crm_contact_id", "crm_record_id"]}),
        ("Rule state", {"fields": ["state"], "classes": ["collapse"]}),
    ]
    inlines = [EventInline, CrmActionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Sessions are the platform's record of what happened: viewed here, never edited.
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin[Event]):
    list_display = ["event_id", "type", "session_link", "occurred_at", "applied_at", "outcome"]
    list_filter = ["type"]
    search_fields = ["event_id", "session__external_id"]
    list_select_related = ["session"]
    readonly_fields = [
        "event_id",
        "session",
        "type",
        "occurred_at",
        "data",
        "extra",
        "received_at",
        "applied_at",
        "outcome",
    ]

    @admin.display(description="Session")
    def session_link(self, obj: Event) -> str:
        url = reverse("admin:records_session_change", args=[obj.session_id])
        return format_html('<a href="{}">{}</a>', url, obj.session.external_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CrmAction)
class CrmActionAdmin(admin.ModelAdmin[CrmAction]):
    list_display = [
        "id",
        "kind",
        "session_link",
        "rule",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "updated_at",
    ]
    list_filter = ["status", "kind", "rule"]
    search_fields = ["session__external_id", "idempotency_key", "last_error"]
    list_select_related = ["session"]
    readonly_fields = [
        "session",
        "event",
        "kind",
        "rule",
        "reason",
        "payload",
        "idempotency_key",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "result",
        "created_at",
        "updated_at",
        "completed_at",
    ]
    actions = ["retry"]

    @admin.display(description="Session")
    def session_link(self, obj: CrmAction) -> str:
        url = reverse("admin:records_session_change", args=[obj.session_id])
        return format_html('<a href="{}">{}</a>', url, obj.session.external_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry now")
    def retry(self, request: HttpRequest, queryset: QuerySet[CrmAction]) -> None:
        retried = 0
        for action in queryset.exclude(status=CrmAction.Status.SUCCEEDED):
            action_retry(action=action)
            retried += 1
        self.message_user(request, f"{retried} action(s) queued to run again.", messages.SUCCESS)
