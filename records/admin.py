import functools
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from integrations.admin import connections_that_can, register_connection_action
from integrations.exceptions import CrmUnsupported
from integrations.models import CrmConnection
from integrations.providers.base import Capability
from integrations.providers.registry import UnsupportedCrm
from records.models import (
    CrmAction,
    CustomDataMapping,
    CustomField,
    Event,
    OperationSettings,
    Queue,
    Session,
    Team,
)
from records.rules import DEFAULT_TITLE_TEMPLATE, TITLE_VARIABLES
from records.services.config_io import E164_RE
from records.services.custom_fields import custom_fields_create_enqueue
from records.services.execution import action_retry
from records.vocabulary import SESSION_TYPES


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


# -- Operation management (R1-R9, S4, S15) -----------------------------------------------------

# What each title variable is replaced with (R7), shown beside the template.
TITLE_VARIABLE_HELP = {
    "CALL_TYPE": ", ".join(dict.fromkeys(info.call_type for info in SESSION_TYPES.values())),
    "CALL_ID": "the platform's call or chat id",
    "MENU_PATH": "the menu the customer selected",
    "PHONE_NUMBER": "the customer's phone number",
    "LANGUAGE": "the language selected, or routed by the dialed number",
    "TIMESTAMP": "when the session started",
}


def _title_help() -> str:
    described = ((name, TITLE_VARIABLE_HELP.get(name, "")) for name in sorted(TITLE_VARIABLES))
    items = format_html_join("", "<li><code>{{{}}}</code>: {}</li>", described)
    return format_html(
        "The record's subject. Variables, in braces:<ul>{}</ul>Default: <code>{}</code>. "
        "Any other name in braces is refused when you save.",
        items,
        DEFAULT_TITLE_TEMPLATE,
    )


@admin.register(OperationSettings)
class OperationSettingsAdmin(admin.ModelAdmin[OperationSettings]):
    """One screen for the one settings row: the list goes straight to it; nothing to add or delete."""

    readonly_fields = ["updated_at"]
    fieldsets = [
        (
            "Appending sessions to existing records (R1, R2, R9)",
            {
                "fields": [
                    "append_to_open_records",
                    "append_to_recently_closed",
                    "closed_within_days",
                    "never_append",
                ],
                "description": (
                    "R1 adds a call or chat to the contact's last open record from the same leaf queue, "
                    "menu selection and channel. R2 applies only when R1 is on: it also takes a record "
                    "closed within the last N days and sets it back to the CRM's default open status "
                    "(a closed Zendesk ticket cannot be reopened). R9 switches R1 and R2 off and makes "
                    "outbound calls create new records."
                ),
            },
        ),
        (
            "When records are created (R3, R4)",
            {
                "fields": ["create_call_record_on_connect", "delay_chat_until_messages", "chat_min_messages"],
                "description": (
                    "By default a record is created when the session is assigned to an agent. "
                    "N messages applies only when the chat delay is on."
                ),
            },
        ),
        (
            "Abandoned sessions (R5, R6)",
            {
                "fields": [
                    "abandoned_call_records",
                    "abandoned_chat_records",
                    "abandoned_chat_min_messages",
                    "short_abandon_seconds",
                ],
                "description": (
                    "With R3 on and abandoned-call records off, only calls that reached an agent make records. "
                    'For chats: at least N consumer messages applies only to "With at least N messages"; '
                    "the short-abandon threshold says which abandoned chats count as short ones "
                    '("Off" makes no record for either, "All" makes one for both).'
                ),
            },
        ),
        ("Record title (R7)", {"fields": ["title_template"], "description": _title_help()}),
        (
            "Tags (R8: Zendesk, Kustomer, Freshdesk)",
            {
                "fields": ["tag_session_type", "add_product_tag", "product_tag"],
                "description": (
                    "The session-type tag is styled per CRM: Zendesk voice_inbound_ivr, Kustomer "
                    '"Voice Inbound - IVR", Freshdesk "Voice Inbound (IVR)". The product tag applies only '
                    "when its toggle is on, and is then required."
                ),
            },
        ),
        ("Voicemail (S4)", {"fields": ["voicemail_default_user_email"]}),
        ("Developer settings (S15)", {"fields": ["api_response_format"]}),
        ("History", {"fields": ["updated_at"]}),
    ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        settings = OperationSettings.load()
        return HttpResponseRedirect(reverse("admin:records_operationsettings_change", args=[settings.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# -- Queues, teams, custom fields, custom data mapping ----------------------------------------


class QueueForm(forms.ModelForm[Queue]):
    class Meta:
        model = Queue
        fields = ["platform_id", "name", "path", "teams", "default_outbound_number"]

    def clean_default_outbound_number(self) -> str:
        number: str = self.cleaned_data.get("default_outbound_number") or ""
        number = number.strip()
        if number and not E164_RE.fullmatch(number):
            raise forms.ValidationError("Enter the number in E.164 form, e.g. +14155550100.")
        return number


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin[Queue]):
    form = QueueForm
    list_display = ["platform_id", "leaf_path", "team_names", "default_outbound_number"]
    search_fields = ["platform_id", "name", "default_outbound_number"]
    list_filter = ["teams"]
    filter_horizontal = ["teams"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Queue]:
        return super().get_queryset(request).prefetch_related("teams")

    @admin.display(description="Leaf path")
    def leaf_path(self, obj: Queue) -> str:
        return obj.leaf_path

    @admin.display(description="Teams")
    def team_names(self, obj: Queue) -> str:
        return ", ".join(team.name for team in obj.teams.all())


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    list_display = ["name", "enable_ticket_id", "ticket_id_required", "linked_to_external_queue"]
    list_filter = ["enable_ticket_id", "ticket_id_required", "linked_to_external_queue"]
    search_fields = ["name"]


@admin.register(CustomField)
class CustomFieldAdmin(admin.ModelAdmin[CustomField]):
    """Made by the "Create custom fields" action on a CRM connection (F1); read-only here."""

    list_display = ["key", "title", "crm_field_id", "connection", "created_at"]
    list_filter = ["connection"]
    list_select_related = ["connection"]
    search_fields = ["key", "crm_field_id"]
    readonly_fields = ["connection", "key", "crm_field_id", "created_at"]

    @admin.display(description="Field")
    def title(self, obj: CustomField) -> str:
        return obj.get_key_display()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CustomDataMapping)
class CustomDataMappingAdmin(admin.ModelAdmin[CustomDataMapping]):
    list_display = ["sdk_key", "crm_field_id", "connection"]
    list_filter = ["connection"]
    list_select_related = ["connection"]
    search_fields = ["sdk_key", "crm_field_id"]


@functools.partial(register_connection_action, requires=Capability.CUSTOM_FIELDS)
@admin.action(description="Create custom fields")
def create_custom_fields(
    modeladmin: admin.ModelAdmin[CrmConnection], request: HttpRequest, queryset: QuerySet[CrmConnection]
) -> None:
    """F1: make the product's record fields in each chosen CRM, in the background."""
    for connection in connections_that_can(modeladmin, request, queryset, Capability.CUSTOM_FIELDS):
        try:
            count = custom_fields_create_enqueue(connection=connection)
        except (UnsupportedCrm, CrmUnsupported) as exc:
            modeladmin.message_user(request, f"{connection}: {exc}", messages.ERROR)
            continue
        url = reverse("admin:records_customfield_changelist") + f"?connection__id__exact={connection.pk}"
        modeladmin.message_user(
            request,
            format_html(
                'Creating {} custom fields in {} in the background; they appear under <a href="{}">Custom fields</a>. '
                "If the CRM refuses, the connection's last error says why.",
                count,
                connection,
                url,
            ),
            messages.SUCCESS,
        )
