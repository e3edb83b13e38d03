"""Imported CRM agents and solved tickets, the import runs, and QA evaluations (SPEC T1-T6)."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Concat, Lower
from rest_framework_api_key.models import AbstractAPIKey

from integrations.models import CrmConnection, CrmKind
from integrations.providers.importing import CHANNELS, OTHER_CHANNEL


class Channel(models.TextChoices):
    """The QA channels (SPEC T5), as providers name them (integrations.providers.importing.CHANNELS)."""

    EMAIL = "email", "Email"
    CHAT = "chat", "Chat"
    FACEBOOK = "facebook", "Facebook"
    FORUM = "forum", "Forum"
    IN_APP_MESSAGING = "in_app_messaging", "In-app messaging"
    SLACK = "slack", "Slack"
    SMS = "sms", "SMS"
    VOICE = "voice", "Voice"
    WHATSAPP = "whatsapp", "WhatsApp"
    TELEGRAM = "telegram", "Telegram"
    VIBER = "viber", "Viber"
    APPLE_MESSAGES_FOR_BUSINESS = "apple_messages_for_business", "Apple Messages for Business"
    MICROSOFT_TEAMS = "microsoft_teams", "Microsoft Teams"
    OTHER = OTHER_CHANNEL, "Other (web form, API)"


assert {choice.value for choice in Channel} == {*CHANNELS, OTHER_CHANNEL}, "Channel must list the providers' channels"


class AgentOrigin(models.TextChoices):
    CRM = "crm", "CRM import"
    # Made by another channel (e.g. omni-channel recording) before the CRM knew the agent.
    OTHER_CHANNEL = "other_channel", "Another channel"


class Agent(models.Model):
    """A contact-center agent as QA search knows it; created and updated only from the CRM (T1).

    The email is unique across active and inactive agents and across CRMs. An agent first made by
    another channel is linked to the CRM user of the same email once, and its details are not
    overwritten by later imports.
    """

    email = models.EmailField()
    first_name = models.CharField(max_length=150)
    last_name = models.CharField(max_length=150)
    is_active = models.BooleanField("active", default=True)
    origin = models.CharField(max_length=20, choices=AgentOrigin.choices, default=AgentOrigin.CRM)
    connection = models.ForeignKey(CrmConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    crm_user_id = models.CharField("CRM user id", max_length=64, blank=True)
    linked_at = models.DateTimeField(null=True, blank=True, help_text="When the first CRM import linked this agent")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="agent_email_unique_ci"),
            models.UniqueConstraint(
                fields=["connection", "crm_user_id"],
                condition=~models.Q(crm_user_id=""),
                name="agent_unique_crm_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} <{self.email}>"

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ImportState(models.Model):
    """Where the last import of one connection stopped, so the next one reads only what changed (T2)."""

    connection = models.OneToOneField(CrmConnection, on_delete=models.CASCADE, related_name="+")
    enabled = models.BooleanField(default=True, help_text="Imported on schedule by Celery beat")
    users_cursor = models.TextField(blank=True)
    tickets_cursor = models.TextField(blank=True)
    comments_cursor = models.TextField(
        blank=True,
        help_text="Position in the CRM's comment stream (Zendesk's ticket events, Kustomer's message and note search)",
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Import state of {self.connection}"


class ImportRun(models.Model):
    """One import of one connection, with its counts; `skipped` maps each skip reason to its count."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        # Stopped before the end (its time limit, or its worker died); the next run resumes from the
        # cursor saved with the last page, so nothing is read twice or lost.
        INTERRUPTED = "interrupted", "Interrupted (resumed)"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        COMMAND = "command", "Command"
        ADMIN = "admin", "Admin"
        RESUME = "resume", "Resumed after an interruption"

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="+")
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    since = models.DateTimeField(null=True, blank=True, help_text="Start of a first (or forced) import")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    users_fetched = models.PositiveIntegerField(default=0)
    users_created = models.PositiveIntegerField(default=0)
    users_updated = models.PositiveIntegerField(default=0)
    tickets_fetched = models.PositiveIntegerField(default=0)
    tickets_imported = models.PositiveIntegerField(default=0, help_text="New tickets stored")
    tickets_updated = models.PositiveIntegerField(default=0, help_text="Stored tickets that changed")
    tickets_removed = models.PositiveIntegerField(default=0, help_text="Stored tickets reopened in the CRM")
    comments_skipped = models.PositiveIntegerField(default=0, help_text="Interactions without user information")
    skipped = models.JSONField(default=dict, blank=True, help_text="Users and tickets skipped, per reason")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["connection", "-started_at"])]

    def __str__(self) -> str:
        return f"Import #{self.pk} of {self.connection_id} ({self.status})"


class CrmComment(models.Model):
    """A comment read from a CRM's comment stream, whatever its ticket's state.

    Zendesk's ticket events, Kustomer's message and note searches.

    Comments arrive for all tickets, before their ticket is solved; they are kept here so that a
    ticket, when it is stored (or stored again), gets all of its comments without a request per
    ticket. Written only by ticketsearch.services.importing (bulk upsert); purged with the tickets
    after 90 days (a comment is never older than its ticket).
    """

    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="+")
    crm_ticket_id = models.CharField("CRM ticket id", max_length=64)
    crm_comment_id = models.CharField("CRM comment id", max_length=64)
    author_id = models.CharField(max_length=64, null=True, help_text="Empty: the CRM says no user wrote it")
    body = models.TextField()
    public = models.BooleanField()
    created_at = models.DateTimeField(db_index=True)
    recording_url = models.TextField(null=True)
    transcript = models.TextField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "crm_ticket_id", "crm_comment_id"], name="crmcomment_unique_per_ticket"
            )
        ]

    def __str__(self) -> str:
        return f"Comment {self.crm_comment_id} on #{self.crm_ticket_id}"


class Ticket(models.Model):
    """An imported solved ticket. The table is partitioned by week of `created_at` (migrations 0001, 0008).

    Rows are written only by ticketsearch.services.importing (bulk upsert) and removed only by
    ticketsearch.services.retention; the ORM reads them. The database's primary key is
    (id, created_at), as a partitioned table needs; `id` alone is unique in practice (one
    identity sequence), which is what Django is told.
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(help_text="Created in the CRM; the 90 days are counted from here")
    connection = models.ForeignKey(CrmConnection, on_delete=models.DO_NOTHING, related_name="+")
    crm_kind = models.CharField("CRM", max_length=20, choices=CrmKind.choices)
    crm_ticket_id = models.CharField("CRM ticket id", max_length=64)
    subject = models.TextField()
    description = models.TextField()
    status = models.CharField(max_length=40)
    channel = models.CharField(max_length=40, choices=Channel.choices)
    agent = models.ForeignKey(Agent, null=True, on_delete=models.DO_NOTHING, related_name="+")
    agent_crm_id = models.CharField(max_length=64)
    requester_crm_id = models.CharField(max_length=64)
    requester_name = models.TextField()
    requester_email = models.TextField()
    requester_phone = models.CharField(max_length=40)
    # The phone's digits reversed: "ends with 1234" becomes a prefix match an index can serve.
    requester_phone_rev = models.CharField(max_length=40)
    tags = ArrayField(models.TextField())
    # [{"id", "author_id", "author", "body", "public", "created_at"}], oldest first.
    comments = models.JSONField()
    comments_text = models.TextField()
    transcript = models.TextField()
    recording_urls = ArrayField(models.TextField())
    crm_url = models.TextField("link in the CRM")
    crm_updated_at = models.DateTimeField()
    solved_at = models.DateTimeField(null=True)
    imported_at = models.DateTimeField()
    # The PostgreSQL text search configuration the ticket's words are stemmed with ("english",
    # "german", ... or "simple"), from its language in the CRM (ticketsearch.rules.search_config).
    search_config = models.CharField("search language", max_length=63)
    # Generated by PostgreSQL (migration 0007 holds the real expression); declared generated so the
    # ORM never writes it. The expression here mirrors it for reading the model, not for DDL (the
    # real one also holds the `lang <oid>` lexeme a search across languages pairs its parses with).
    search_vector = models.GeneratedField(
        expression=(
            SearchVector("subject", weight="A", config=F("search_config"))
            + SearchVector("description", weight="B", config=F("search_config"))
            + SearchVector(Concat("comments_text", Value(" "), "transcript"), weight="C", config=F("search_config"))
        ),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        managed = False
        db_table = "ticketsearch_ticket"
        ordering = ["-created_at", "-id"]
        permissions = [("search_tickets", "Can search imported tickets (QA)")]

    def __str__(self) -> str:
        return f"{self.crm_kind} #{self.crm_ticket_id}: {self.subject}"


class SearchLanguage(models.Model):
    """A text search configuration some imported ticket was stemmed with: the ones a search parses its words in.

    Written by the import when a page brings a configuration not seen before; never removed (one
    row per language, a handful in all).
    """

    config = models.CharField("text search configuration", max_length=63, unique=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.config


class Evaluation(models.Model):
    """A QA reviewer's evaluation of an imported ticket (T6).

    It keeps the ticket's identity (connection, CRM id, subject) rather than a database foreign key:
    a partitioned table cannot be referenced by `id` alone, and an evaluation outlives the 90 days
    the ticket itself is kept.
    """

    ticket_id = models.BigIntegerField(db_index=True)
    ticket_created_at = models.DateTimeField()
    connection = models.ForeignKey(CrmConnection, on_delete=models.CASCADE, related_name="+")
    crm_ticket_id = models.CharField("CRM ticket id", max_length=64)
    ticket_subject = models.TextField(blank=True)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    score = models.PositiveSmallIntegerField(validators=[MaxValueValidator(100)], help_text="0 to 100")
    answers = models.JSONField(default=dict, blank=True, help_text="Evaluation form answers, question to answer")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("evaluate_tickets", "Can evaluate imported tickets (QA)")]
        constraints = [models.CheckConstraint(condition=models.Q(score__lte=100), name="evaluation_score_0_100")]

    def __str__(self) -> str:
        return f"Evaluation of #{self.crm_ticket_id} by {self.reviewer_id}: {self.score}"


class QaToken(AbstractAPIKey):
    """A QA reviewer's API token (`Authorization: Token <key>`), stored hashed and shown once.

    The reviewer's own permissions decide what the token may do; revoking it or deactivating the
    user stops it.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="qa_tokens")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "QA token"
        verbose_name_plural = "QA tokens"
