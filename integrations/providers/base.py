"""The CRM provider interface and the data it speaks in.

Providers never import models: they get a ConnectionSettings and return these dataclasses, so the
rest of the product never sees a CRM's own JSON.
"""

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import quote

from integrations.exceptions import CrmError, CrmUnsupported
from integrations.failures import READ_RETRIES
from integrations.http import CrmHttpClient, RateGate
from integrations.ratelimit import WorkClass


class Capability(StrEnum):
    """What a provider can do for its CRM; the admin and the services offer only these."""

    RECORDS = "records"
    CUSTOM_FIELDS = "custom_fields"
    TAGS = "tags"
    USER_STATUSES = "user_statuses"
    WEBHOOKS = "webhooks"
    TICKET_IMPORT = "ticket_import"
    SCREEN_POP = "screen_pop"
    BATCHING = "batching"


CAPABILITY_LABELS: dict[Capability, str] = {
    Capability.RECORDS: "records (record rules)",
    Capability.CUSTOM_FIELDS: "creating custom fields",
    Capability.TAGS: "tags",
    Capability.USER_STATUSES: "user statuses (agent status sync)",
    Capability.WEBHOOKS: "outbound webhooks",
    Capability.TICKET_IMPORT: "ticket import for QA search",
    Capability.SCREEN_POP: "screen pop",
    Capability.BATCHING: "API batching",
}


class SettingType(StrEnum):
    """How a declared setting is entered and stored: text (the default), or a typed value kept as JSON."""

    TEXT = "text"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    # Any of `choices` (stored as a list of their values).
    CHOICES = "choices"


@dataclass(frozen=True)
class SettingSpec:
    """One setting a connection to this CRM needs, as its provider declares it.

    Secret settings are stored encrypted and never shown back; the others are kept in the
    connection's config. The admin form, `add_crm_connection --setting` and the services all
    read these declarations, so a new CRM needs no form or command of its own.
    """

    name: str
    label: str
    help_text: str = ""
    secret: bool = False
    required: bool = True
    email: bool = False
    # Required whenever this other (optional) setting is given: the password of a username login.
    required_with: str = ""
    type: SettingType = SettingType.TEXT
    # For typed settings (never required): the value while none is stored, the bounds, the choices.
    default: Any = None
    min_value: int | None = None
    max_value: int | None = None
    choices: tuple[tuple[str, str], ...] = ()
    # The admin fieldset it is shown in; "" for the CRM's credentials.
    section: str = ""

    @property
    def typed(self) -> bool:
        return self.type != SettingType.TEXT


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def setting_value(setting: SettingSpec, raw: Any) -> Any:
    """A typed setting's value from a form, a file or the command line; ValueError says what is wrong.

    Pure: the admin form, `add_crm_connection --setting` (text) and the configuration file (JSON)
    all come through here, so they accept and refuse the same values.
    """
    if raw is None:
        return setting.default
    if setting.type == SettingType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return raw.strip().lower() in TRUE_WORDS
        raise ValueError("must be true or false")
    if setting.type == SettingType.INTEGER:
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            raw = int(raw.strip())
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError("must be a whole number")
        if (setting.min_value is not None and raw < setting.min_value) or (
            setting.max_value is not None and raw > setting.max_value
        ):
            raise ValueError(f"must be from {setting.min_value} to {setting.max_value}")
        return raw
    if setting.type == SettingType.CHOICES:
        values = [part.strip() for part in raw.split(",") if part.strip()] if isinstance(raw, str) else raw
        known = [value for value, _ in setting.choices]
        if not isinstance(values, list | tuple) or any(value not in known for value in values):
            raise ValueError(f"must be a list of: {', '.join(known)}")
        # In the declared order, each once: the stored value does not depend on how it was entered.
        return [value for value in known if value in values]
    return raw if isinstance(raw, str) else str(raw)


class BatchService(StrEnum):
    """The writes B1 may batch across sessions."""

    ADD_COMMENT = "add_comment"
    UPDATE_RECORD = "update_record"


@dataclass(frozen=True)
class BatchSettings:
    """A connection's B1 batching, read from the settings its provider declares (BATCH_SETTINGS)."""

    enabled: bool = False
    services: frozenset[BatchService] = frozenset(BatchService)
    interval_seconds: int = 10


BATCH_SECTION = "API batching"
_SERVICE_LABELS = {BatchService.ADD_COMMENT: "Add comment", BatchService.UPDATE_RECORD: "Update record"}


def batch_setting_specs(services: frozenset[BatchService] = frozenset(BatchService)) -> tuple[SettingSpec, ...]:
    """The settings of a provider that can batch (Capability.BATCHING) the given services; stored in
    the connection's config. Only what the CRM has a bulk endpoint for is offered."""
    offered = [service for service in BatchService if service in services]
    return (
        SettingSpec(
            "batching_enabled",
            "Batch comments and record updates" if len(offered) > 1 else f"Batch: {_SERVICE_LABELS[offered[0]]}",
            "Send the comments and record updates of all sessions together, a few requests every few seconds, "
            "instead of one request each; uses the API token above. Records are still created at once (B1).",
            required=False,
            type=SettingType.BOOLEAN,
            default=False,
            section=BATCH_SECTION,
        ),
        SettingSpec(
            "batched_services",
            "What to batch",
            "Add comment is about 37% of the API volume, update record (assignment, fields, status) about 12%.",
            required=False,
            type=SettingType.CHOICES,
            default=[service.value for service in offered],
            choices=tuple((service, _SERVICE_LABELS[service]) for service in offered),
            section=BATCH_SECTION,
        ),
        SettingSpec(
            "batch_interval_seconds",
            "Send a batch every (seconds)",
            "From 1 to 60; 10 is recommended. A comment or update waits at most this long before it is sent.",
            required=False,
            type=SettingType.INTEGER,
            default=10,
            min_value=1,
            max_value=60,
            section=BATCH_SECTION,
        ),
    )


BATCH_SETTINGS: tuple[SettingSpec, ...] = batch_setting_specs()


def batch_settings(config: Mapping[str, Any]) -> BatchSettings:
    """The batching a connection's config asks for (defaults for what it does not set)."""
    values = {spec.name: config.get(spec.name, spec.default) for spec in BATCH_SETTINGS}
    try:
        interval = int(values["batch_interval_seconds"])
    except (TypeError, ValueError):
        interval = BatchSettings.interval_seconds
    services = values["batched_services"] if isinstance(values["batched_services"], list) else []
    return BatchSettings(
        enabled=values["batching_enabled"] is True,
        services=frozenset(BatchService(value) for value in services if value in set(BatchService)),
        interval_seconds=min(60, max(1, interval)),
    )


@dataclass(frozen=True)
class ConnectionSettings:
    """What a provider needs to reach one CRM instance (decrypted secrets included)."""

    kind: str
    base_url: str
    config: Mapping[str, Any]
    secrets: Mapping[str, Any]
    timeout: float = 15.0
    # The CRM plan's request limit, kept by every worker together (integrations.ratelimit).
    rate_limit_per_minute: int | None = None
    # Whose work the requests are: imports only use the budget above the share kept for live work.
    work_class: WorkClass = WorkClass.LIVE
    # How long a request-limit error without Retry-After (Salesforce's 403) pauses the CRM's calls.
    limit_exceeded_retry_seconds: float = 60.0
    # Times a failed idempotent read is sent again in place (integrations.http).
    read_retries: int = READ_RETRIES


class ConnectionClient(CrmHttpClient):
    """The HTTP client of one connection: its URL, timeout, shared rate gate, budget and work class.

    Each provider's client subclasses it and adds only its authentication.
    """

    def __init__(self, settings: ConnectionSettings, rate_gate: RateGate | None) -> None:
        super().__init__(
            settings.base_url,
            timeout=settings.timeout,
            rate_gate=rate_gate,
            rate_limit_per_minute=settings.rate_limit_per_minute,
            work_class=settings.work_class,
            read_retries=settings.read_retries,
        )


@dataclass(frozen=True)
class Contact:
    id: str
    name: str
    phone: str | None = None
    email: str | None = None
    created_at: str | None = None
    # The platform's id for an app or web user (S16), kept in the CRM's external-id field.
    external_id: str | None = None
    # The contact's custom fields by key (Zendesk user fields, Kustomer custom attributes): O3 may
    # read the number to dial from one of them.
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Agent:
    id: str
    email: str
    name: str


@dataclass(frozen=True)
class Record:
    """A CRM record: a Zendesk ticket, Kustomer conversation, Salesforce case, Freshdesk ticket."""

    id: str
    subject: str
    status: str
    external_id: str | None = None
    requester_id: str | None = None
    assignee_id: str | None = None
    tags: tuple[str, ...] = ()
    url: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    # When the CRM last solved or closed it (R2 counts from this); None while it never was, or when
    # the read did not carry it.
    closed_at: str | None = None
    # CRM field id -> value, for the product's custom fields (F1/F2).
    custom_fields: Mapping[str, Any] = field(default_factory=dict)
    # Set when the CRM merged this record into another one (S8: the survivor gets the updates).
    merged_into_id: str | None = None
    # Set by CRMs that say so themselves (Salesforce IsClosed); None: the status decides.
    is_closed: bool | None = None


@dataclass(frozen=True)
class Attachment:
    """A file on a comment: `content` when the product uploads it, `url` when the CRM serves it."""

    filename: str
    content_type: str = "application/octet-stream"
    content: bytes = b""
    url: str | None = None


@dataclass(frozen=True)
class Comment:
    body: str
    public: bool = False
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class NewRecord:
    subject: str
    external_id: str
    requester_id: str
    first_comment: Comment
    assignee_id: str | None = None
    tags: tuple[str, ...] = ()
    custom_fields: Mapping[str, Any] = field(default_factory=dict)
    status: str | None = None


@dataclass(frozen=True)
class RecordChanges:
    """A partial update: None leaves a value as it is."""

    status: str | None = None
    assignee_id: str | None = None
    add_tags: tuple[str, ...] = ()
    comment: Comment | None = None
    custom_fields: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchUpdate:
    """One record's changes in a batch (B1): at most one per record in a request, so results map back."""

    record_id: str
    changes: RecordChanges


@dataclass(frozen=True)
class BatchItemResult:
    """The CRM's own result for one record of a batch; `error` None means it was applied."""

    record_id: str
    error: CrmError | None = None


@dataclass(frozen=True)
class BatchJob:
    """A batch as the CRM runs it: its job id, whether it is finished, and each record's result."""

    id: str
    done: bool
    # The whole job failed (or was killed): none of its items can be taken as applied.
    failed: bool = False
    message: str = ""
    results: tuple[BatchItemResult, ...] = ()


class CustomFieldType(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class CustomFieldSpec:
    """One of the product's custom fields (F2), before the provider names it in its CRM's style."""

    key: str
    title: str
    type: CustomFieldType = CustomFieldType.TEXT


@dataclass(frozen=True)
class CrmUserStatus:
    """A user (agent) status defined in the CRM, e.g. a Kustomer routing status."""

    id: str
    name: str
    status_type: str = ""


class CrmProvider(abc.ABC):
    """One CRM's API behind the product's vocabulary.

    Each provider owns its CRM's words: which statuses count as open, the default open status,
    how a session-type tag is styled (R8).
    """

    kind: ClassVar[str]
    # The connection form's words for the base URL, and the settings beside it.
    base_url_help: ClassVar[str] = ""
    settings_spec: ClassVar[tuple[SettingSpec, ...]] = ()
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    open_statuses: ClassVar[frozenset[str]]
    default_open_status: ClassVar[str]
    # Statuses the CRM refuses to change (a closed Zendesk ticket): such a record is never reopened.
    immutable_statuses: ClassVar[frozenset[str]] = frozenset()
    # The status a record is given when its session is done with it (a voicemail closed, S13).
    resolved_status: ClassVar[str] = ""
    # S14: CRMs whose integration posts the caller's number as a note on the record (Kustomer).
    posts_phone_number_note: ClassVar[bool] = False

    def __init__(self, settings: ConnectionSettings, *, rate_gate: RateGate | None = None) -> None:
        self.settings = settings
        self.rate_gate = rate_gate

    def writes_maybe_applied(self) -> int:
        """Writes this provider sent that the CRM did not refuse (integrations.http.CrmHttpClient)."""
        # Every provider keeps its CRM client as `client` (a subclass of CrmHttpClient of its own type).
        client = getattr(self, "client", None)
        assert isinstance(client, CrmHttpClient), f"{type(self).__name__} has no CRM client"
        return client.writes_maybe_applied

    # Where an agent opens a record or a contact in the CRM's own web app ({base} is the
    # connection's base URL without its trailing slash); "" when the CRM has no such page.
    record_web_path: ClassVar[str] = ""
    contact_web_path: ClassVar[str] = ""

    @classmethod
    def web_base_url(cls, base_url: str) -> str:
        """The CRM's web app for an API base URL (the same host, for most CRMs)."""
        return base_url.rstrip("/")

    @classmethod
    def web_url(cls, base_url: str, *, record_id: str = "", contact_id: str = "") -> str:
        """A link into the CRM for a record or a contact, or "" when there is none."""
        template, value = (cls.record_web_path, record_id) if record_id else (cls.contact_web_path, contact_id)
        if not template or not value:
            return ""
        return template.format(base=cls.web_base_url(base_url), id=quote(value, safe=""))

    @abc.abstractmethod
    def test_connection(self) -> None:
        """Make one authenticated read; raise a CrmError when it fails."""

    @abc.abstractmethod
    def find_contacts(
        self, *, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> list[Contact]:
        """Contacts (end users) with this email, external id or E.164 phone number, newest first.

        A phone matches whatever format the CRM stored it in (integrations.providers.phones); a
        phone stored exactly as the caller's E.164 ranks before one written another way.
        """

    @abc.abstractmethod
    def create_contact(
        self, *, name: str, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> Contact:
        """Create an end-user contact."""

    @abc.abstractmethod
    def find_agent(self, *, email: str) -> Agent | None:
        """The CRM user (agent or admin) with this email, or None."""

    @abc.abstractmethod
    def find_records_by_external_id(self, external_id: str) -> list[Record]:
        """Records carrying this external id (the product puts the session id there)."""

    @abc.abstractmethod
    def list_contact_records(self, contact_id: str) -> list[Record]:
        """The contact's records (as requester/customer), most recently updated first, with `closed_at`."""

    @abc.abstractmethod
    def create_record(self, record: NewRecord) -> Record:
        """Create a record with its first (internal) comment."""

    @abc.abstractmethod
    def get_record(self, record_id: str) -> Record:
        """One record by id; CrmNotFound when it is gone."""

    @abc.abstractmethod
    def update_record(self, record_id: str, changes: RecordChanges) -> Record:
        """Apply a partial update (status, assignee, tags, a comment) in one call where the API allows."""

    @abc.abstractmethod
    def list_comments(self, record_id: str) -> list[Comment]:
        """The record's comments, oldest first."""

    @abc.abstractmethod
    def session_type_tag(self, session_type_name: str) -> str:
        """The session-type tag in this CRM's style (R8)."""

    @abc.abstractmethod
    def ensure_custom_fields(self, specs: Sequence[CustomFieldSpec]) -> dict[str, str]:
        """Create the fields the CRM lacks (reusing same-named ones); spec key -> CRM field id (F1)."""

    @abc.abstractmethod
    def existing_custom_fields(self) -> frozenset[str]:
        """Ids of the record custom fields the CRM has now (S11 names mapped fields it lacks)."""

    def add_comment(self, record_id: str, comment: Comment) -> Record:
        return self.update_record(record_id, RecordChanges(comment=comment))

    def is_open(self, record: Record) -> bool:
        return record.status in self.open_statuses

    def can_reopen(self, record: Record) -> bool:
        return record.status not in self.immutable_statuses

    @classmethod
    def can(cls, capability: Capability) -> bool:
        return capability in cls.capabilities

    # Agent status sync (A1-A5). Only CRMs with user statuses implement these.
    @property
    def supports_user_status(self) -> bool:
        return self.can(Capability.USER_STATUSES)

    def list_user_statuses(self) -> list[CrmUserStatus]:
        """The user statuses defined in the CRM."""
        raise CrmUnsupported(f"{self.kind} has no user statuses")

    def set_user_status(self, agent_id: str, status_id: str) -> None:
        """Set a CRM user's current status (two-way sync, A4)."""
        raise CrmUnsupported(f"{self.kind} has no user statuses")

    def get_agent(self, agent_id: str) -> Agent:
        """One CRM user by id (a status webhook names the user only by id); CrmNotFound when gone."""
        raise CrmUnsupported(f"{self.kind}: looking users up by id is not implemented")

    # Screen pop (O4). Every CRM has a page for a record; some can also open it on the agent's screen.
    supports_screen_pop_display: ClassVar[bool] = False

    def get_contact(self, contact_id: str) -> Contact:
        """One contact by id, with its custom fields; CrmNotFound when it is gone."""
        raise CrmUnsupported(f"{self.kind}: reading a contact by id is not implemented")

    def record_web_url(self, record: Record) -> str | None:
        """The page an agent opens to work on the record (not its API URL), from `record_web_path`."""
        return self.web_url(self.settings.base_url, record_id=record.id) or None

    def display_record(self, agent_id: str, record_id: str) -> None:
        """Open the record in the agent's CRM window (Zendesk Talk Partner Edition's display API)."""
        raise CrmUnsupported(f"{self.kind} has no screen-pop API: the adapter opens the record's URL")

    # B1 batching across sessions (Capability.BATCHING): records one batch request may carry.
    batch_max_items: ClassVar[int] = 0
    # The services the CRM's bulk endpoint can carry (Kustomer has bulk conversation updates, no bulk notes).
    batch_services: ClassVar[frozenset[BatchService]] = frozenset(BatchService)
    # Whether one update_record request also writes the record's comment (Zendesk's ticket PUT does;
    # Kustomer's note is a request of its own): pairing an event's comment with its update saves one.
    update_writes_comment: ClassVar[bool] = True

    def batch_settings(self) -> BatchSettings:
        """What this connection batches; nothing for a CRM that cannot batch, nothing it has no bulk endpoint for."""
        if not self.can(Capability.BATCHING):
            return BatchSettings()
        chosen = batch_settings(self.settings.config)
        return replace(chosen, services=chosen.services & self.batch_services)

    def submit_batch(self, updates: Sequence[BatchUpdate]) -> BatchJob:
        """Send the updates of several records in one request (comments without attachments); the job."""
        raise CrmUnsupported(f"{self.kind} has no batch updates")

    def read_batch(self, job_id: str) -> BatchJob:
        """The batch job as the CRM has it now; CrmNotFound once the CRM forgot it."""
        raise CrmUnsupported(f"{self.kind} has no batch updates")

    def register_webhook(self, url: str, events: Sequence[str]) -> str:
        """Subscribe `url` to the CRM's outbound webhook `events`; return the secret deliveries are signed with."""
        raise CrmUnsupported(f"{self.kind} has no outbound webhooks")
