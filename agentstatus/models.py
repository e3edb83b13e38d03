"""Agents, their platform status, the CRM's user statuses and the mapping between them (A1-A5).

The mapping is many-to-one and has no other restriction (A1): it is one foreign key on each CRM
status. What happened to every status change, applied or not, is a `StatusChange` row.
"""

from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from rest_framework_api_key.models import AbstractAPIKey

from integrations import crypto
from integrations.models import CrmConnection, SettingsRow

# One team model for the whole product: records owns teams and queues (O3); the push follows them (A4).
from records.models import Team


class Priority(models.TextChoices):
    """A2: who wins when the CRM and the platform disagree."""

    LATEST_CHANGE_WINS = "latest_change_wins", "The latest change wins, wherever it came from"
    CRM_OVERRIDES = "crm_overrides", "The CRM always overrides"


class SyncDirection(models.TextChoices):
    ONE_WAY = "one_way", "One-way: CRM to platform"
    TWO_WAY = "two_way", "Two-way: platform changes are also pushed to the CRM"


class Source(models.TextChoices):
    """Where a status change came from."""

    CRM = "crm", "CRM"
    ADAPTER = "adapter", "Adapter"
    ADMIN = "admin", "Admin"
    SYSTEM = "system", "System"


class StatusSyncSettings(SettingsRow):
    """The one row of status-sync settings (the seed's "Agent status inheritance" page)."""

    inheritance_enabled = models.BooleanField(
        "status inheritance", default=False, help_text="Kustomer user statuses drive the agents' platform status (A1)."
    )
    priority = models.CharField(max_length=30, choices=Priority.choices, default=Priority.LATEST_CHANGE_WINS)
    direction = models.CharField(
        "sync direction", max_length=10, choices=SyncDirection.choices, default=SyncDirection.ONE_WAY
    )
    connection = models.ForeignKey(
        CrmConnection,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        verbose_name="CRM connection",
        help_text="The Kustomer connection whose user statuses are inherited; blank: the active connection.",
    )
    # The HMAC key Kustomer signs status webhooks with (Fernet token, like CRM credentials).
    encrypted_webhook_secret = models.TextField(blank=True, editable=False)
    webhook_url = models.URLField("webhook URL", blank=True, editable=False)
    webhook_registered_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "status sync settings"
        verbose_name_plural = "status sync settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="status_sync_settings_singleton")]

    def __str__(self) -> str:
        return "Agent status sync settings"

    @property
    def webhook_secret(self) -> str:
        secret: str = crypto.decrypt_json(self.encrypted_webhook_secret).get("secret", "")
        return secret

    def set_webhook_secret(self, secret: str) -> None:
        self.encrypted_webhook_secret = crypto.encrypt_json({"secret": secret}) if secret else ""

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.encrypted_webhook_secret)


class PlatformStatus(models.Model):
    """An agent status of the contact-center platform (Available, Break, Lunch, Offline, ...)."""

    name = models.CharField(max_length=100, unique=True)
    position = models.PositiveIntegerField(default=0, help_text="Order in lists and in the adapter's menu.")

    class Meta:
        verbose_name_plural = "platform statuses"
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class CrmStatus(models.Model):
    """A user status defined in the CRM (a Kustomer routing status), read through the provider.

    `platform_status` is the mapping: many CRM statuses may map to one platform status (A1).
    """

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, verbose_name="CRM connection")
    crm_id = models.CharField("CRM id", max_length=100)
    name = models.CharField(max_length=200)
    status_type = models.CharField(max_length=30, blank=True, help_text="available, busy, unavailable or offline")
    # The CRM's own listing order: a push picks the first CRM status mapped to the platform status.
    position = models.PositiveIntegerField(default=0)
    platform_status = models.ForeignKey(
        PlatformStatus,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="crm_statuses",
        verbose_name="maps to platform status",
    )
    in_crm = models.BooleanField(
        "still in the CRM", default=True, help_text="Off when the last refresh no longer found it in the CRM."
    )
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "CRM status"
        verbose_name_plural = "CRM statuses"
        ordering = ["connection", "position", "name"]
        constraints = [models.UniqueConstraint(fields=["connection", "crm_id"], name="unique_crm_status")]

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    """A contact-center agent, matched to their CRM user by the same email (A3)."""

    email = models.EmailField()
    name = models.CharField(max_length=200, blank=True)
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="agents")
    platform_status = models.ForeignKey(PlatformStatus, on_delete=models.PROTECT, null=True, blank=True)
    status_source = models.CharField(max_length=10, choices=Source.choices, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # The last change made on the platform side (adapter or admin): "latest change wins" compares it.
    platform_changed_at = models.DateTimeField(null=True, blank=True)
    # Resolved once from the webhook's user id through the provider, then kept.
    crm_user_id = models.CharField("CRM user id", max_length=100, blank=True)
    # The last status the CRM reported for this agent, applied or not, and when it was set there.
    crm_status = models.ForeignKey(CrmStatus, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    crm_status_at = models.DateTimeField(null=True, blank=True)
    # The agent's active CRM instances (Kustomer work sessions): session id -> its current status id.
    work_sessions = models.JSONField(default=dict, blank=True)
    # More than one active instance: the CRM's changes are not applied until one remains (A3).
    sync_stopped = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="unique_agent_email"),
            models.UniqueConstraint(fields=["crm_user_id"], condition=~Q(crm_user_id=""), name="unique_agent_crm_user"),
        ]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Emails match case-insensitively (A3); storing them lower-cased keeps lookups on the index.
        self.email = self.email.strip().lower()
        super().save(*args, **kwargs)


class AgentToken(AbstractAPIKey):
    """The adapter's per-agent token (`Authorization: Agent-Token <key>`), stored hashed."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="adapter_tokens")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "adapter token"
        verbose_name_plural = "adapter tokens"


class StatusChange(models.Model):
    """The audit trail: one row per status change or sync event, applied or not, and why."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, null=True, blank=True, related_name="status_changes")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    # When the change happened at its source (the CRM's updatedAt for a webhook).
    occurred_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    from_status = models.ForeignKey(PlatformStatus, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    to_status = models.ForeignKey(PlatformStatus, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    crm_status = models.ForeignKey(CrmStatus, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # As received, for statuses the product does not know (yet).
    crm_status_ref = models.CharField("CRM status id", max_length=100, blank=True)
    mapping = models.CharField("mapping used", max_length=300, blank=True)
    applied = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    # For events that matched no agent.
    crm_user_id = models.CharField("CRM user id", max_length=100, blank=True)
    agent_email = models.EmailField(blank=True)
    event_id = models.CharField("webhook event id", max_length=200, blank=True)
    work_session_id = models.CharField("CRM instance", max_length=100, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["agent", "-at"], name="status_change_agent_at")]

    def __str__(self) -> str:
        return f"{self.agent or self.agent_email or self.crm_user_id} {self.get_source_display()} {self.at:%H:%M:%S}"


class StatusPush(models.Model):
    """A platform status change on its way to the CRM (two-way sync, A4): the outbox row.

    Once sent it also recognises its own echo: the CRM's webhook for the status it set.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SUPERSEDED = "superseded", "Superseded by a later change"

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="pushes")
    change = models.ForeignKey(StatusChange, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    platform_status = models.ForeignKey(PlatformStatus, on_delete=models.CASCADE, related_name="+")
    crm_status = models.ForeignKey(CrmStatus, on_delete=models.CASCADE, related_name="+", verbose_name="CRM status")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the last attempt started: its echo may arrive before the CRM's answer does.
    sent_at = models.DateTimeField(null=True, blank=True)
    # While an attempt runs, next_attempt_at is the claim's lease (on the database's clock) and this
    # its owner token: only the worker holding it records the attempt's outcome.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
    # Seconds the push waited on its connection's open circuit: not failing time, so not taken
    # from its retry budget (which counts from its creation).
    paused_seconds = models.FloatField(default=0.0)
    echo_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "status push"
        verbose_name_plural = "status pushes"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["agent", "-id"], name="status_push_agent"),
            models.Index(fields=["state", "updated_at"], name="status_push_state"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.agent_id} → {self.crm_status_id}"


class ProcessedWebhookEvent(models.Model):
    """Webhook event ids already taken: a redelivery is acknowledged and changes nothing.

    A delivery whose CRM user is not known yet keeps its body here until the user has been looked
    up after the answer (`agentstatus.apply_webhook_event`); the body is cleared once applied.
    """

    event_id = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=100, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    pending_body = models.TextField(blank=True)
    lookup_attempts = models.PositiveIntegerField(default=0)
    # Seconds the lookup waited on the connection's open circuit: not taken from its retry budget
    # (which counts from the delivery's arrival).
    lookup_paused_seconds = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return self.event_id
