"""Freshdesk API v2 (shapes: shared/crm-api-shapes.md §4, developers.freshdesk.com/api).

Records are tickets (status 2 open, 3 pending, 4 resolved, 5 closed); the first comment is the
ticket's description, later ones private notes; files go up as multipart attachments of a note.
Custom fields are `cf_` ticket fields made through the ticket fields API; the session id is kept
in one of them, and a retried create finds its ticket with the ticket search. Contacts are found
with the contact search over phone and mobile (the query wrapped in double quotes, string values
in single quotes), then matched on E.164. Tags are kept as the session type is named (R8). For QA
search (T1-T2) the agents are listed, tickets changed since the cursor come from the ticket list
with their requester, stats and description embedded, and each kept ticket's conversations from
its own list.
"""

import base64
import dataclasses
import html
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from integrations.exceptions import CrmRequestError
from integrations.http import RateGate
from integrations.providers.base import (
    Agent,
    Attachment,
    Capability,
    Comment,
    ConnectionClient,
    ConnectionSettings,
    Contact,
    CrmProvider,
    CustomFieldSpec,
    CustomFieldType,
    NewRecord,
    Record,
    RecordChanges,
    SettingSpec,
)
from integrations.providers.importing import (
    OTHER_CHANNEL,
    ImportedComment,
    ImportedTicket,
    ImportedUser,
    ImportPage,
    TicketImportSource,
)
from integrations.providers.phones import best_match, national_number, rank_contacts
from integrations.ratelimit import WindowReading, header_int

Json = dict[str, Any]

# Freshdesk's ticket statuses; custom statuses have other numbers and keep them as their name.
STATUS_NAMES = {2: "open", 3: "pending", 4: "resolved", 5: "closed"}
STATUS_NUMBERS = {name: number for number, name in STATUS_NAMES.items()}
# Ticket source 3: Phone (the product's sessions come from the contact center).
SOURCE_PHONE = 3
PRIORITY_LOW = 1
# The ticket field (single-line text) the session id is kept in, as the API names it.
DEFAULT_SESSION_FIELD_LABEL = "CRM Bridge session id"
# Freshdesk's custom ticket field type for each product field type (ticket_fields `type`).
FIELD_TYPES = {
    CustomFieldType.TEXT: "custom_text",
    CustomFieldType.INTEGER: "custom_number",
    CustomFieldType.DECIMAL: "custom_decimal",
    CustomFieldType.BOOLEAN: "custom_checkbox",
}
PAGE_SIZE = 100
# The ticket list serves no page past the 300th; an import reading more lists again from the last
# ticket read (`updated_since` its update time).
MAX_LIST_PAGES = 300
# How far back a contact's tickets are listed (the list defaults to the last 30 days otherwise).
CONTACT_TICKETS_DAYS = 365


def field_name(label: str) -> str:
    """The API name Freshdesk gives a custom field from its label: "Call duration" -> "cf_call_duration"."""
    return "cf_" + "_".join(re.findall(r"[a-z0-9]+", label.lower()))


def search_literal(value: str) -> str:
    """A quoted string value for the search query language (single quotes, none inside)."""
    return "'" + value.replace("'", "").replace('"', "") + "'"


def _text(body_html: str) -> str:
    return html.escape(body_html).replace("\n", "<br>")


class FreshdeskClient(ConnectionClient):
    """`Authorization: Basic base64("<API key>:X")`; rate-limit headers watched on every answer."""

    AGENTS_ME = "api/v2/agents/me"
    AGENTS = "api/v2/agents"
    CONTACTS = "api/v2/contacts"
    SEARCH_CONTACTS = "api/v2/search/contacts"
    SEARCH_TICKETS = "api/v2/search/tickets"
    TICKETS = "api/v2/tickets"
    TICKET = "api/v2/tickets/{id}"
    TICKET_NOTES = "api/v2/tickets/{id}/notes"
    TICKET_CONVERSATIONS = "api/v2/tickets/{id}/conversations"
    TICKET_FIELDS = "api/v2/ticket_fields"
    ADMIN_TICKET_FIELDS = "api/v2/admin/ticket_fields"

    def __init__(self, settings: ConnectionSettings, rate_gate: RateGate | None) -> None:
        super().__init__(settings, rate_gate)
        credentials = f"{settings.secrets.get('api_token', '')}:X"
        self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode()

    def authorize(self, request: requests.PreparedRequest) -> None:
        # Attachment URLs may point at a file store: the API key goes only to the helpdesk.
        if (request.url or "").startswith(self.base_url):
            request.headers["Authorization"] = self._authorization

    def window_readings(self, response: requests.Response) -> Iterable[tuple[str | None, WindowReading]]:
        # Account-wide, per minute; Freshdesk says when it resets only on a 429 (Retry-After).
        limit = header_int(response.headers.get("X-RateLimit-Total"))
        remaining = header_int(response.headers.get("X-RateLimit-Remaining"))
        if limit is None or remaining is None:
            return ()
        return ((None, WindowReading(limit, remaining)),)

    def search(self, path: str, query: str) -> list[Json]:
        """Every result of a search (30 a page, pages 1-10); the whole query in double quotes."""
        results: list[Json] = []
        for page in range(1, 11):
            body = self.get(path, params={"query": f'"{query}"', "page": page})
            found = body.get("results") or []
            results += found
            if len(found) < 30 or len(results) >= int(body.get("total") or 0):
                break
        return results


def _contact(contact: Json) -> Contact:
    return Contact(
        id=str(contact["id"]),
        name=contact.get("name") or "",
        phone=contact.get("phone") or contact.get("mobile"),
        email=contact.get("email"),
        created_at=contact.get("created_at"),
        external_id=contact.get("unique_external_id"),
    )


def status_name(number: Any) -> str:
    return STATUS_NAMES.get(number, str(number)) if isinstance(number, int) else str(number or "")


class FreshdeskProvider(CrmProvider, TicketImportSource):
    kind = "freshdesk"
    base_url_help = "your helpdesk's domain, e.g. https://acme.freshdesk.com"
    settings_spec = (
        SettingSpec(
            "api_token",
            "API key",
            "Profile settings > Your API Key, of an agent allowed to manage tickets, contacts and (for "
            "Create custom fields) ticket fields.",
            secret=True,
        ),
    )
    capabilities = frozenset({Capability.RECORDS, Capability.CUSTOM_FIELDS, Capability.TAGS, Capability.TICKET_IMPORT})
    record_web_path = "{base}/a/tickets/{id}"
    contact_web_path = "{base}/a/contacts/{id}"
    open_statuses: ClassVar[frozenset[str]] = frozenset({"open", "pending"})
    default_open_status = "open"
    resolved_status = "resolved"

    def __init__(self, settings: ConnectionSettings, *, rate_gate: RateGate | None = None) -> None:
        super().__init__(settings, rate_gate=rate_gate)
        self.client = FreshdeskClient(self.settings, self.rate_gate)

    @property
    def session_field(self) -> str:
        return str(self.settings.config.get("session_field") or field_name(DEFAULT_SESSION_FIELD_LABEL))

    def test_connection(self) -> None:
        self.client.get(FreshdeskClient.AGENTS_ME)

    # -- Contacts and agents ---------------------------------------------------------------------

    def find_contacts(
        self, *, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> list[Contact]:
        if external_id:
            found = self.client.get(FreshdeskClient.CONTACTS, params={"unique_external_id": external_id})
        elif email:
            found = self.client.get(FreshdeskClient.CONTACTS, params={"email": email})
        elif phone:
            # Stored as typed: search the E.164 form and the national digits, then compare in E.164.
            values = dict.fromkeys((phone, national_number(phone)))
            query = " OR ".join(f"{name}:{search_literal(value)}" for value in values for name in ("phone", "mobile"))
            candidates = self.client.search(FreshdeskClient.SEARCH_CONTACTS, query)
            # Only the caller's number, exact ones first, newest first within each (one phone matcher).
            return rank_contacts(
                (best_match((item.get("phone"), item.get("mobile")), phone), _contact(item)) for item in candidates
            )
        else:
            return []
        contacts = [_contact(item) for item in found]
        return sorted(contacts, key=lambda contact: contact.created_at or "", reverse=True)

    def create_contact(
        self, *, name: str, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> Contact:
        contact: Json = {"name": name or phone or email or external_id or "Unknown"}
        if phone:
            contact["phone"] = phone
        if email:
            contact["email"] = email
        if external_id:
            contact["unique_external_id"] = external_id
        if not (phone or email or external_id):
            # Freshdesk wants one identifier; a caller without any (an anonymous chat) gets one of ours.
            contact["unique_external_id"] = f"crm-bridge:{uuid.uuid4()}"
        return _contact(self.client.post(FreshdeskClient.CONTACTS, json=contact))

    def find_agent(self, *, email: str) -> Agent | None:
        for agent in self.client.get(FreshdeskClient.AGENTS, params={"email": email}) or ():
            contact = agent.get("contact") or {}
            if (contact.get("email") or "").lower() == email.lower():
                return Agent(id=str(agent["id"]), email=contact["email"], name=contact.get("name") or "")
        return None

    # -- Records (tickets) -----------------------------------------------------------------------

    def _record(self, ticket: Json) -> Record:
        def optional_id(value: Any) -> str | None:
            return None if value is None else str(value)

        custom = dict(ticket.get("custom_fields") or {})
        status = status_name(ticket.get("status"))
        # `stats` comes only with `include=stats` (list and view, not search): without it the
        # record has no known close time, and R2 does not take it as recently closed.
        stats = ticket.get("stats") or {}
        closed_at = None if status in self.open_statuses else stats.get("resolved_at") or stats.get("closed_at")
        return Record(
            id=str(ticket["id"]),
            subject=ticket.get("subject") or "",
            status=status,
            external_id=custom.get(self.session_field),
            requester_id=optional_id(ticket.get("requester_id")),
            assignee_id=optional_id(ticket.get("responder_id")),
            tags=tuple(ticket.get("tags") or ()),
            url=f"{self.client.base_url.rstrip('/')}/a/tickets/{ticket['id']}",
            created_at=ticket.get("created_at"),
            updated_at=ticket.get("updated_at"),
            closed_at=closed_at,
            custom_fields=custom,
        )

    def find_records_by_external_id(self, external_id: str) -> list[Record]:
        query = f"{self.session_field}:{search_literal(external_id)}"
        return [self._record(ticket) for ticket in self.client.search(FreshdeskClient.SEARCH_TICKETS, query)]

    def list_contact_records(self, contact_id: str) -> list[Record]:
        since = (datetime.now(UTC) - timedelta(days=CONTACT_TICKETS_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
        params: Json = {
            "requester_id": contact_id,
            "updated_since": since,
            "order_by": "updated_at",
            "order_type": "desc",
            "per_page": PAGE_SIZE,
            # When each was resolved or closed (stats.resolved_at, stats.closed_at), for R2.
            "include": "stats",
        }
        records: list[Record] = []
        for page in range(1, 301):
            tickets = self.client.get(FreshdeskClient.TICKETS, params={**params, "page": page}) or []
            records += [self._record(ticket) for ticket in tickets]
            if len(tickets) < PAGE_SIZE:
                break
        return records

    def create_record(self, record: NewRecord) -> Record:
        ticket: Json = {
            "subject": record.subject,
            "description": _text(record.first_comment.body),
            "requester_id": int(record.requester_id),
            "status": STATUS_NUMBERS.get(record.status or self.default_open_status, 2),
            "priority": PRIORITY_LOW,
            "source": SOURCE_PHONE,
            "tags": list(record.tags),
            "custom_fields": {**dict(record.custom_fields), self.session_field: record.external_id},
        }
        if record.assignee_id:
            ticket["responder_id"] = int(record.assignee_id)
        created = self._record(self.client.post(FreshdeskClient.TICKETS, json=ticket))
        if record.first_comment.attachments:
            self._add_note(created.id, Comment(body="Attachments", attachments=record.first_comment.attachments))
        return created

    def get_record(self, record_id: str) -> Record:
        return self._record(self.client.get(FreshdeskClient.TICKET.format(id=quote(record_id, safe=""))))

    def update_record(self, record_id: str, changes: RecordChanges) -> Record:
        path = FreshdeskClient.TICKET.format(id=quote(record_id, safe=""))
        ticket: Json = dict(changes.extra)
        if changes.status:
            ticket["status"] = STATUS_NUMBERS.get(changes.status, changes.status)
        if changes.assignee_id:
            ticket["responder_id"] = int(changes.assignee_id)
        if changes.custom_fields:
            ticket["custom_fields"] = dict(changes.custom_fields)
        latest: Json | None = None
        if changes.add_tags:
            # `tags` replaces the ticket's list: the new ones are added to what it has.
            latest = self.client.get(path)
            current = list(latest.get("tags") or [])
            ticket["tags"] = current + [tag for tag in changes.add_tags if tag not in current]
        if ticket:
            latest = self.client.put(path, json=ticket)
        if changes.comment:
            self._add_note(record_id, changes.comment)
        return self._record(latest) if latest is not None else self.get_record(record_id)

    def _add_note(self, record_id: str, comment: Comment) -> None:
        path = FreshdeskClient.TICKET_NOTES.format(id=quote(record_id, safe=""))
        # Private: an internal entry agents see and the requester does not.
        if not comment.attachments:
            self.client.post(path, json={"body": _text(comment.body), "private": not comment.public})
            return
        files = [
            ("attachments[]", (attachment.filename, attachment.content, attachment.content_type))
            for attachment in comment.attachments
        ]
        self.client.request(
            "POST",
            path,
            data={"body": _text(comment.body), "private": "false" if comment.public else "true"},
            files=files,
        )

    def list_comments(self, record_id: str) -> list[Comment]:
        ticket = self.client.get(FreshdeskClient.TICKET.format(id=quote(record_id, safe="")))
        comments = [Comment(body=ticket.get("description_text") or "")]
        path: str | None = FreshdeskClient.TICKET_CONVERSATIONS.format(id=quote(record_id, safe=""))
        page = 1
        while path:
            items = self.client.get(path, params={"page": page, "per_page": PAGE_SIZE}) or []
            for item in items:
                attachments = tuple(
                    Attachment(
                        filename=file.get("name") or "",
                        content_type=file.get("content_type") or "application/octet-stream",
                        url=file.get("attachment_url"),
                    )
                    for file in item.get("attachments") or ()
                )
                comments.append(
                    Comment(body=item.get("body_text") or "", public=not item.get("private"), attachments=attachments)
                )
            page += 1
            path = path if len(items) == PAGE_SIZE else None
        return comments

    def session_type_tag(self, session_type_name: str) -> str:
        # Freshdesk keeps the session type as it is named: "Messaging Inbound (Web Chat)" (R8).
        return session_type_name

    # -- Custom fields (F1: ticket fields API) ----------------------------------------------------

    def ensure_custom_fields(self, specs: Sequence[CustomFieldSpec]) -> dict[str, str]:
        fields = self._ticket_fields()
        by_label = {str(field.get("label") or ""): str(field["name"]) for field in fields}
        names = {str(field["name"]) for field in fields}
        ids: dict[str, str] = {}
        wanted = [(spec.key, spec.title, FIELD_TYPES[spec.type]) for spec in specs]
        if self.session_field not in names:
            wanted.append(("", DEFAULT_SESSION_FIELD_LABEL, "custom_text"))
        for key, label, field_type in wanted:
            name = by_label.get(label)
            if name is None:
                body = {
                    "label": label,
                    "label_for_customers": label,
                    "type": field_type,
                    "customers_can_edit": False,
                    "displayed_to_customers": False,
                    "required_for_closure": False,
                    "required_for_agents": False,
                    "required_for_customers": False,
                }
                name = str(self.client.post(FreshdeskClient.ADMIN_TICKET_FIELDS, json=body)["name"])
                by_label[label] = name
            if key:
                ids[key] = name
        return ids

    def existing_custom_fields(self) -> frozenset[str]:
        return frozenset(str(field["name"]) for field in self._ticket_fields() if not field.get("default"))

    def _ticket_fields(self) -> list[Json]:
        return list(self.client.get(FreshdeskClient.TICKET_FIELDS) or [])

    # -- Import for QA search (SPEC T1-T2) -------------------------------------------------------
    #
    # Requests for N tickets: N/100 ticket lists (any status: a reopened ticket must leave QA
    # search), the requester, stats and description embedded (extra rate-limit credits, no extra
    # requests), and one conversations list per kept ticket (100 conversations a page). The
    # cursor is the `updated_at` of the last ticket saved; the next run lists `updated_since` it,
    # so a ticket changed in that second is not missed (the few read twice are upserted).

    SOLVED_STATUSES: ClassVar[frozenset[int]] = frozenset({4, 5})
    # Freshdesk ticket sources and the QA channels (SPEC T5) they are filed under; 2 (portal), 5
    # (Twitter), 9 (feedback widget) and custom sources are "other".
    SOURCES: ClassVar[dict[int, str]] = {
        1: "email",
        3: "voice",
        4: "forum",
        6: "facebook",
        7: "chat",
        8: "in_app_messaging",
        10: "email",
        13: "whatsapp",
    }
    TICKET_INCLUDES = "description,requester,stats"

    def iter_users(self, *, cursor: str | None, since: datetime) -> Iterator[ImportPage[ImportedUser]]:
        """Every agent of the helpdesk, 100 per page (agents are few: the list is read whole each run)."""
        for page in range(1, MAX_LIST_PAGES + 1):
            agents = self.client.get(FreshdeskClient.AGENTS, params={"per_page": PAGE_SIZE, "page": page}) or []
            yield ImportPage(items=[imported_agent(agent) for agent in agents], cursor="")
            if len(agents) < PAGE_SIZE:
                return

    def iter_tickets(self, *, cursor: str | None, since: datetime) -> Iterator[ImportPage[ImportedTicket]]:
        """Tickets updated since the cursor (or `since`), oldest change first, 100 a page."""
        start = cursor or since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        while True:
            params: Json = {
                "updated_since": start,
                "include": self.TICKET_INCLUDES,
                "order_by": "updated_at",
                "order_type": "asc",
                "per_page": PAGE_SIZE,
            }
            last = start
            for page in range(1, MAX_LIST_PAGES + 1):
                tickets = self.client.get(FreshdeskClient.TICKETS, params={**params, "page": page}) or []
                if tickets:
                    last = str(tickets[-1].get("updated_at") or last)
                yield ImportPage(items=[self.imported_ticket(ticket) for ticket in tickets], cursor=last)
                if len(tickets) < PAGE_SIZE:
                    return
            # Page 300 was full: list again from the last ticket read.
            if last == start:
                raise CrmRequestError(
                    f"Freshdesk tickets: more than {MAX_LIST_PAGES * PAGE_SIZE} updated at {start}", status_code=400
                )
            start = last

    def load_comments(self, tickets: list[ImportedTicket]) -> list[ImportedTicket]:
        loaded = []
        for ticket in tickets:
            path = FreshdeskClient.TICKET_CONVERSATIONS.format(id=quote(ticket.crm_id, safe=""))
            comments: list[ImportedComment] = []
            for page in range(1, MAX_LIST_PAGES + 1):
                items = self.client.get(path, params={"page": page, "per_page": PAGE_SIZE}) or []
                comments += [imported_conversation(item) for item in items]
                if len(items) < PAGE_SIZE:
                    break
            loaded.append(dataclasses.replace(ticket, comments=tuple(comments)))
        return loaded

    def imported_ticket(self, ticket: Json) -> ImportedTicket:
        number = ticket.get("status")
        solved = number in self.SOLVED_STATUSES
        stats = ticket.get("stats") or {}
        requester = ticket.get("requester") or {}
        updated_at = _time(ticket.get("updated_at")) or datetime.now(UTC)
        source = ticket.get("source")
        return ImportedTicket(
            crm_id=str(ticket["id"]),
            subject=ticket.get("subject") or "",
            description=ticket.get("description_text") or "",
            status=status_name(number),
            is_solved=solved,
            channel=self.SOURCES.get(source, OTHER_CHANNEL) if isinstance(source, int) else OTHER_CHANNEL,
            assignee_id=_optional_id(ticket.get("responder_id")),
            requester_id=_optional_id(ticket.get("requester_id")),
            requester_name=requester.get("name") or "",
            requester_email=requester.get("email"),
            requester_phone=requester.get("phone") or requester.get("mobile"),
            tags=tuple(ticket.get("tags") or ()),
            created_at=_time(ticket.get("created_at")) or updated_at,
            updated_at=updated_at,
            solved_at=(_time(stats.get("resolved_at")) or _time(stats.get("closed_at")) or updated_at)
            if solved
            else None,
            web_url=self.web_url(self.settings.base_url, record_id=str(ticket["id"])),
        )


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _optional_id(value: Any) -> str | None:
    return None if value is None else str(value)


def imported_agent(agent: Json) -> ImportedUser:
    contact = agent.get("contact") or {}
    # Freshdesk keeps one name; its first word is taken as the first name, the rest as the last.
    first, _, last = (contact.get("name") or "").strip().partition(" ")
    return ImportedUser(
        crm_id=str(agent["id"]),
        first_name=first,
        last_name=last.strip(),
        email=contact.get("email") or None,
        # A deleted agent leaves the list (becoming a contact); a deactivated one stays, marked.
        is_active=not agent.get("deactivated"),
        is_agent=True,
        updated_at=_time(agent.get("updated_at")),
    )


def imported_conversation(item: Json) -> ImportedComment:
    """A reply or note; `user_id` is the agent or contact who wrote it (none: no user information)."""
    return ImportedComment(
        crm_id=str(item.get("id")),
        author_id=_optional_id(item.get("user_id")),
        body=item.get("body_text") or "",
        public=not item.get("private"),
        created_at=_time(item.get("created_at")),
    )
