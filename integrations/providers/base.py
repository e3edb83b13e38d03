"""The CRM provider interface and the data it speaks in.

Providers never import models: they get a ConnectionSettings and return these dataclasses, so the
rest of the product never sees a CRM's own JSON.
"""

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from integrations.http import RateGate


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


@dataclass(frozen=True)
class Contact:
    id: str
    name: str
    phone: str | None = None
    email: str | None = None
    created_at: str | None = None


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


@dataclass(frozen=True)
class Comment:
    body: str
    public: bool = False


@dataclass(frozen=True)
class NewRecord:
    subject: str
    external_id: str
    requester_id: str
    first_comment: Comment
    assignee_id: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordChanges:
    """A partial update: None leaves a value as it is."""

    status: str | None = None
    assignee_id: str | None = None
    add_tags: tuple[str, ...] = ()
    comment: Comment | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class CrmProvider(abc.ABC):
    """One CRM's API behind the product's vocabulary.

    Each provider owns its CRM's words: which statuses count as open, the default open status,
    how a session-type tag is styled (R8).
    """

    kind: ClassVar[str]
    open_statuses: ClassVar[frozenset[str]]
    default_open_status: ClassVar[str]

    def __init__(self, settings: ConnectionSettings, *, rate_gate: RateGate | None = None) -> None:
        self.settings = settings
        self.rate_gate = rate_gate

    @abc.abstractmethod
    def test_connection(self) -> None:
        """Make one authenticated read; raise a CrmError when it fails."""

    @abc.abstractmethod
    def find_contacts(self, *, phone: str | None = None, email: str | None = None) -> list[Contact]:
        """Contacts (end users) with this E.164 phone number or email, newest first."""

    @abc.abstractmethod
    def create_contact(self, *, name: str, phone: str | None = None, email: str | None = None) -> Contact:
        """Create an end-user contact."""

    @abc.abstractmethod
    def find_agent(self, *, email: str) -> Agent | None:
        """The CRM user (agent or admin) with this email, or None."""

    @abc.abstractmethod
    def find_records_by_external_id(self, external_id: str) -> list[Record]:
        """Records carrying this external id (the product puts the session id there)."""

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

    def add_comment(self, record_id: str, comment: Comment) -> Record:
        return self.update_record(record_id, RecordChanges(comment=comment))
