"""Zendesk Support API v2 (shapes: shared/crm-api-shapes.md §1)."""

import base64
import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests

from integrations.http import CrmHttpClient, RateGate
from integrations.providers.base import (
    Agent,
    Comment,
    ConnectionSettings,
    Contact,
    CrmProvider,
    NewRecord,
    Record,
    RecordChanges,
)
from integrations.providers.importing import (
    OTHER_CHANNEL,
    ImportedComment,
    ImportedTicket,
    ImportedUser,
    ImportPage,
    TicketImportSource,
)


class ZendeskClient(CrmHttpClient):
    """Basic auth with an API token: `{email}/token:{api_token}`."""

    USERS_SEARCH = "api/v2/users/search.json"
    USERS = "api/v2/users.json"
    TICKETS = "api/v2/tickets.json"
    TICKET = "api/v2/tickets/{id}.json"
    TICKET_COMMENTS = "api/v2/tickets/{id}/comments.json"

    def __init__(self, settings: ConnectionSettings, rate_gate: RateGate | None) -> None:
        super().__init__(
            settings.base_url,
            timeout=settings.timeout,
            rate_gate=rate_gate,
            rate_limit_per_minute=settings.rate_limit_per_minute,
        )
        credentials = f"{settings.config.get('email', '')}/token:{settings.secrets.get('api_token', '')}"
        self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode()

    def authorize(self, request: requests.PreparedRequest) -> None:
        request.headers["Authorization"] = self._authorization


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def _user_to_contact(user: dict[str, Any]) -> Contact:
    return Contact(
        id=str(user["id"]),
        name=user.get("name") or "",
        phone=user.get("phone"),
        email=user.get("email"),
        created_at=user.get("created_at"),
    )


def _ticket_to_record(ticket: dict[str, Any]) -> Record:
    def optional_id(value: Any) -> str | None:
        return None if value is None else str(value)

    return Record(
        id=str(ticket["id"]),
        subject=ticket.get("subject") or "",
        status=ticket.get("status") or "",
        external_id=ticket.get("external_id"),
        requester_id=optional_id(ticket.get("requester_id")),
        assignee_id=optional_id(ticket.get("assignee_id")),
        tags=tuple(ticket.get("tags") or ()),
        url=ticket.get("url"),
    )


class ZendeskProvider(CrmProvider, TicketImportSource):
    kind = "zendesk"
    open_statuses: ClassVar[frozenset[str]] = frozenset({"new", "open", "pending", "hold"})
    default_open_status = "open"

    def __init__(self, settings: ConnectionSettings, *, rate_gate: RateGate | None = None) -> None:
        super().__init__(settings, rate_gate=rate_gate)
        self.client = ZendeskClient(self.settings, self.rate_gate)

    def test_connection(self) -> None:
        self.client.get(ZendeskClient.USERS, params={"page[size]": 1})

    def find_contacts(self, *, phone: str | None = None, email: str | None = None) -> list[Contact]:
        if phone:
            # `*` makes Zendesk match the digits whatever formatting the number was stored with.
            query = f"role:end-user phone:*{_digits(phone)}"
        elif email:
            query = f"role:end-user email:{email}"
        else:
            return []
        users = self.client.get(ZendeskClient.USERS_SEARCH, params={"query": query})["users"]
        contacts = [_user_to_contact(user) for user in users]
        return sorted(contacts, key=lambda contact: contact.created_at or "", reverse=True)

    def create_contact(self, *, name: str, phone: str | None = None, email: str | None = None) -> Contact:
        user: dict[str, Any] = {"name": name, "role": "end-user"}
        if phone:
            user["phone"] = phone
        if email:
            user["email"] = email
        return _user_to_contact(self.client.post(ZendeskClient.USERS, json={"user": user})["user"])

    def find_agent(self, *, email: str) -> Agent | None:
        users = self.client.get(ZendeskClient.USERS_SEARCH, params={"query": f"email:{email}"})["users"]
        for user in users:
            if user.get("role") in ("agent", "admin") and (user.get("email") or "").lower() == email.lower():
                return Agent(id=str(user["id"]), email=user["email"], name=user.get("name") or "")
        return None

    def find_records_by_external_id(self, external_id: str) -> list[Record]:
        tickets = self.client.get(ZendeskClient.TICKETS, params={"external_id": external_id})["tickets"]
        return [_ticket_to_record(ticket) for ticket in tickets]

    def create_record(self, record: NewRecord) -> Record:
        ticket: dict[str, Any] = {
            "subject": record.subject,
            "comment": {"body": record.first_comment.body, "public": record.first_comment.public},
            "requester_id": int(record.requester_id),
            "external_id": record.external_id,
            "tags": list(record.tags),
        }
        if record.assignee_id:
            ticket["assignee_id"] = int(record.assignee_id)
        return _ticket_to_record(self.client.post(ZendeskClient.TICKETS, json={"ticket": ticket})["ticket"])

    def get_record(self, record_id: str) -> Record:
        return _ticket_to_record(self.client.get(ZendeskClient.TICKET.format(id=record_id))["ticket"])

    def update_record(self, record_id: str, changes: RecordChanges) -> Record:
        ticket: dict[str, Any] = dict(changes.extra)
        if changes.status:
            ticket["status"] = changes.status
        if changes.assignee_id:
            ticket["assignee_id"] = int(changes.assignee_id)
        if changes.add_tags:
            ticket["additional_tags"] = list(changes.add_tags)
        if changes.comment:
            ticket["comment"] = {"body": changes.comment.body, "public": changes.comment.public}
        body = self.client.put(ZendeskClient.TICKET.format(id=record_id), json={"ticket": ticket})
        return _ticket_to_record(body["ticket"])

    def list_comments(self, record_id: str) -> list[Comment]:
        comments: list[Comment] = []
        page: str | None = ZendeskClient.TICKET_COMMENTS.format(id=record_id)
        while page:
            body = self.client.get(page)
            comments += [Comment(body=c.get("body") or "", public=bool(c.get("public"))) for c in body["comments"]]
            page = body.get("next_page")
        return comments

    def session_type_tag(self, session_type_name: str) -> str:
        # Zendesk tags are lowercase words joined by `_`: "Voice Inbound (IVR)" -> "voice_inbound_ivr".
        return "_".join(re.findall(r"[a-z0-9]+", session_type_name.lower()))

    # -- Import for QA search (SPEC T1-T2; crm-api-shapes.md §1.3, §1.4, §1.7) ----------------------
    #
    # Agents come from the users list filtered by role (not incremental: agents are few), tickets
    # from the incremental cursor export with the users sideloaded (requester details), comments
    # per kept ticket from the ticket's comments list.

    INCREMENTAL_TICKETS = "api/v2/incremental/tickets/cursor.json"
    # Tickets per export page: Zendesk's maximum (and default).
    EXPORT_PAGE_SIZE = 1000
    SOLVED_STATUSES: ClassVar[frozenset[str]] = frozenset({"solved", "closed"})
    # Zendesk `via.channel` values and the QA channels (SPEC T5) they are filed under.
    CHANNELS: ClassVar[dict[str, str]] = {
        "email": "email",
        "chat": "chat",
        "native_messaging": "in_app_messaging",
        "mobile_sdk": "in_app_messaging",
        "sdk": "in_app_messaging",
        "facebook": "facebook",
        "facebook_messenger": "facebook",
        "forum": "forum",
        "slack": "slack",
        "sms": "sms",
        "voice": "voice",
        "whatsapp": "whatsapp",
        "telegram": "telegram",
        "viber": "viber",
        "apple_business_chat": "apple_messages_for_business",
        "apple_messages_for_business": "apple_messages_for_business",
        "microsoft_teams": "microsoft_teams",
        "teams": "microsoft_teams",
    }

    def iter_users(self, *, cursor: str | None, since: datetime) -> Iterator[ImportPage[ImportedUser]]:
        """Every agent and admin, 100 per page (the list is not incremental, so the cursor is unused)."""
        page: str | None = ZendeskClient.USERS
        params: dict[str, Any] | None = {"role[]": ["agent", "admin"], "page[size]": 100}
        while page:
            body = self.client.get(page, params=params)
            users = [_imported_user(user) for user in body["users"]]
            yield ImportPage(items=users, cursor="")
            page = body["links"]["next"] if body.get("meta", {}).get("has_more") else None
            params = None

    def iter_tickets(self, *, cursor: str | None, since: datetime) -> Iterator[ImportPage[ImportedTicket]]:
        """Tickets changed since the cursor (or `since`), 1000 per page, until the end of the stream."""
        params: dict[str, Any] = {"include": "users", "per_page": self.EXPORT_PAGE_SIZE}
        if cursor:
            params["cursor"] = cursor
        else:
            params["start_time"] = int(since.timestamp())
        while True:
            body = self.client.get(self.INCREMENTAL_TICKETS, params=params)
            users = {user["id"]: user for user in body.get("users") or ()}
            tickets = [self._imported_ticket(ticket, users) for ticket in body["tickets"]]
            # An empty last page has no cursor of its own: the previous one still holds.
            cursor = body.get("after_cursor") or cursor or ""
            yield ImportPage(items=tickets, cursor=cursor)
            if body.get("end_of_stream") or not body.get("after_cursor"):
                return
            params = {"include": "users", "per_page": self.EXPORT_PAGE_SIZE, "cursor": body["after_cursor"]}

    def load_comments(self, tickets: list[ImportedTicket]) -> list[ImportedTicket]:
        loaded = []
        for ticket in tickets:
            comments: list[ImportedComment] = []
            page: str | None = ZendeskClient.TICKET_COMMENTS.format(id=ticket.crm_id)
            while page:
                body = self.client.get(page)
                comments += [_imported_comment(comment) for comment in body["comments"]]
                page = body.get("next_page")
            loaded.append(dataclasses.replace(ticket, comments=tuple(comments)))
        return loaded

    def _imported_ticket(self, ticket: dict[str, Any], users: dict[Any, dict[str, Any]]) -> ImportedTicket:
        requester = users.get(ticket.get("requester_id")) or {}
        status = ticket.get("status") or ""
        updated_at = _time(ticket.get("updated_at")) or datetime.now(UTC)
        via_channel = ((ticket.get("via") or {}).get("channel") or "").lower()
        return ImportedTicket(
            crm_id=str(ticket["id"]),
            subject=ticket.get("subject") or "",
            description=ticket.get("description") or "",
            status=status,
            is_solved=status in self.SOLVED_STATUSES,
            channel=self.CHANNELS.get(via_channel, OTHER_CHANNEL),
            assignee_id=_optional_id(ticket.get("assignee_id")),
            requester_id=_optional_id(ticket.get("requester_id")),
            requester_name=requester.get("name") or "",
            requester_email=requester.get("email"),
            requester_phone=requester.get("phone"),
            tags=tuple(ticket.get("tags") or ()),
            created_at=_time(ticket.get("created_at")) or updated_at,
            updated_at=updated_at,
            # The ticket object has no solved time (it is in metric sets): its last change while solved.
            solved_at=updated_at if status in self.SOLVED_STATUSES else None,
            web_url=f"{self.settings.base_url.rstrip('/')}/agent/tickets/{ticket['id']}",
        )


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _optional_id(value: Any) -> str | None:
    return None if value is None else str(value)


def _imported_user(user: dict[str, Any]) -> ImportedUser:
    # Zendesk keeps one name; its first word is taken as the first name, the rest as the last.
    first, _, last = (user.get("name") or "").strip().partition(" ")
    return ImportedUser(
        crm_id=str(user["id"]),
        first_name=first,
        last_name=last.strip(),
        email=user.get("email") or None,
        is_active=bool(user.get("active", True)) and not user.get("suspended"),
        is_agent=user.get("role") in ("agent", "admin"),
        updated_at=_time(user.get("updated_at")),
    )


def _imported_comment(comment: dict[str, Any]) -> ImportedComment:
    author = comment.get("author_id")
    data = comment.get("data") or {}
    voice = comment.get("type") == "VoiceComment"
    return ImportedComment(
        crm_id=str(comment.get("id")),
        # Zendesk writes -1 (or nothing) as the author of system-made entries: no user behind them.
        author_id=None if author in (None, -1, "-1") else str(author),
        body=comment.get("plain_body") or comment.get("body") or "",
        public=bool(comment.get("public")),
        created_at=_time(comment.get("created_at")),
        recording_url=(data.get("recording_url") or None) if voice else None,
        transcript=(data.get("transcription_text") or None) if voice else None,
    )
