"""Zendesk Support API v2 (shapes: shared/crm-api-shapes.md §1)."""

import base64
import re
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


class ZendeskProvider(CrmProvider):
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
