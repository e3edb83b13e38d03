import functools
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from integrations.admin import connections_that_can, register_connection_action
from integrations.admin_views import ViewOnlyAdminMixin
from integrations.exceptions import CrmUnsupported, UnknownCrmKind
from integrations.health import HealthRow, HealthSection, register_health_source
from integrations.models import CrmConnection
from integrations.providers.base import Capability
from integrations.selectors import connection_web_url
from records.console import ActionFacts, SessionState, action_explanation, session_state
from records.models import (
    CrmAction,
    CrmBatch,
    CustomDataMapping,
    CustomField,
    Event,
    OperationSettings,
    Queue,
    Replay,
    ScreenPop,
    Session,
    Team,
)
from records.phones import E164_MESSAGE, to_e164
from records.rules import DEFAULT_TITLE_TEMPLATE, TITLE_VARIABLES
from records.selectors import (
    STUCK_AFTER,
    actions_with_blocker,
    records_health,
    session_facts,
    sessions_in_state,
    sessions_with_facts,
)
from records.services.custom_fields import custom_fields_create_enqueue
from records.services.execution import action_retry
from records.services.processing import session_process_again
from records.services.replay import replay_preview, replay_progress, replay_start
from records.services.simulation import settings_simulate
from records.vocabulary import SESSION_TYPES


def _crm_link(connection: CrmConnection | None, *, record_id: str = "", contact_id: str = "") -> str:
    """The id, as a link into the CRM when the CRM has a page for it."""
    value = record_id or contact_id
    url = connection_web_url(connection, record_id=record_id, contact_id=contact_id)
    if not url:
        return value or "-"
    return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', url, value)


def _action_explanation(action: CrmAction) -> str:
    facts = ActionFacts(
        status=action.status,
        attempts=action.attempts,
        next_attempt_at=action.next_attempt_at,
        last_error=action.last_error,
        blocked_by_id=getattr(action, "blocked_by_id", None),
        blocked_by_kind=_kind_label(getattr(action, "blocked_by_kind", "") or ""),
    )
    return action_explanation(facts, timezone.now())


def _kind_label(kind: str) -> str:
    return str(dict(CrmAction._meta.get_field("kind").flatchoices).get(kind, kind))


def _status_html(action: CrmAction) -> str:
    explanation = _action_explanation(action)
    if not explanation:
        return action.get_status_display()
    return format_html('{}<br><span class="help">{}</span>', action.get_status_display(), explanation)


def _error_html(error: str) -> str:
    # The whole error, wrapped: a cut-off error is the one thing an admin needs in full.
    if not error:
        return "-"
    return format_html('<div class="crm-error" style="white-space: pre-wrap; max-width: 48em">{}</div>', error)


def json_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


class ReadOnlyInline(ViewOnlyAdminMixin, admin.TabularInline[Any, Any]):
    extra = 0
    can_delete = False
    show_change_link = True


class EventInline(ReadOnlyInline):
    model = Event
    readonly_fields = ["occurred_at", "type", "event_id", "applied_at", "outcome"]
    fields = tuple(readonly_fields)
    ordering = ["occurred_at", "id"]


class CrmActionInline(ReadOnlyInline):
    model = CrmAction
    fk_name = "session"
    readonly_fields = ["id", "kind", "rule", "reason", "caused_by", "state", "attempts", "error", "result"]
    fields = tuple(readonly_fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet[CrmAction]:
        return actions_with_blocker(super().get_queryset(request).select_related("event"))

    @admin.display(description="Caused by")
    def caused_by(self, obj: CrmAction) -> str:
        return f"{obj.event.type} ({obj.event.event_id})" if obj.event else ""

    @admin.display(description="Status")
    def state(self, obj: CrmAction) -> str:
        return _status_html(obj)

    @admin.display(description="Last error")
    def error(self, obj: CrmAction) -> str:
        return _error_html(obj.last_error)


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return SessionState.CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        value = self.value()
        if value in dict(SessionState.CHOICES):
            return sessions_in_state(queryset, value)
        return queryset


@admin.register(Session)
class SessionAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[Session]):
    list_display = [
        "external_id",
        "where_it_stands",
        "session_type",
        "phone_number",
        "agent_email",
        "record_link",
        "started_at",
    ]
    list_filter = [SessionStateFilter, "channel", "session_type", "crm_connection"]
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
        "contact_link",
        "record_link",
        "where_it_stands",
        "rule_state",
        "processing_error",
        "processing_attempts",
        "processing_failed_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (
            None,
            {"fields": ["external_id", "where_it_stands", "channel", "session_type", "phone_number", "agent_email"]},
        ),
        ("Timeline", {"fields": ["started_at", "ended_at", "created_at", "updated_at"]}),
        ("In the CRM", {"fields": ["crm_connection", "contact_link", "record_link"]}),
        (
            "Processing failures",
            {
                "fields": ["processing_error", "processing_attempts", "processing_failed_at"],
                "description": (
                    "When applying the session's events raised. After a few failed attempts the session is "
                    'no longer retried on its own: fix the cause, then use "Process again" on the session list.'
                ),
            },
        ),
        ("Rule state", {"fields": ["rule_state"], "classes": ["collapse"]}),
    ]
    inlines = [EventInline, CrmActionInline]
    actions = ["process_again"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        return sessions_with_facts(super().get_queryset(request))

    @admin.display(description="State")
    def where_it_stands(self, obj: Session) -> str:
        verdict = session_state(session_facts(obj))
        if verdict.action_id is None:
            return verdict.label
        url = reverse("admin:records_crmaction_change", args=[verdict.action_id])
        return format_html('<a href="{}">{}</a>', url, verdict.label)

    @admin.display(description="Rule state")
    def rule_state(self, obj: Session) -> str:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', json_pretty(obj.state))

    @admin.display(description="CRM record", ordering="crm_record_id")
    def record_link(self, obj: Session) -> str:
        return _crm_link(obj.crm_connection, record_id=obj.crm_record_id)

    @admin.display(description="CRM contact")
    def contact_link(self, obj: Session) -> str:
        return _crm_link(obj.crm_connection, contact_id=obj.crm_contact_id)

    def has_process_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("records.change_session")

    @admin.action(description="Process again (sessions whose events could not be applied)", permissions=["process"])
    def process_again(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        sessions = list(queryset.filter(processing_attempts__gt=0))
        for session in sessions:
            session_process_again(session=session)
        self.message_user(request, f"{len(sessions)} session(s) queued to be processed again.", messages.SUCCESS)


@admin.register(Event)
class EventAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[Event]):
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


class StuckFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        minutes = int(STUCK_AFTER.total_seconds() // 60)
        return [("yes", f"Due, but untouched for {minutes} min")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CrmAction]) -> QuerySet[CrmAction]:
        if self.value() != "yes":
            return queryset
        now = timezone.now()
        return queryset.filter(status=CrmAction.Status.PENDING, updated_at__lt=now - STUCK_AFTER).exclude(
            next_attempt_at__gt=now
        )


@admin.register(CrmAction)
class CrmActionAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[CrmAction]):
    """The action log: newest first, each action's state explained, Retry on the action's page."""

    list_display = [
        "id",
        "kind",
        "session_link",
        "rule",
        "state",
        "attempts",
        "error",
        "updated_at",
    ]
    list_filter = ["status", StuckFilter, "kind", "rule", ("session__crm_connection", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["session__external_id", "idempotency_key", "last_error"]
    list_select_related = ["session"]
    ordering = ["-id"]
    readonly_fields = [
        "session",
        "event",
        "kind",
        "rule",
        "reason",
        "state",
        "attempts",
        "next_attempt_at",
        "failing_since",
        "error",
        "result",
        "payload",
        "idempotency_key",
        "created_at",
        "updated_at",
        "completed_at",
    ]
    fieldsets = [
        (None, {"fields": ["session", "event", "kind", "rule", "reason"]}),
        (
            "Outcome",
            {"fields": ["state", "attempts", "next_attempt_at", "failing_since", "error", "result", "completed_at"]},
        ),
        ("Details", {"fields": ["payload", "idempotency_key", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    actions = ["retry"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CrmAction]:
        return actions_with_blocker(super().get_queryset(request))

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:action_id>/retry/", view(self.retry_view), name="records_crmaction_retry"),
            path("replay/", view(self.replay_view), name="records_crmaction_replay"),
            path("replay/<int:replay_id>/", view(self.replay_progress_view), name="records_crmaction_replay_progress"),
            *super().get_urls(),
        ]

    @admin.display(description="Session")
    def session_link(self, obj: CrmAction) -> str:
        url = reverse("admin:records_session_change", args=[obj.session_id])
        return format_html('<a href="{}">{}</a>', url, obj.session.external_id)

    @admin.display(description="Status", ordering="status")
    def state(self, obj: CrmAction) -> str:
        return _status_html(obj)

    @admin.display(description="Last error")
    def error(self, obj: CrmAction) -> str:
        return _error_html(obj.last_error)

    def has_retry_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("records.change_crmaction")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        action = self.get_object(request, object_id)
        can_retry = (
            action is not None
            and action.status != CrmAction.Status.SUCCEEDED
            and self.has_retry_permission(request, action)
        )
        context = {**(extra_context or {}), "can_retry": can_retry}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def retry_view(self, request: HttpRequest, action_id: int) -> HttpResponse:
        action = get_object_or_404(CrmAction, pk=action_id)
        if request.method != "POST" or not self.has_retry_permission(request, action):
            raise PermissionDenied
        if action.status == CrmAction.Status.SUCCEEDED:
            self.message_user(request, f"Action #{action.pk} has already succeeded.", messages.WARNING)
        else:
            action_retry(action=action)
            self.message_user(request, f"Action #{action.pk} is queued to run again.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:records_crmaction_change", args=[action.pk]))

    @admin.action(description="Retry now", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[CrmAction]) -> None:
        retried = 0
        for action in queryset.exclude(status=CrmAction.Status.SUCCEEDED):
            action_retry(action=action)
            retried += 1
        self.message_user(request, f"{retried} action(s) queued to run again.", messages.SUCCESS)

    def replay_view(self, request: HttpRequest) -> HttpResponse:
        """Bulk replay: a connection and a window; what failed and why; then retry them all."""
        if not self.has_retry_permission(request):
            raise PermissionDenied
        # The window is in the query string: the preview links to it, and the Retry button posts to it.
        form = ReplayForm(request.GET or None)
        preview = None
        if form.is_bound and form.is_valid():
            connection, since, until = (form.cleaned_data[key] for key in ("connection", "since", "until"))
            if request.method == "POST" and "_replay" in request.POST:
                replay = replay_start(
                    connection=connection, since=since, until=until, requested_by=request.user.get_username()
                )
                return HttpResponseRedirect(reverse("admin:records_crmaction_replay_progress", args=[replay.pk]))
            preview = replay_preview(connection=connection, since=since, until=until)
        context = {
            **self.admin_site.each_context(request),
            "title": "Replay failed actions",
            "opts": self.opts,
            "form": form,
            "preview": preview,
            "recent": Replay.objects.select_related("connection")[:5],
        }
        return TemplateResponse(request, "admin/records/crmaction/replay.html", context)

    def replay_progress_view(self, request: HttpRequest, replay_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        replay = get_object_or_404(Replay.objects.select_related("connection"), pk=replay_id)
        progress = replay_progress(replay=replay)
        failed_url = reverse("admin:records_crmaction_changelist") + "?" + urlencode({"status__exact": "failed"})
        context = {
            **self.admin_site.each_context(request),
            "title": f"Replay #{replay.pk}",
            "opts": self.opts,
            "replay": replay,
            "progress": progress,
            "failed_url": failed_url,
        }
        return TemplateResponse(request, "admin/records/crmaction/replay_progress.html", context)


class ReplayForm(forms.Form):
    connection = forms.ModelChoiceField(CrmConnection.objects.all(), label="CRM connection")
    since = forms.SplitDateTimeField(label="Failed from", widget=AdminSplitDateTime)
    until = forms.SplitDateTimeField(label="Failed until", widget=AdminSplitDateTime)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        now = timezone.localtime()
        self.fields["since"].initial = now - timedelta(hours=24)
        self.fields["until"].initial = now
        self.fields["connection"].initial = CrmConnection.objects.filter(is_active=True).first()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The window ends before it starts.")
        return cleaned


@register_health_source
def records_health_section(connection: CrmConnection | None) -> HealthSection:
    """Failed, pending and stuck actions; failed and blocked sessions, each linked to its list."""
    health = records_health(connection=connection)
    actions_url = reverse("admin:records_crmaction_changelist")
    sessions_url = reverse("admin:records_session_changelist")
    scope = {"session__crm_connection__id__exact": connection.pk} if connection else {}
    session_scope = {"crm_connection__id__exact": connection.pk} if connection else {}

    def actions(**query: str) -> str:
        return f"{actions_url}?{urlencode({**query, **scope})}"

    def sessions(state: str) -> str:
        return f"{sessions_url}?{urlencode({'state': state, **session_scope})}"

    replay_url = reverse("admin:records_crmaction_replay")
    if connection:
        replay_url += "?" + urlencode({"connection": connection.pk})
    rows = [
        HealthRow(
            "Failed actions", str(health.failed_actions), actions(status__exact="failed"), health.failed_actions > 0
        ),
        HealthRow("Pending actions", str(health.pending_actions), actions(status__exact="pending")),
        HealthRow(
            f"Stuck actions (due, untouched for {int(STUCK_AFTER.total_seconds() // 60)} min)",
            str(health.stuck_actions),
            actions(stuck="yes"),
            health.stuck_actions > 0,
        ),
        HealthRow(
            "Sessions with failed actions",
            str(health.failed_sessions),
            sessions(SessionState.FAILED),
            health.failed_sessions > 0,
        ),
        HealthRow(
            "Sessions blocked by a failed action",
            str(health.blocked_sessions),
            sessions(SessionState.BLOCKED),
            health.blocked_sessions > 0,
        ),
        HealthRow(
            "Sessions whose events could not be applied",
            str(health.processing_failed_sessions),
            sessions(SessionState.FAILED),
            health.processing_failed_sessions > 0,
        ),
    ]
    if health.failed_actions:
        rows.append(HealthRow("After an outage", "Replay the failed actions", replay_url))
    return HealthSection("Sessions and CRM actions", rows)


# -- Operation management (R1-R9, S4, S15) -----------------------------------------------------

# Simulate looks at this many days of sessions unless the admin asks for another number.
SIMULATE_DEFAULT_DAYS = 7

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
            "Appending sessions to existing records",
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
            "When records are created",
            {
                "fields": ["create_call_record_on_connect", "delay_chat_until_messages", "chat_min_messages"],
                "description": (
                    "By default a record is created when the session is assigned to an agent. "
                    "N messages applies only when the chat delay is on."
                ),
            },
        ),
        (
            "Abandoned sessions",
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
        ("Record title", {"fields": ["title_template"], "description": _title_help()}),
        (
            "Tags (Zendesk, Kustomer, Freshdesk)",
            {
                "fields": ["tag_session_type", "add_product_tag", "product_tag"],
                "description": (
                    "The session-type tag is styled per CRM: Zendesk voice_inbound_ivr, Kustomer "
                    '"Voice Inbound - IVR", Freshdesk "Voice Inbound (IVR)". The product tag applies only '
                    "when its toggle is on, and is then required."
                ),
            },
        ),
        (
            "Outbound calls",
            {
                "fields": [
                    "outbound_prompt_record_choice",
                    "outbound_allow_create_new",
                    "outbound_allow_no_record",
                    "outbound_allow_entered_number",
                ],
                "description": (
                    "What the agent may choose in the adapter before an outbound call (SPEC O1). "
                    '"Create new record" is offered only with the prompt on.'
                ),
            },
        ),
        (
            "Outbound ticket settings",
            {
                "fields": ["outbound_ticket_phone_field"],
                "description": (
                    "For teams with ticket ID entry (turned on per team under Teams; the team's queues give the "
                    "default outbound number), SPEC O3."
                ),
            },
        ),
        ("Voicemail", {"fields": ["voicemail_default_user_email"]}),
        ("Developer settings", {"fields": ["api_response_format"]}),
        ("History", {"fields": ["updated_at"]}),
    ]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method == "POST" and "_simulate" in request.POST and object_id:
            response = self._simulate(request, object_id)
            if response is not None:
                return response
        context = {**(extra_context or {}), "simulate_days": SIMULATE_DEFAULT_DAYS}
        return super().changeform_view(request, object_id, form_url, context)

    def _simulate(self, request: HttpRequest, object_id: str) -> HttpResponse | None:
        """Simulate: the form's settings over stored sessions, before anything is saved.

        An invalid form returns None: the change form shows its errors as a save would.
        """
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        form = self.get_form(request, obj, change=True)(request.POST, instance=obj)
        days_field = forms.IntegerField(min_value=1, max_value=90)
        try:
            days = days_field.clean(request.POST.get("simulate_days") or SIMULATE_DEFAULT_DAYS)
        except forms.ValidationError:
            days = SIMULATE_DEFAULT_DAYS
        if not form.is_valid():
            return None
        # Not saved: the unsaved instance only lends its values to the rule set.
        result = settings_simulate(changed=form.save(commit=False).ruleset(), days=days)
        context = {
            **self.admin_site.each_context(request),
            "title": "Simulate the changed settings",
            "opts": self.opts,
            "original": obj,
            "result": result,
            "rows": [(result.session_pks[item.session_id], item) for item in result.changed],
            "posted": [
                (key, value)
                for key, values in request.POST.lists()
                if key not in ("csrfmiddlewaretoken", "_simulate", "simulate_days")
                for value in values
            ],
            "change_url": reverse("admin:records_operationsettings_change", args=[obj.pk]),
        }
        return TemplateResponse(request, "admin/records/operationsettings/simulate.html", context)

    def save_model(self, request: HttpRequest, obj: OperationSettings, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if obj.outbound_allow_no_record:
            self.message_user(
                request,
                'Agents may choose "Do not create a record" for outbound calls: the recordings of those calls '
                "cannot be reached.",
                messages.WARNING,
            )

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
    # Typed as the admin reads it, not as JSON: each level of the menu path, joined by " > ".
    path = forms.CharField(
        label="Menu path",
        required=False,
        max_length=500,
        help_text="Each level down to the leaf queue, separated by &gt;, e.g. Support &gt; Billing.",
    )

    class Meta:
        model = Queue
        fields = ["platform_id", "name", "path", "teams", "default_outbound_number"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["path"] = " > ".join(str(part) for part in (self.instance.path or []))

    def clean_path(self) -> list[str]:
        text: str = self.cleaned_data.get("path") or ""
        parts = [part.strip() for part in text.split(">")]
        if text.strip() and not all(parts):
            raise forms.ValidationError("Leave no level empty: e.g. Support > Billing.")
        return [part for part in parts if part]

    def clean_default_outbound_number(self) -> str:
        number: str = self.cleaned_data.get("default_outbound_number") or ""
        number = number.strip()
        if not number:
            return ""
        e164 = to_e164(number)
        if e164 is None:
            raise forms.ValidationError(E164_MESSAGE)
        return e164


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


class TeamForm(forms.ModelForm[Team]):
    class Meta:
        model = Team
        fields = ["name", "enable_ticket_id", "ticket_id_required", "linked_to_external_queue"]
        help_texts = {
            "enable_ticket_id": "Agents of this team are asked for a ticket ID when they place an outbound call (O3).",
            "ticket_id_required": "Only with ticket ID on: the call cannot be placed without one.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if cleaned.get("ticket_id_required") and not cleaned.get("enable_ticket_id"):
            self.add_error(
                "ticket_id_required", "Turn ticket ID on first: a ticket ID can only be required when asked for."
            )
        return cleaned


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    form = TeamForm
    list_display = ["name", "enable_ticket_id", "ticket_id_required", "linked_to_external_queue", "queue_names"]
    list_filter = ["enable_ticket_id", "ticket_id_required", "linked_to_external_queue"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return super().get_queryset(request).prefetch_related("queues")

    @admin.display(description="Queues (default outbound number)")
    def queue_names(self, obj: Team) -> str:
        return ", ".join(
            f"{queue} ({queue.default_outbound_number})" if queue.default_outbound_number else str(queue)
            for queue in obj.queues.all()
        )


@admin.register(ScreenPop)
class ScreenPopAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[ScreenPop]):
    """O4: which record opened on which agent's adapter, and when the adapter took it."""

    list_display = ["session", "agent_email", "record_link", "channel", "created_at", "delivered_at"]
    list_filter = ["channel"]
    search_fields = ["session__external_id", "agent_email", "record_id"]
    list_select_related = ["session"]
    readonly_fields = [
        "session",
        "agent_email",
        "record_id",
        "record_url",
        "contact_id",
        "channel",
        "created_at",
        "delivered_at",
    ]

    @admin.display(description="Record")
    def record_link(self, obj: ScreenPop) -> str:
        if not obj.record_url:
            return obj.record_id
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', obj.record_url, obj.record_id)


@admin.register(CrmBatch)
class CrmBatchAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[CrmBatch]):
    """B1: comments and record updates of many sessions sent to the CRM in one request, and its job."""

    list_display = ["id", "connection", "state", "action_count", "due_at", "sent_at", "job_id", "polls", "finished_at"]
    list_filter = ["state", "connection"]
    search_fields = ["job_id"]
    list_select_related = ["connection"]
    readonly_fields = [
        "connection",
        "state",
        "due_at",
        "job_id",
        "sent_at",
        "next_poll_at",
        "polls",
        "finished_at",
        "last_error",
        "created_at",
    ]

    @admin.display(description="Actions")
    def action_count(self, obj: CrmBatch) -> int:
        return obj.actions.count()


@admin.register(CustomField)
class CustomFieldAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[CustomField]):
    """Made by the "Create custom fields" action on a CRM connection (F1); read-only here."""

    list_display = ["key", "title", "crm_field_id", "connection", "created_at"]
    list_filter = ["connection"]
    list_select_related = ["connection"]
    search_fields = ["key", "crm_field_id"]
    readonly_fields = ["connection", "key", "crm_field_id", "created_at"]

    @admin.display(description="Field")
    def title(self, obj: CustomField) -> str:
        return obj.get_key_display()


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
        except (UnknownCrmKind, CrmUnsupported) as exc:
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
