from collections.abc import Callable
from typing import Any, TypeVar

import redis
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from integrations.exceptions import CredentialsUnreadable
from integrations.health import HealthRow, HealthSection, register_health_source, usage_chart_svg, usage_totals
from integrations.models import CrmConnection, CrmKind
from integrations.providers.base import CAPABILITY_LABELS, Capability, SettingSpec, SettingType
from integrations.providers.registry import PROVIDERS
from integrations.selectors import connection_budget, connection_circuit_state, connection_usage
from integrations.services import (
    connection_activate,
    connection_apply_settings,
    connection_can,
    connection_get_active,
    connection_set_retry_budget,
    connection_test,
)

ConnectionAction = TypeVar("ConnectionAction", bound=Callable[..., None])

# The connection list's actions. integrations imports nothing from the apps above it, so those apps
# add theirs here (records: "Create custom fields") when their admin module is imported; Django
# reads `actions` per request, after every admin module has been loaded.
CONNECTION_ACTIONS: list[Any] = ["test_connection", "make_active"]
# Actions only some CRMs can serve: offered only while a connection's CRM can (action name -> capability).
ACTION_CAPABILITIES: dict[str, Capability] = {}


def register_connection_action(action: ConnectionAction, *, requires: Capability | None = None) -> ConnectionAction:
    """Offer `action(modeladmin, request, queryset)` on the CRM connection list.

    With `requires`, the action is listed only when some connection's CRM has that capability,
    and the action itself must refuse connections whose CRM lacks it (`connections_that_can`).
    """
    if action not in CONNECTION_ACTIONS:
        CONNECTION_ACTIONS.append(action)
    if requires is not None:
        ACTION_CAPABILITIES[action.__name__] = requires
    return action


def connections_that_can(
    modeladmin: admin.ModelAdmin[CrmConnection],
    request: HttpRequest,
    queryset: QuerySet[CrmConnection],
    capability: Capability,
) -> list[CrmConnection]:
    """The selected connections whose CRM can do this; the others are named in an error message."""
    able = []
    for connection in queryset:
        if connection_can(connection, capability):
            able.append(connection)
        else:
            modeladmin.message_user(
                request,
                f"{connection}: {connection.get_kind_display()} has no {CAPABILITY_LABELS[capability]}.",
                messages.ERROR,
            )
    return able


def setting_field_name(kind: str, setting: SettingSpec) -> str:
    """The form field of one declared setting; prefixed by kind, since the add form offers every CRM."""
    return f"{kind}__{setting.name}"


def clear_field_name(kind: str, setting: SettingSpec) -> str:
    return f"{setting_field_name(kind, setting)}__clear"


def _clear_field(setting: SettingSpec) -> forms.Field:
    return forms.BooleanField(
        label=f"Forget the {setting.label.lower()}",
        required=False,
        help_text=f"Tick to remove the stored {setting.label.lower()} (it is optional).",
    )


def _typed_field(setting: SettingSpec) -> forms.Field:
    """A typed setting's form field: a checkbox, a bounded number, or ticks for its choices."""
    if setting.type == SettingType.BOOLEAN:
        return forms.BooleanField(label=setting.label, required=False, help_text=setting.help_text)
    if setting.type == SettingType.INTEGER:
        return forms.IntegerField(
            label=setting.label,
            required=False,
            min_value=setting.min_value,
            max_value=setting.max_value,
            help_text=f"{setting.help_text} Blank: {setting.default}.".strip(),
        )
    return forms.MultipleChoiceField(
        label=setting.label,
        required=False,
        choices=setting.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=setting.help_text,
    )


def _setting_field(setting: SettingSpec, stored: bool) -> forms.Field:
    if setting.typed:
        return _typed_field(setting)
    if setting.secret:
        if stored:
            note = (
                f" {setting.label} stored: encrypted, never shown. Leave blank to keep it "
                "(required again when the base URL changes)."
            )
        else:
            note = " Stored encrypted, never shown."
        return forms.CharField(
            label=setting.label,
            required=False,
            widget=forms.PasswordInput(render_value=False),
            help_text=(setting.help_text + note).strip(),
        )
    field_class = forms.EmailField if setting.email else forms.CharField
    return field_class(label=setting.label, required=False, help_text=setting.help_text)


class CrmConnectionForm(forms.ModelForm[CrmConnection]):
    """Fields built from each provider's declared settings; secrets are write-only.

    Every CRM's settings are on the add form (the kind is chosen on the same page); only the
    chosen kind's are read. The checks are the service's, so the command and the form agree.
    """

    rate_limit_per_minute = forms.IntegerField(
        label="Requests per minute",
        required=False,
        min_value=1,
        help_text=(
            "Your CRM plan's API limit, kept by all workers together so they do not run into 429s. "
            "Zendesk: Team 200, Growth and Professional 400, Enterprise 700, High Volume 2500. "
            "Kustomer (org-wide): Enterprise 1000, Ultimate 2000. Freshdesk: Growth 200, Pro 400, "
            "Enterprise 700. Salesforce counts per 24 hours: leave blank, its usage header is followed. "
            "Blank: no limit of our own (429s are still honoured)."
        ),
    )
    retry_budget_hours = forms.FloatField(
        label="Retry budget (hours)",
        required=False,
        min_value=0.001,
        help_text=(
            "How long the CRM may keep failing (errors 5xx, timeouts, 429) before an action or a status "
            "push fails for good; it is retried meanwhile, waiting at most 10 minutes between tries. "
            "A refusal that can never succeed (a 4xx) fails at once. Blank: the server's default "
            "(CRM_RETRY_BUDGET_SECONDS, one day)."
        ),
    )
    # Not the model field: activating switches the other connections off (one active at a time).
    make_active = forms.BooleanField(
        required=False, help_text="Use this connection from now on; the active one, if any, is switched off."
    )

    class Meta:
        model = CrmConnection
        fields = ["name", "kind", "base_url"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = self.instance.config or {}
        for setting in PROVIDERS[self.instance.kind].settings_spec if self.instance.kind in PROVIDERS else ():
            name = setting_field_name(self.instance.kind, setting)
            if setting.secret:
                self.fields[name] = _setting_field(setting, stored=setting.name in self._stored_secrets())
            elif setting.typed:
                self.fields[name].initial = config.get(setting.name, setting.default)
            else:
                self.fields[name].initial = config.get(setting.name, "")
        # Only the CRMs a provider serves are offered (a connection of another kind could do nothing).
        kind_field = self.fields["kind"]
        if isinstance(kind_field, forms.ChoiceField):
            kind_field.choices = [
                (value, label) for value, label in CrmKind.choices if value in PROVIDERS or value == self.instance.kind
            ]
        self.fields["base_url"].help_text = " ".join(
            f"{CrmKind(kind).label}: {provider.base_url_help}." for kind, provider in PROVIDERS.items()
        )
        self.fields["make_active"].initial = self.instance.is_active
        self.fields["rate_limit_per_minute"].initial = config.get("rate_limit_per_minute")
        budget = config.get("retry_budget_seconds")
        self.fields["retry_budget_hours"].initial = budget / 3600 if budget is not None else None

    def _stored_secrets(self) -> dict[str, Any]:
        if not self.instance.has_secrets:
            return {}
        try:
            return dict(self.instance.secrets)
        except CredentialsUnreadable:
            return {}

    def _url_changed(self) -> bool:
        return self.instance.pk is not None and "base_url" in self.changed_data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        if kind and kind not in PROVIDERS:
            supported = ", ".join(CrmKind(k).label for k in sorted(PROVIDERS))
            self.add_error("kind", f"{CrmKind(kind).label} is not supported yet; supported: {supported}.")
        if not kind or kind not in PROVIDERS:
            return cleaned
        if self.instance.pk and kind != self.instance.kind:
            # Another CRM's secrets mean nothing to this one: start from none.
            self.instance.encrypted_secrets = ""
            self.instance.config = {}
        self.instance.kind = kind
        values = {
            setting.name: _form_value(setting, cleaned.get(setting_field_name(kind, setting)))
            for setting in PROVIDERS[kind].settings_spec
        }
        clear = [
            setting.name
            for setting in PROVIDERS[kind].settings_spec
            if setting.secret and not setting.required and cleaned.get(clear_field_name(kind, setting))
        ]
        try:
            connection_apply_settings(
                self.instance,
                values,
                rate_limit_per_minute=cleaned.get("rate_limit_per_minute"),
                clear=clear,
                # Secrets stored for the old URL are never sent to a new one: a changed URL needs them again.
                base_url_changed=self._url_changed(),
            )
            hours = cleaned.get("retry_budget_hours")
            connection_set_retry_budget(self.instance, seconds=hours * 3600 if hours is not None else None)
        except ValidationError as exc:
            for name, messages_ in exc.message_dict.items():
                field = f"{kind}__{name}"
                self.add_error(field if field in self.fields else None, messages_)
        return cleaned


def _form_value(setting: SettingSpec, value: Any) -> Any:
    """What the form gives the service for a setting: text as text, typed values as they are."""
    if not setting.typed:
        return value or ""
    # A blank number is the default; unticked boxes are an empty list.
    return setting.default if value is None and setting.type == SettingType.INTEGER else value


# The declared settings are form fields of the class, so the admin's form factory knows them.
for _kind, _provider in PROVIDERS.items():
    for _setting in _provider.settings_spec:
        _field = _setting_field(_setting, stored=False)
        CrmConnectionForm.base_fields[setting_field_name(_kind, _setting)] = _field
        CrmConnectionForm.declared_fields[setting_field_name(_kind, _setting)] = _field
        if _setting.secret and not _setting.required:
            _clear = _clear_field(_setting)
            CrmConnectionForm.base_fields[clear_field_name(_kind, _setting)] = _clear
            CrmConnectionForm.declared_fields[clear_field_name(_kind, _setting)] = _clear


def connection_fieldsets(kind: str | None) -> list[tuple[str | None, dict[str, Any]]]:
    """One fieldset per CRM's declared settings: the connection's own CRM only, once it has one."""
    fieldsets: list[tuple[str | None, dict[str, Any]]] = [
        (None, {"fields": ["name", "kind", "base_url", "is_active", "make_active"]})
    ]
    for provider_kind, provider in PROVIDERS.items():
        if kind and provider_kind != kind:
            continue
        sections: dict[str, list[str]] = {}
        for setting in provider.settings_spec:
            names = sections.setdefault(setting.section, [])
            names.append(setting_field_name(provider_kind, setting))
            if setting.secret and not setting.required:
                names.append(clear_field_name(provider_kind, setting))
        description = None if kind else f"Read only when the kind is {CrmKind(provider_kind).label}."
        label = CrmKind(provider_kind).label
        for section, names in sections.items():
            title = f"{label} {section}" if section else f"{label} credentials"
            fieldsets.append((title, {"fields": names, "description": description}))
    fieldsets += [
        ("What it can do", {"fields": ["credentials_stored", "capability_list"]}),
        ("Limits", {"fields": ["rate_limit_per_minute", "retry_budget_hours"]}),
        ("Status", {"fields": ["last_error", "last_error_at", "created_at", "updated_at"]}),
    ]
    return fieldsets


@register_health_source
def crm_requests_health(connection: CrmConnection | None) -> HealthSection | None:
    """The connection's CRM requests in the last hour against its budget, with 429s and faults."""
    connection = connection or connection_get_active()
    if connection is None:
        url = reverse("admin:integrations_crmconnection_changelist")
        return HealthSection(
            "CRM requests", (HealthRow("Active CRM connection", "none: add or activate one", url, True),)
        )
    budget = connection_budget(connection)
    try:
        usage = connection_usage(connection)
    except redis.RedisError as exc:
        return HealthSection(f"CRM requests: {connection}", note=f"The request counters cannot be read: {exc}")
    totals = usage_totals(usage, budget)
    health_url = reverse("admin:integrations_crmconnection_health", args=[connection.pk])
    rows = [
        HealthRow("Requests in the last hour", str(totals.sent), health_url),
        HealthRow(
            "Busiest minute",
            f"{totals.busiest_minute} of {budget} per minute" if budget else f"{totals.busiest_minute} (no budget set)",
            alert=bool(totals.minutes_over_budget),
        ),
        HealthRow("Answered 429 (rate limited by the CRM)", str(totals.rate_limited), alert=totals.rate_limited > 0),
        HealthRow("Faults (timeouts, connection errors, 5xx)", str(totals.faults), alert=totals.faults > 0),
        HealthRow("Held back by our own budget or a Retry-After", str(totals.held_back)),
    ]
    if (circuit := connection_circuit_state(connection)) is not None:
        rows.append(
            HealthRow("Circuit breaker", f"{circuit.state} {circuit.detail}".strip(), alert=circuit.state != "closed")
        )
    if connection.last_error:
        change_url = reverse("admin:integrations_crmconnection_change", args=[connection.pk])
        rows.append(HealthRow("Connection's last error", connection.last_error[:300], change_url, alert=True))
    return HealthSection(f"CRM requests: {connection}", rows, chart=usage_chart_svg(usage, budget))


@admin.register(CrmConnection)
class CrmConnectionAdmin(admin.ModelAdmin[CrmConnection]):
    form = CrmConnectionForm
    list_display = ["name", "kind", "base_url", "is_active", "health_link", "last_error", "updated_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "base_url"]
    readonly_fields = [
        "is_active",
        "credentials_stored",
        "capability_list",
        "last_error",
        "last_error_at",
        "created_at",
        "updated_at",
    ]
    actions = CONNECTION_ACTIONS

    def get_fieldsets(self, request: HttpRequest, obj: CrmConnection | None = None) -> Any:
        kind = obj.kind if obj is not None else request.GET.get("kind")
        return connection_fieldsets(kind if kind in PROVIDERS else None)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        kinds = set(CrmConnection.objects.values_list("kind", flat=True).distinct())
        for name, capability in ACTION_CAPABILITIES.items():
            if not any(kind in PROVIDERS and PROVIDERS[kind].can(capability) for kind in kinds):
                actions.pop(name, None)
        return actions

    def get_urls(self) -> list[URLPattern]:
        health = path(
            "<int:connection_id>/health/",
            self.admin_site.admin_view(self.health_view),
            name="integrations_crmconnection_health",
        )
        return [health, *super().get_urls()]

    def health_view(self, request: HttpRequest, connection_id: int) -> HttpResponse:
        """One connection's health: its actions, sessions, requests, imports and status sync."""
        connection = get_object_or_404(CrmConnection, pk=connection_id)
        if not self.has_view_permission(request, connection):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"Health of {connection}",
            "connection": connection,
            "opts": self.opts,
        }
        return TemplateResponse(request, "integrations/connection_health.html", context)

    @admin.display(description="Health")
    def health_link(self, obj: CrmConnection) -> str:
        url = reverse("admin:integrations_crmconnection_health", args=[obj.pk])
        return format_html('<a href="{}">Health</a>', url)

    @admin.display(description="Credentials stored", boolean=True)
    def credentials_stored(self, obj: CrmConnection) -> bool:
        return obj.has_secrets

    @admin.display(description="This CRM can do")
    def capability_list(self, obj: CrmConnection) -> str:
        provider = PROVIDERS.get(obj.kind)
        if provider is None:
            return "-"
        return ", ".join(label for capability, label in CAPABILITY_LABELS.items() if provider.can(capability))

    def save_model(self, request: HttpRequest, obj: CrmConnection, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("make_active") and not obj.is_active:
            connection_activate(connection=obj)

    @admin.action(description="Test connection")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[CrmConnection]) -> None:
        for connection in queryset:
            error = connection_test(connection=connection)
            if error:
                self.message_user(request, f"{connection}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{connection}: connected.", messages.SUCCESS)

    @admin.action(description="Make active (the others are switched off)")
    def make_active(self, request: HttpRequest, queryset: QuerySet[CrmConnection]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one connection to make active.", messages.ERROR)
            return
        connection = connection_activate(connection=queryset.get())
        self.message_user(request, f"{connection} is now the active connection.", messages.SUCCESS)
