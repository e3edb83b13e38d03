from typing import Any, Self

from django.db import models
from django.db.models import Q

from integrations import crypto
from integrations.urlguard import validate_base_url


class SettingsRow(models.Model):
    """The one pattern for a settings model: exactly one row (id 1), made with its defaults when first read."""

    SINGLETON_ID = 1

    class Meta:
        abstract = True

    @classmethod
    def load(cls) -> Self:
        row, _ = cls._default_manager.get_or_create(pk=cls.SINGLETON_ID)
        return row


class CrmKind(models.TextChoices):
    ZENDESK = "zendesk", "Zendesk"
    KUSTOMER = "kustomer", "Kustomer"
    SALESFORCE = "salesforce", "Salesforce"
    FRESHDESK = "freshdesk", "Freshdesk"


class CrmConnection(models.Model):
    """One CRM instance the product talks to; at most one is active at a time.

    `config` holds what is safe to show (the API user's email, for Zendesk); secrets such as API
    tokens live only in `encrypted_secrets` and are never shown back.
    """

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=CrmKind.choices)
    base_url = models.URLField(
        "base URL",
        help_text="Instance URL, e.g. https://acme.zendesk.com: https, on the public internet.",
        validators=[validate_base_url],
    )
    config = models.JSONField(default=dict, blank=True)
    encrypted_secrets = models.TextField(blank=True, editable=False)
    is_active = models.BooleanField("active", default=False)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "CRM connection"
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_crm_connection"
            ),
            models.UniqueConstraint(fields=["kind", "base_url"], name="unique_crm_instance"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def secrets(self) -> dict[str, Any]:
        return crypto.decrypt_json(self.encrypted_secrets)

    def set_secrets(self, secrets: dict[str, Any]) -> None:
        self.encrypted_secrets = crypto.encrypt_json(secrets)

    @property
    def has_secrets(self) -> bool:
        return bool(self.encrypted_secrets)
