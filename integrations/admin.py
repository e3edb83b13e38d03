from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from integrations.models import CrmConnection, CrmKind
from integrations.providers.registry import PROVIDERS
from integrations.services import connection_activate, connection_test

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
        self.fields["email"].initial = (self.instance.config or {}).get("email", "")
        self.fields["make_active"].initial = self.instance.is_active
        self.fields["rate_limit_per_minute"].initial = (self.instance.config or {}).get("rate_limit_per_minute")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        if kind and kind not in PROVIDERS:
            supported = ", ".join(CrmKind(k).label for k in sorted(PROVIDERS))
            self.add_error("kind", f"{CrmKind(kind).label} is not supported yet; supported: {supported}.")
        if not self.instance.has_secrets and not cleaned.get("api_token"):
            self.add_error("api_token", "An API token is required for a new connection.")
        elif self._url_changed() and not cleaned.get("api_token"):
            # Otherwise the stored token would be sent to whatever host the URL now names.
            self.add_error("api_token", "The base URL changed: enter the API token for the new URL again.")
        if cleaned.get("kind") == "zendesk" and not cleaned.get("email"):
            self.add_error("email", "Zendesk authenticates as `{email}/token:{api_token}`: the email is required.")
        return cleaned

    def _url_changed(self) -> bool:
        return self.instance.pk is not None and "base_url" in self.changed_data

    def save(self, commit: bool = True) -> CrmConnection:
        url_changed = self._url_changed()
        connection = super().save(commit=False)
        connection.config = {
            **(connection.config or {}),
            "email": self.cleaned_data.get("email") or "",
            "rate_limit_per_minute": self.cleaned_data.get("rate_limit_per_minute"),
        }
        if token := self.cleaned_data.get("api_token"):
            # Secrets stored for the old URL are not kept for the new one.
            kept = {} if url_changed else connection.secrets
            connection.set_secrets({**kept, "api_token": token})
        if commit:
            connection.save()
        return connection


@admin.register(CrmConnection)
class CrmConnectionAdmin(admin.ModelAdmin[CrmConnection]):
    form = CrmConnectionForm
    list_display = ["name", "kind", "base_url", "is_active", "last_error", "updated_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "base_url"]
    readonly_fields = ["is_active", "credentials_stored", "last_error", "last_error_at", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "base_url", "is_active", "make_active"]}),
        ("Credentials", {"fields": ["email", "api_token", "credentials_stored"]}),
        ("Limits", {"fields": ["rate_limit_per_minute"]}),
        ("Status", {"fields": ["last_error", "last_error_at", "created_at", "updated_at"]}),
    ]
    actions = CONNECTION_ACTIONS

    @admin.display(description="Credentials stored", boolean=True)
    def credentials_stored(self, obj: CrmConnection) -> bool:
        return obj.has_secrets

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
