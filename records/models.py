from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from integrations.models import CrmConnection, SettingsRow
from records.rules import DEFAULT_CLOSED_WITHIN_DAYS, AbandonedChats, ApiResponseFormat, RuleSet, title_template_errors
from records.vocabulary import CHANNEL_CHOICES, RECORD_FIELD_CHOICES, SESSION_TYPE_CHOICES, ActionKind, EventType


def validate_title_template(value: str) -> None:
    errors = title_template_errors(value)
    if errors:
        raise ValidationError(errors)


class OperationSettings(SettingsRow):
    """Operation management (SPEC R1-R9, S4, S15): one row, edited on one admin screen."""

    append_to_open_records = models.BooleanField(
        "Add call or chat sessions to the last open record in the same leaf queue",
        default=True,
        help_text="(R1)",
    )
    append_to_recently_closed = models.BooleanField(
        "Also add them to a record closed within the last N days (then reopen it)",
        default=False,
        help_text="(R2)",
    )
    closed_within_days = models.PositiveSmallIntegerField(
        "Closed within (days)",
        default=DEFAULT_CLOSED_WITHIN_DAYS,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="(R2)",
    )
    never_append = models.BooleanField(
        "Do not add call or chat sessions to existing open records",
        default=False,
        help_text="(R9) Overrides R1 and R2, and makes outbound calls create new records.",
    )
    create_call_record_on_connect = models.BooleanField(
        "Delay call record creation until the call is connected to the agent",
        default=False,
        help_text="(R3) Records otherwise appear at assignment. Tell agents: they appear 5-10 s later.",
    )
    delay_chat_until_messages = models.BooleanField(
        "Delay chat record creation until the consumer has sent N messages",
        default=False,
        help_text="(R4)",
    )
    chat_min_messages = models.PositiveSmallIntegerField(
        "Consumer messages before the chat record is created",
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="(R4)",
    )
    abandoned_call_records = models.BooleanField(
        "Create records for abandoned calls", default=True, help_text="(R5) Callers who hung up before an agent."
    )
    abandoned_chat_records = models.CharField(
        "Records for abandoned chats",
        max_length=20,
        choices=AbandonedChats.choices,
        default=AbandonedChats.OFF,
        help_text="(R6)",
    )
    abandoned_chat_min_messages = models.PositiveSmallIntegerField(
        "At least N consumer messages",
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="(R6)",
    )
    short_abandon_seconds = models.PositiveSmallIntegerField(
        "Short-abandon threshold (seconds)",
        default=10,
        validators=[MaxValueValidator(3600)],
        help_text="(R6) A chat abandoned after waiting less than this is a short-abandoned chat.",
    )
    title_template = models.CharField(
        "Record title template",
        max_length=300,
        default=RuleSet.title_template,
        validators=[validate_title_template],
        help_text="(R7) Variables: {CALL_TYPE} {CALL_ID} {MENU_PATH} {PHONE_NUMBER} {LANGUAGE} {TIMESTAMP}",
    )
    tag_session_type = models.BooleanField("Add a session-type tag to records", default=True, help_text="(R8)")
    add_product_tag = models.BooleanField(
        "Add the product tag to every record the integration creates",
        default=False,
        help_text="(R8)",
    )
    product_tag = models.CharField(
        "Product tag", max_length=80, default=RuleSet.product_tag, blank=True, help_text="(R8)"
    )
    voicemail_default_user_email = models.EmailField(
        "CRM default user for voicemail records",
        blank=True,
        help_text="(S4) Voicemail records are assigned to this CRM user (never to a random agent).",
    )
    api_response_format = models.CharField(
        "Post API direct access point responses as a comment",
        max_length=20,
        choices=ApiResponseFormat.choices,
        default=ApiResponseFormat.OFF,
        help_text="(S15)",
    )
    # Outbound calls from the agent adapter (SPEC O1, O3; ADAPTER.md).
    outbound_prompt_record_choice = models.BooleanField(
        "Prompt the agent to choose an open record from a list",
        default=False,
        help_text="Off: the contact's most recent open record is used without asking (O1).",
    )
    outbound_allow_create_new = models.BooleanField(
        'Allow the agent to choose "Create new record" for outbound calls',
        default=False,
        help_text="Only with the prompt above on; otherwise the agent must use an existing open record (O1).",
    )
    outbound_allow_no_record = models.BooleanField(
        'Allow the agent to choose "Do not create a record" for outbound calls',
        default=False,
        help_text=(
            "Warning: the recordings of calls without a record cannot be reached. Leave this off if your "
            "rules or compliance standards need every call recording to be accessible (O1)."
        ),
    )
    outbound_allow_entered_number = models.BooleanField(
        'Allow "Use the entered number to make the call"',
        default=False,
        help_text=(
            "The agent picks the contact, then dials a number not stored on it; the number is written in a "
            "comment on the record and never saved on the contact (O1)."
        ),
    )
    outbound_ticket_phone_field = models.CharField(
        "Contact field with the number to dial",
        max_length=200,
        blank=True,
        help_text=(
            "Outbound ticket settings: when an agent enters a ticket ID, the number is read from this contact "
            "field (Zendesk: the user field key; Kustomer: the custom attribute name). Blank: the requester's "
            "phone (O3)."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "operation management"

    def __str__(self) -> str:
        return "Operation management"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # One row: the settings screen always edits the same settings.
        self.pk = 1
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if self.add_product_tag and not self.product_tag.strip():
            raise ValidationError({"product_tag": "Enter the product tag, or turn the product tag off."})
        if self.outbound_allow_create_new and not self.outbound_prompt_record_choice:
            raise ValidationError(
                {
                    "outbound_allow_create_new": (
                        '"Create new record" is offered only when the agent is prompted to choose an open record: '
                        "turn the prompt on, or this off."
                    )
                }
            )

    def ruleset(self, custom_data_mapping: Mapping[str, str] | None = None) -> RuleSet:
        return RuleSet(
            append_to_open_records=self.append_to_open_records,
            append_to_recently_closed=self.append_to_recently_closed,
            closed_within_days=self.closed_within_days,
            never_append=self.never_append,
            create_call_record_on_connect=self.create_call_record_on_connect,
            delay_chat_until_messages=self.delay_chat_until_messages,
            chat_min_messages=self.chat_min_messages,
            abandoned_call_records=self.abandoned_call_records,
            abandoned_chat_records=self.abandoned_chat_records,
            abandoned_chat_min_messages=self.abandoned_chat_min_messages,
            short_abandon_seconds=self.short_abandon_seconds,
            title_template=self.title_template,
            tag_session_type=self.tag_session_type,
            add_product_tag=self.add_product_tag,
            product_tag=self.product_tag.strip(),
            voicemail_default_user_email=self.voicemail_default_user_email.lower(),
            api_response_format=self.api_response_format,
            custom_data_mapping=dict(custom_data_mapping or {}),
        )


class Team(models.Model):
    """A team of agents: outbound ticket-ID entry is set per team (O3); status push follows it (A4)."""

    name = models.CharField(max_length=100, unique=True)
    enable_ticket_id = models.BooleanField("enable ticket ID on outbound calls", default=False)
    ticket_id_required = models.BooleanField("ticket ID required", default=False)
    linked_to_external_queue = models.BooleanField(
        default=False,
        help_text=(
            "This team is the one whose Kustomer external queue points at the platform: only its agents' "
            "platform changes are pushed to Kustomer (two-way sync, A4)."
        ),
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Queue(models.Model):
    """A platform queue; the leaf of its path is what R1 matches on. Added as events name them."""

    platform_id = models.CharField("queue id", max_length=200, unique=True)
    name = models.CharField(max_length=200, blank=True)
    path = models.JSONField(default=list, blank=True, help_text='Menu path to the leaf, e.g. ["Support", "Billing"]')
    teams = models.ManyToManyField(Team, blank=True, related_name="queues")
    default_outbound_number = models.CharField(max_length=20, blank=True, help_text="E.164")

    class Meta:
        ordering = ["platform_id"]

    def __str__(self) -> str:
        return self.leaf_path or self.platform_id

    @property
    def leaf_path(self) -> str:
        return " > ".join(str(part) for part in self.path) or self.name


class CustomField(models.Model):
    """One of the product's record fields (F2) as created in a CRM (F1), with its CRM id."""

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="custom_fields")
    key = models.CharField(max_length=40, choices=RECORD_FIELD_CHOICES)
    crm_field_id = models.CharField("CRM field id", max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["connection", "key"]
        constraints = [models.UniqueConstraint(fields=["connection", "key"], name="custom_field_once")]

    def __str__(self) -> str:
        return f"{self.get_key_display()} = {self.crm_field_id}"


class CustomDataMapping(models.Model):
    """S11: a custom data key the SDK sends, and the CRM field it fills."""

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="custom_data_mappings")
    sdk_key = models.CharField("custom data key", max_length=100)
    crm_field_id = models.CharField(
        "CRM field id", max_length=200, help_text="Zendesk: the ticket field id. Kustomer: the attribute name."
    )

    class Meta:
        ordering = ["connection", "sdk_key"]
        constraints = [models.UniqueConstraint(fields=["connection", "sdk_key"], name="custom_data_mapping_once")]

    def __str__(self) -> str:
        return f"{self.sdk_key} -> {self.crm_field_id}"


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
    # What R1 matches a later session on (copies of the state, for the candidate lookup).
    queue_id = models.CharField(max_length=200, blank=True)
    menu_path = models.CharField(max_length=500, blank=True)
    voicemail = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    state = models.JSONField(default=dict, blank=True)
    # The record link: where this session landed in the CRM.
    crm_connection = models.ForeignKey(
        CrmConnection, on_delete=models.PROTECT, null=True, blank=True, verbose_name="CRM connection"
    )
    crm_contact_id = models.CharField("CRM contact id", max_length=64, blank=True)
    crm_record_id = models.CharField("CRM record id", max_length=64, blank=True)
    # A worker running this session's actions holds the lease (records.services.leases): on the
    # database's clock, renewed while the work runs, released on a clean exit; a dead worker's
    # lapses within seconds. The owner token is the claim's: only its holder renews or releases it.
    actions_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    actions_lease_owner = models.UUIDField(null=True, blank=True, editable=False)
    # When applying its events raises (a bug, an event the rules cannot read): the error and how
    # often it happened, so the admin shows it and the sweeper stops retrying it after a few tries.
    processing_error = models.TextField("processing error", blank=True, editable=False)
    processing_attempts = models.PositiveSmallIntegerField("failed processing attempts", default=0, editable=False)
    processing_failed_at = models.DateTimeField("processing last failed", null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["crm_connection", "crm_record_id"], name="session_record"),
            models.Index(
                fields=["processing_failed_at"],
                condition=Q(processing_attempts__gt=0),
                name="session_processing_failed",
            ),
        ]

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


class CrmBatch(models.Model):
    """B1: comments and record updates of many sessions, sent to the CRM together in one flush.

    Its actions (`CrmAction.batch`) stay pending, and their sessions' later actions wait behind
    them, until the CRM's result for each one's own record says it is done. The job id is saved
    before the job is read, so a worker that dies after sending resumes reading, never sends again.
    """

    class State(models.TextChoices):
        OPEN = "open", "Collecting until due"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent: reading the CRM's results"
        DONE = "done", "Done"

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, verbose_name="CRM connection")
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    # When an open batch is sent (the connection's flush interval after its first item).
    due_at = models.DateTimeField()
    job_id = models.CharField("CRM job id", max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    polls = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "CRM batch"
        verbose_name_plural = "CRM batches"
        ordering = ["-id"]
        constraints = [
            # Every worker adds to the one open batch of the connection.
            models.UniqueConstraint(fields=["connection"], condition=Q(state="open"), name="one_open_batch"),
        ]
        indexes = [models.Index(fields=["state"], condition=~Q(state="done"), name="batch_unfinished")]

    def __str__(self) -> str:
        return f"Batch #{self.pk} ({self.get_state_display()})"


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
    # The attempts already made when an admin last retried it, while `attempts` keeps counting, so
    # a retried create still looks up what an earlier attempt may have made.
    attempts_before_retry = models.PositiveIntegerField(default=0, editable=False)
    # When the CRM's transient trouble with this action began: the retry budget
    # (CRM_RETRY_BUDGET_SECONDS) counts from here. Cleared on success and by an admin's Retry.
    failing_since = models.DateTimeField(
        "failing since",
        null=True,
        blank=True,
        editable=False,
        help_text="When the CRM started failing this action; it is retried until the retry budget is spent.",
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    # An earlier attempt may have changed the CRM without its answer arriving (it sent a write that was
    # not refused, or its worker died mid-call): the next attempt looks for what it made before writing.
    # An attempt that wrote nothing (held back by a rate limit, refused) leaves it as it was.
    may_have_written = models.BooleanField(default=False, editable=False)
    # What earlier attempts already read of the CRM (records.services.execution.CreateRecordProgress):
    # a retry resumes at the step it stopped at instead of reading again. Cleared by an admin's Retry.
    progress = models.JSONField(default=dict, blank=True, editable=False)
    # B1: the batch this action waits in (its write is in `progress`, records.services.batching).
    batch = models.ForeignKey(
        CrmBatch, on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="actions"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "CRM action"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["session", "id"], condition=Q(status="pending"), name="action_pending"),
            models.Index(fields=["status", "updated_at"], name="action_status"),
            # The session list's state and the "blocked by" lookups ask for a session's failed actions.
            models.Index(fields=["session", "id"], condition=Q(status="failed"), name="action_failed"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()}"


class Replay(models.Model):
    """A bulk retry after an outage: the failed actions of one connection in a time window.

    The chosen actions are kept by id, so the progress page follows exactly those, however their
    status changes afterwards.
    """

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, verbose_name="CRM connection")
    since = models.DateTimeField("failed from")
    until = models.DateTimeField("failed until")
    action_ids = models.JSONField(default=list, editable=False)
    session_count = models.PositiveIntegerField(default=0)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "bulk replay"

    def __str__(self) -> str:
        return f"Replay #{self.pk} of {len(self.action_ids)} action(s)"


class ScreenPop(models.Model):
    """O4: a session's record, due on the screen of the agent who answered it (ADAPTER.md, screen pop).

    One row per session, agent and record: a transfer gives the receiving agent a row of their own,
    a merge that moves the session to another record gives a new one. The adapter's long poll answers
    the newest row after the one it last saw; `delivered_at` is when an adapter first got it.
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="screen_pops")
    agent_email = models.EmailField(db_index=True)
    record_id = models.CharField("CRM record id", max_length=64)
    record_url = models.URLField("record URL", max_length=500, blank=True)
    contact_id = models.CharField("CRM contact id", max_length=64, blank=True)
    channel = models.CharField(max_length=10, choices=CHANNEL_CHOICES, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["session", "agent_email", "record_id"], name="screen_pop_once"),
        ]
        indexes = [models.Index(fields=["agent_email", "-id"], name="screen_pop_agent")]

    def __str__(self) -> str:
        return f"{self.record_id} for {self.agent_email}"
