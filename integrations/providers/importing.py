"""The import side of a provider: CRM users and tickets read for QA search (SPEC T1-T2).

Kept apart from providers/base.py so the record-writing interface and the import interface can
grow independently. A provider that can be imported from inherits both CrmProvider and
TicketImportSource. Like the rest of `integrations`, nothing here knows about the apps that use it:
the provider reports what the CRM holds, in the CRM's own terms mapped to these dataclasses, and
the importing app decides what to keep (ticketsearch.rules).
"""

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

# The channels QA search knows (SPEC T5); a provider maps its CRM's channel names onto these.
CHANNELS = (
    "email",
    "chat",
    "facebook",
    "forum",
    "in_app_messaging",
    "slack",
    "sms",
    "voice",
    "whatsapp",
    "telegram",
    "viber",
    "apple_messages_for_business",
    "microsoft_teams",
)
# A ticket that came in some other way (web form, API, a rule): kept, and filterable as such.
OTHER_CHANNEL = "other"


@dataclass(frozen=True)
class ImportedUser:
    """A CRM user as the CRM holds it; whether it may be imported is decided by the caller."""

    crm_id: str
    first_name: str
    last_name: str
    email: str | None
    is_active: bool
    # An agent (Zendesk agent/admin, Salesforce standard user), not a customer.
    is_agent: bool
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ImportedComment:
    """One interaction on a ticket. `author_id` None: the CRM did not say who wrote it."""

    crm_id: str
    author_id: str | None
    body: str
    public: bool
    created_at: datetime | None
    # A voice interaction: its call recording and its transcript, when the CRM has them.
    recording_url: str | None = None
    transcript: str | None = None


@dataclass(frozen=True)
class ImportedTicket:
    crm_id: str
    subject: str
    description: str
    # The CRM's own status word ("solved", "Closed", ...).
    status: str
    # Whether that status means solved/resolved/closed in this CRM (the provider owns its vocabulary).
    is_solved: bool
    # One of CHANNELS or OTHER_CHANNEL.
    channel: str
    assignee_id: str | None
    requester_id: str | None
    requester_name: str
    requester_email: str | None
    requester_phone: str | None
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    solved_at: datetime | None
    # The ticket in the CRM's agent interface, for QA reviewers to open.
    web_url: str
    comments: tuple[ImportedComment, ...] = ()
    # Chat transcripts held outside the comments (Salesforce LiveChatTranscript bodies).
    transcripts: tuple[str, ...] = ()
    # The ticket's language as the CRM gives it, a locale ("en-US", "de"), or None when it has none.
    language: str | None = None


@dataclass(frozen=True)
class ImportedTicketComment:
    """A comment read from a CRM's stream of comments over all tickets, with the ticket it is on."""

    ticket_crm_id: str
    comment: ImportedComment


T = TypeVar("T")


@dataclass(frozen=True)
class ImportPage(Generic[T]):
    """Items read in one go, and the cursor to store once they are saved (to resume after them)."""

    items: list[T]
    cursor: str
    # The CRM's count of everything the iteration will yield, when it says (for a progress bar).
    total: int | None = None


@dataclass(frozen=True)
class CommentPage:
    """Comments read in one go from the comment stream, and the cursor to store once they are saved.

    `complete_until`: every comment made before this time has now been read (the stream's position).
    """

    items: list[ImportedTicketComment]
    cursor: str
    complete_until: datetime


class TicketImportSource(abc.ABC):
    """Reads a CRM's users and tickets incrementally.

    A cursor is opaque to the caller: store the one of each page after saving the page, and pass
    the last stored one to the next run, which then yields only what changed since. With no cursor,
    `since` says where to start.
    """

    @abc.abstractmethod
    def iter_users(self, *, cursor: str | None, since: datetime) -> Iterator[ImportPage[ImportedUser]]:
        """The CRM's users (agents and others; the caller applies the T1 rules)."""

    @abc.abstractmethod
    def iter_tickets(self, *, cursor: str | None, since: datetime) -> Iterator[ImportPage[ImportedTicket]]:
        """Tickets created or changed since the cursor, whatever their status (the caller keeps the solved ones)."""

    # How the comments come when the ticket listing does not carry them. True: from one stream
    # over all tickets (iter_comments), a few requests per thousand tickets; the caller keeps them
    # until each ticket is stored. False: per ticket (load_comments), one request or more each.
    comments_in_bulk: bool = False

    # True when the next page of iter_tickets may be read in another thread while the caller stores
    # the last one: the listing carries everything the import needs (load_comments has nothing to
    # read) and reading a page touches no database.
    pages_read_ahead: bool = False

    @abc.abstractmethod
    def load_comments(self, tickets: list[ImportedTicket]) -> list[ImportedTicket]:
        """The same tickets with their comments, for CRMs whose ticket listing does not carry them.

        Called only for the tickets the caller keeps, so comments of skipped tickets are never read.
        """

    def iter_comments(self, *, cursor: str | None, since: datetime) -> Iterator[CommentPage]:
        """Comments on every ticket made since the cursor (or `since`), oldest first (comments_in_bulk only).

        A comment may come twice (page boundaries); its id says it is the same one.
        """
        raise NotImplementedError(f"{type(self).__name__} reads comments per ticket")
