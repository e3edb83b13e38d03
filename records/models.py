from django.db import models
from django.db.models import Q

from integrations.models import CrmConnection
from records.vocabulary import CHANNEL_CHOICES, SESSION_TYPE_CHOICES, ActionKind, EventType


class Session(models.Model):
    """One contact-center session (call, chat, voicemail, outbound call) as the platform reports it.

    `state` is the fold of the session's applied events that the rule engine reads
    (records.rules.SessionState); the columns beside it are copies for the admin's lists and search.
    """

    external_id = models.CharField("session id", max_length=200, unique=True)
    channel = models.CharField(max_length=10, choices=CHANNEL_CHOICES, blank=True)
    session_type = models.CharField(max_length=40, choices=SESSION_TYPE_CHOICES, blank=True)
    phone_number = models.CharField(max_length=20, blank=True, db_index=True, help_text="E.164")
    agent_email = models.EmailField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    state = models.JSONField(default=dict, blank=True)
    # The record link: where this session landed in the CRM.
    crm_connection = models.ForeignKey(
        CrmConnection, on_delete=models.PROTECT, null=True, blank=True, verbose_name="CRM connection"
    )
    crm_contact_id = models.CharField("CRM contact id", max_length=64, blank=True)
    crm_record_id = models.CharField("CRM record id", max_length=64, blank=True)
    # A worker running this session's actions holds the lease; it expires if the worker dies.
    actions_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.external_id


class Event(models.Model):
    """A platform event, stored before it is acknowledged; applied once, in occurred_at order."""

    event_id = models.CharField(max_length=200, unique=True)
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=40, choices=EventType.choices)
    occurred_at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True)
    # Envelope keys beyond the contract's: kept, as EVENTS.md promises.
    extra = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    # What the rule engine made of it, in words (the actions it caused, or why none).
    outcome = models.TextField(blank=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [
            models.Index(
                fields=["session", "occurred_at"], condition=Q(applied_at__isnull=True), name="event_unapplied"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


class CrmAction(models.Model):
    """The outbox: one CRM operation a rule decided, written in the same transaction as the decision.

    Actions of a session run in id order. `idempotency_key` makes a decision impossible to record
    twice; the executor makes a retried call impossible to apply twice in the CRM.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="actions")
    event = models.ForeignKey(Event, on_delete=models.SET_NULL, null=True, blank=True, related_name="actions")
    kind = models.CharField(max_length=30, choices=ActionKind.choices)
    payload = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=300, unique=True)
    rule = models.CharField(max_length=20, blank=True, help_text="The SPEC rule that decided it, e.g. S2")
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "CRM action"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["session", "id"], condition=Q(status="pending"), name="action_pending"),
            models.Index(fields=["status", "updated_at"], name="action_status"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()}"
