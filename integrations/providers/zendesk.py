"""Zendesk Support API v2 (shapes: shared/crm-api-shapes.md §1)."""

import base64
import dataclasses
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import requests

from integrations.http import CrmHttpClient, RateGate
from integrations.providers.base import (
    Agent,
    Attachment,
    Comment,
    ConnectionSettings,
    Contact,
    CrmProvider,
    CustomFieldSpec,
    CustomFieldType,
    NewRecord,
    Record,
    RecordChanges,
)

# Zendesk's field type for each of the product's custom field types (ticket_fields `type`).
FIELD_TYPES = {
    CustomFieldType.TEXT: "text",
    CustomFieldType.INTEGER: "integer",
    CustomFieldType.DECIMAL: "decimal",
    CustomFieldType.BOOLEAN: "checkbox",
}
# Zendesk's own comment on a ticket merged into another (the API has no field for it).
MERGED_INTO_RE = re.compile(r"merged into request #(\d+)", re.IGNORECASE)


class ZendeskClient(CrmHttpClient):
    """Basic auth with an API token: `{email}/token:{api_token}`."""

    USERS_SEARCH = "api/v2/users/search.json"
    USERS = "api/v2/users.json"
    TICKETS = "api/v2/tickets.json"
    TICKET = "api/v2/tickets/{id}.json"
    TICKET_COMMENTS = "api/v2/tickets/{id}/comments.json"
    USER_REQUESTED_TICKETS = "api/v2/users/{id}/tickets/requested.json"
    TICKET_FIELDS = "api/v2/ticket_fields.json"
    UPLOADS = "api/v2/uploads.json"

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
        external_id=user.get("external_id"),
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
        created_at=ticket.get("created_at"),
        updated_at=ticket.get("updated_at"),
        custom_fields={
            str(field["id"]): field.get("value") for field in ticket.get("custom_fields") or () if "id" in field
        },
    )


def _custom_fields_json(values: dict[str, Any] | Any) -> list[dict[str, Any]]:
    return [{"id": int(field_id), "value": value} for field_id, value in values.items()]


def _comment_from_json(comment: dict[str, Any]) -> Comment:
    attachments = tuple(
        Attachment(
            filename=item.get("file_name") or "",
            content_type=item.get("content_type") or "application/octet-stream",
            url=item.get("content_url"),
        )
        for item in comment.get("attachments") or ()
    )
    return Comment(body=comment.get("body") or "", public=bool(comment.get("public")), attachments=attachments)


class ZendeskProvider(CrmProvider):
    kind = "zendesk"
    open_statuses: ClassVar[frozenset[str]] = frozenset({"new", "open", "pending", "hold"})
    default_open_status = "open"
    # A closed ticket refuses every update (422); a solved one can still be reopened.
    immutable_statuses: ClassVar[frozenset[str]] = frozenset({"closed"})
    resolved_status = "solved"

    def __init__(self, settings: ConnectionSettings, *, rate_gate: RateGate | None = None) -> None:
        super().__init__(settings, rate_gate=rate_gate)
        self.client = ZendeskClient(self.settings, self.rate_gate)

    def test_connection(self) -> None:
        self.client.get(ZendeskClient.USERS, params={"page[size]": 1})

    def find_contacts(
        self, *, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> list[Contact]:
        if external_id:
            users = self.client.get(ZendeskClient.USERS_SEARCH, params={"external_id": external_id})["users"]
            return [_user_to_contact(user) for user in users]
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

    def create_contact(
        self, *, name: str, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> Contact:
        user: dict[str, Any] = {"name": name, "role": "end-user"}
        if phone:
            user["phone"] = phone
        if email:
            user["email"] = email
        if external_id:
            user["external_id"] = external_id
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

    def list_contact_records(self, contact_id: str) -> list[Record]:
        records: list[Record] = []
        page: str | None = ZendeskClient.USER_REQUESTED_TICKETS.format(id=contact_id)
        while page:
            body = self.client.get(page)
            records += [_ticket_to_record(ticket) for ticket in body["tickets"]]
            page = body.get("next_page")
        return sorted(records, key=lambda record: record.updated_at or "", reverse=True)

    def _comment_json(self, comment: Comment) -> dict[str, Any]:
        body: dict[str, Any] = {"body": comment.body, "public": comment.public}
        if comment.attachments:
            body["uploads"] = [self._upload(attachment) for attachment in comment.attachments]
        return body

    def _upload(self, attachment: Attachment) -> str:
        """Upload a file (POST /uploads) and return the token a comment attaches it with."""
        body = self.client.request(
            "POST",
            ZendeskClient.UPLOADS,
            params={"filename": attachment.filename},
            data=attachment.content,
            headers={"Content-Type": attachment.content_type},
        )
        return str(body["upload"]["token"])

    def create_record(self, record: NewRecord) -> Record:
        ticket: dict[str, Any] = {
            "subject": record.subject,
            "comment": self._comment_json(record.first_comment),
            "requester_id": int(record.requester_id),
            "external_id": record.external_id,
            "tags": list(record.tags),
        }
        if record.assignee_id:
            ticket["assignee_id"] = int(record.assignee_id)
        if record.custom_fields:
            ticket["custom_fields"] = _custom_fields_json(record.custom_fields)
        if record.status:
            ticket["status"] = record.status
        return _ticket_to_record(self.client.post(ZendeskClient.TICKETS, json={"ticket": ticket})["ticket"])

    def get_record(self, record_id: str) -> Record:
        record = _ticket_to_record(self.client.get(ZendeskClient.TICKET.format(id=record_id))["ticket"])
        if record.status != "closed":
            return record
        # A merge closes the source ticket and says where it went only in a comment (S8).
        for comment in reversed(self.list_comments(record_id)):
            match = MERGED_INTO_RE.search(comment.body)
            if match:
                return dataclasses.replace(record, merged_into_id=match.group(1))
        return record

    def update_record(self, record_id: str, changes: RecordChanges) -> Record:
        ticket: dict[str, Any] = dict(changes.extra)
        if changes.status:
            ticket["status"] = changes.status
        if changes.assignee_id:
            ticket["assignee_id"] = int(changes.assignee_id)
        if changes.add_tags:
            ticket["additional_tags"] = list(changes.add_tags)
        if changes.comment:
            ticket["comment"] = self._comment_json(changes.comment)
        if changes.custom_fields:
            ticket["custom_fields"] = _custom_fields_json(changes.custom_fields)
        body = self.client.put(ZendeskClient.TICKET.format(id=record_id), json={"ticket": ticket})
        return _ticket_to_record(body["ticket"])

    def list_comments(self, record_id: str) -> list[Comment]:
        comments: list[Comment] = []
        page: str | None = ZendeskClient.TICKET_COMMENTS.format(id=record_id)
        while page:
            body = self.client.get(page)
            comments += [_comment_from_json(comment) for comment in body["comments"]]
            page = body.get("next_page")
        return comments

    def session_type_tag(self, session_type_name: str) -> str:
        # Zendesk tags are lowercase words joined by `_`: "Voice Inbound (IVR)" -> "voice_inbound_ivr".
        return "_".join(re.findall(r"[a-z0-9]+", session_type_name.lower()))

    def ensure_custom_fields(self, specs: Sequence[CustomFieldSpec]) -> dict[str, str]:
        existing = {field["title"]: str(field["id"]) for field in self._ticket_fields()}
        ids: dict[str, str] = {}
        for spec in specs:
            if spec.title in existing:
                ids[spec.key] = existing[spec.title]
                continue
            field = {"type": FIELD_TYPES[spec.type], "title": spec.title, "description": f"CRM Bridge: {spec.key}"}
            created = self.client.post(ZendeskClient.TICKET_FIELDS, json={"ticket_field": field})["ticket_field"]
            ids[spec.key] = existing[spec.title] = str(created["id"])
        return ids

    def existing_custom_fields(self) -> frozenset[str]:
        return frozenset(str(field["id"]) for field in self._ticket_fields() if field.get("active", True))

    def _ticket_fields(self) -> list[dict[str, Any]]:
        fields: list[dict[str, Any]] = []
        page: str | None = ZendeskClient.TICKET_FIELDS
        while page:
            body = self.client.get(page)
            fields += body["ticket_fields"]
            page = body.get("next_page")
        return fields
