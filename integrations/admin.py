from collections.abc import Callable
from typing import Any, TypeVar

import redis
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from integrations.health import HealthRow, HealthSection, register_health_source, usage_chart_svg, usage_totals
from integrations.models import CrmConnection, CrmKind
from integrations.providers.registry import PROVIDERS
from integrations.selectors import connection_budget, connection_circuit_state, connection_usage
from integrations.services import connection_activate, connection_get_active, connection_test

ConnectionAction = TypeVar("ConnectionAction", bound=Callable[..., None])

# The connection list's actions. integrations imports nothing from the apps above it, so those apps
# add theirs here (records: "Create custom fields") when their admin module is imported; Django
# reads `actions` per request, after every admin module has been loaded.
CONNECTION_ACTIONS: list[Any] = ["test_connection", "make_active"]


def register_connection_action(action: ConnectionAction) -> ConnectionAction:
    """Offer `action(modeladmin, request, queryset)` on the CRM connection list."""
    if action not in CONNECTION_ACTIONS:
        CONNECTION_ACTIONS.append(action)
    return action


class CrmConnectionForm(forms.ModelForm[CrmConnection]):
    """Secrets are write-only: a blank field keeps the stored value, and none is ever rendered back."""

    api_token = forms.CharField(
        label="API token",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. Leave blank to keep the current token (required again when the base URL changes).",
    )
    email = forms.EmailField(
        required=False, help_text="Zendesk: the API user's email (Zendesk authenticates as email/token:API token)."
    )
    client_id = forms.CharField(
        label="Consumer key",
        required=False,
        max_length=255,
        help_text="Salesforce: the connected app's consumer key (client id).",
    )
    client_secret = forms.CharField(
        label="Consumer secret",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Salesforce: the connected app's consumer secret. Stored encrypted. Leave blank to keep it.",
    )
    username = forms.CharField(
        label="Salesforce username",
        required=False,
        max_length=255,
        help_text="Salesforce: the API user for the username-password login. Blank: the client-credentials login.",
    )
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Salesforce: the API user's password, without the security token. Stored encrypted. "
        "Leave blank to keep it.",
    )
    security_token = forms.CharField(
        label="Security token",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Salesforce: the API user's security token (Salesforce emails it; reset it under "
        "Settings > Reset My Security Token). Appended to the password at login, as Salesforce requires "
        "unless the login comes from one of the org's trusted IP ranges. Stored encrypted. Leave blank to keep it.",
    )
    clear_security_token = forms.BooleanField(
        label="No security token",
        required=False,
        help_text="Salesforce: tick to forget the stored token (logins from a trusted IP range need none).",
    )
    rate_limit_per_minute = forms.IntegerField(
        label="Requests per minute",
        required=False,
        min_value=1,
        help_text=(
            "Your CRM plan's API limit, kept by all workers together so they do not run into 429s. "
            "Zendesk: Team 200, Growth and Professional 400, Enterprise 700, High Volume 2500. "
            "Kustomer (org-wide): Enterprise 1000, Ultimate 2000. "
            "Blank: no limit of our own (429s are still honoured)."
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
        # Only the CRMs a provider serves are offered (a connection of another kind could do nothing).
        kind = self.fields["kind"]
        assert isinstance(kind, forms.ChoiceField)
        kind.choices = [
            (value, label) for value, label in CrmKind.choices if value in PROVIDERS or value == self.instance.kind
        ]
        self.fields["email"].initial = (self.instance.config or {}).get("email", "")
        self.fields["make_active"].initial = self.instance.is_active
        self.fields["rate_limit_per_minute"].initial = (self.instance.config or {}).get("rate_limit_per_minute")
        self.fields["client_id"].initial = (self.instance.config or {}).get("client_id", "")
        self.fields["username"].initial = (self.instance.config or {}).get("username", "")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        if kind and kind not in PROVIDERS:
            supported = ", ".join(CrmKind(k).label for k in sorted(PROVIDERS))
            self.add_error("kind", f"{CrmKind(kind).label} is not supported yet; supported: {supported}.")
        url_changed = self._url_changed()
        # Secrets stored for the old URL are never sent to a new one: a changed URL needs them again.
        stored = self.instance.secrets if self.instance.has_secrets and not url_changed else {}
        if kind == "salesforce":
            self._clean_salesforce(cleaned, stored)
        elif not stored.get("api_token") and not cleaned.get("api_token"):
            if url_changed:
                self.add_error("api_token", "The base URL changed: enter the API token for the new URL again.")
            else:
                self.add_error("api_token", "An API token is required for a new connection.")
        if cleaned.get("kind") == "zendesk" and not cleaned.get("email"):
            self.add_error("email", "Zendesk authenticates as `{email}/token:{api_token}`: the email is required.")
        return cleaned

    def _url_changed(self) -> bool:
        return self.instance.pk is not None and "base_url" in self.changed_data

    def _clean_salesforce(self, cleaned: dict[str, Any], stored: dict[str, Any]) -> None:
        if not cleaned.get("client_id"):
            self.add_error("client_id", "Salesforce logs in through a connected app: its consumer key is required.")
        if not stored.get("client_secret") and not cleaned.get("client_secret"):
            self.add_error("client_secret", "The connected app's consumer secret is required.")
        if cleaned.get("username") and not stored.get("password") and not cleaned.get("password"):
            self.add_error("password", "The username-password login needs the API user's password.")
        if cleaned.get("security_token") and cleaned.get("clear_security_token"):
            self.add_error("clear_security_token", "Either enter a security token or tick “No security token”.")

    def save(self, commit: bool = True) -> CrmConnection:
        url_changed = self._url_changed()
        connection = super().save(commit=False)
        data = self.cleaned_data
        connection.config = {
            **(connection.config or {}),
            "email": data.get("email") or "",
            "rate_limit_per_minute": data.get("rate_limit_per_minute"),
        }
        if connection.kind == "salesforce":
            connection.config |= {"client_id": data.get("client_id") or "", "username": data.get("username") or ""}
        # Write-only secrets: what was typed replaces the stored value, a blank field keeps it.
        # Nothing stored for the old URL is kept for a new one.
        secrets = dict(connection.secrets) if connection.has_secrets and not url_changed else {}
        typed = {key: data.get(key) for key in ("api_token", "client_secret", "password", "security_token")}
        changed = {key: value for key, value in typed.items() if value}
        if data.get("clear_security_token"):
            secrets.pop("security_token", None)
        if changed or data.get("clear_security_token") or url_changed:
            connection.set_secrets(secrets | changed)
        if commit:
            connection.save()
        return connection


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
        "security_token_stored",
        "last_error",
        "last_error_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "kind", "base_url", "is_active", "make_active"]}),
        ("Credentials", {"fields": ["email", "api_token", "credentials_stored"]}),
        (
            "Salesforce login",
            {
                "fields": [
                    "client_id",
                    "client_secret",
                    "username",
                    "password",
                    "security_token",
                    "clear_security_token",
                    "security_token_stored",
                ],
                "description": "Only for a Salesforce connection.",
            },
        ),
        ("Limits", {"fields": ["rate_limit_per_minute"]}),
        ("Status", {"fields": ["last_error", "last_error_at", "created_at", "updated_at"]}),
    ]
    actions = CONNECTION_ACTIONS

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

    @admin.display(description="Security token stored", boolean=True)
    def security_token_stored(self, obj: CrmConnection) -> bool:
        return obj.has_secrets and bool(obj.secrets.get("security_token"))

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
