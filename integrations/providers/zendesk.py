"""Zendesk Support API v2 (shapes: shared/crm-api-shapes.md §1)."""

import base64
import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests

from integrations.exceptions import CrmNotFound
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
    CommentPage,
    ImportedComment,
    ImportedTicket,
    ImportedTicketComment,
    ImportedUser,
    ImportPage,
    TicketImportSource,
)
from integrations.providers.phones import national_number, phone_match, rank_contacts
from integrations.ratelimit import WindowReading, header_int

# Zendesk's field type for each of the product's custom field types (ticket_fields `type`).
FIELD_TYPES = {
    CustomFieldType.TEXT: "text",
    CustomFieldType.INTEGER: "integer",
    CustomFieldType.DECIMAL: "decimal",
    CustomFieldType.BOOLEAN: "checkbox",
}
# Zendesk's own comment on a ticket merged into another (the API has no field for it).
MERGED_INTO_RE = re.compile(r"merged into request #(\d+)", re.IGNORECASE)


class ZendeskClient(ConnectionClient):
    """Basic auth with an API token: `{email}/token:{api_token}`."""

    USERS_SEARCH = "api/v2/users/search.json"
    USERS = "api/v2/users.json"
    TICKETS = "api/v2/tickets.json"
    TICKET = "api/v2/tickets/{id}.json"
    TICKET_COMMENTS = "api/v2/tickets/{id}/comments.json"
    USER_REQUESTED_TICKETS = "api/v2/users/{id}/tickets/requested.json"
    TICKET_FIELDS = "api/v2/ticket_fields.json"
    UPLOADS = "api/v2/uploads.json"
    USER = "api/v2/users/{id}.json"
    # Talk Partner Edition (crm-api-shapes.md §1.8): opens the ticket in the agent's browser.
    DISPLAY_TICKET = "api/v2/channels/voice/agents/{agent_id}/tickets/{ticket_id}/display.json"

    def __init__(self, settings: ConnectionSettings, rate_gate: RateGate | None) -> None:
        super().__init__(settings, rate_gate)
        credentials = f"{settings.config.get('email', '')}/token:{settings.secrets.get('api_token', '')}"
        self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode()

    def authorize(self, request: requests.PreparedRequest) -> None:
        request.headers["Authorization"] = self._authorization

    def endpoint_class(self, method: str, path: str) -> str | None:
        # Ticket updates have a budget of their own beside the account's (crm-api-shapes.md §1.2).
        return TICKETS_UPDATE if method == "PUT" and TICKET_PATH_RE.fullmatch(path.lstrip("/")) else None

    def window_readings(self, response: requests.Response) -> Iterable[tuple[str | None, WindowReading]]:
        return zendesk_window_readings(response.headers)


# The endpoint class of PUT /api/v2/tickets/{id}.json and the header that counts it.
TICKETS_UPDATE = "tickets-update"
TICKET_PATH_RE = re.compile(r"api/v2/tickets/\d+\.json")
ENDPOINT_LIMIT_RE = re.compile(r"total=(\d+);\s*remaining=(\d+);\s*resets=(\d+)")


def zendesk_window_readings(headers: Mapping[str, str]) -> list[tuple[str | None, WindowReading]]:
    """The account's window from `ratelimit-*` (2024) or `x-rate-limit*`, and the ticket updates' own
    from `zendesk-rate-limit-tickets-update: total=20; remaining=19; resets=59`."""
    readings: list[tuple[str | None, WindowReading]] = []
    limit = header_int(headers.get("ratelimit-limit")) or header_int(headers.get("x-rate-limit"))
    remaining = header_int(headers.get("ratelimit-remaining"))
    if remaining is None:
        remaining = header_int(headers.get("x-rate-limit-remaining"))
    if limit is not None and remaining is not None:
        reset = header_int(headers.get("ratelimit-reset"))
        readings.append((None, WindowReading(limit, remaining, None if reset is None else float(reset))))
    if match := ENDPOINT_LIMIT_RE.search(headers.get(f"zendesk-rate-limit-{TICKETS_UPDATE}", "")):
        total, left, resets = (int(group) for group in match.groups())
        readings.append((TICKETS_UPDATE, WindowReading(total, left, float(resets))))
    return readings


def _user_to_contact(user: dict[str, Any]) -> Contact:
    return Contact(
        id=str(user["id"]),
        name=user.get("name") or "",
        phone=user.get("phone"),
        email=user.get("email"),
        created_at=user.get("created_at"),
        external_id=user.get("external_id"),
        fields=dict(user.get("user_fields") or {}),
    )


def _ticket_to_record(ticket: dict[str, Any], solved_at: str | None = None) -> Record:
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
        closed_at=solved_at,
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


class ZendeskProvider(CrmProvider, TicketImportSource):
    kind = "zendesk"
    base_url_help = "Your Zendesk address, e.g. https://acme.zendesk.com"
    settings_spec = (
        SettingSpec(
            "email",
            "API user's email",
            "Zendesk authenticates as {email}/token:{API token}: the email of the agent or admin the token acts as.",
            email=True,
        ),
        SettingSpec("api_token", "API token", "Admin Center > Apps and integrations > Zendesk API.", secret=True),
    )
    # No user statuses over the public API for an integration: status sync is not offered.
    capabilities = frozenset({Capability.RECORDS, Capability.CUSTOM_FIELDS, Capability.TAGS, Capability.TICKET_IMPORT})
    record_web_path = "{base}/agent/tickets/{id}"
    contact_web_path = "{base}/agent/users/{id}"
    open_statuses: ClassVar[frozenset[str]] = frozenset({"new", "open", "pending", "hold"})
    default_open_status = "open"
    # A closed ticket refuses every update (422); a solved one can still be reopened.
    immutable_statuses: ClassVar[frozenset[str]] = frozenset({"closed"})
    resolved_status = "solved"
    supports_screen_pop_display: ClassVar[bool] = True

    def __init__(self, settings: ConnectionSettings, *, rate_gate: RateGate | None = None) -> None:
        super().__init__(settings, rate_gate=rate_gate)
        self.client = ZendeskClient(self.settings, self.rate_gate)

    def get_contact(self, contact_id: str) -> Contact:
        if not contact_id.isdigit():
            raise CrmNotFound(f"Zendesk user ids are numbers, not {contact_id!r}", status_code=404)
        return _user_to_contact(self.client.get(ZendeskClient.USER.format(id=contact_id))["user"])

    def display_record(self, agent_id: str, record_id: str) -> None:
        # No body; 200 with an empty body once delivered, 404 for an unknown agent or ticket.
        self.client.request(
            "POST", ZendeskClient.DISPLAY_TICKET.format(agent_id=int(agent_id), ticket_id=int(record_id))
        )

    def test_connection(self) -> None:
        self.client.get(ZendeskClient.USERS, params={"page[size]": 1})

    def find_contacts(
        self, *, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> list[Contact]:
        if external_id:
            users = self.client.get(ZendeskClient.USERS_SEARCH, params={"external_id": external_id})["users"]
            return [_user_to_contact(user) for user in users]
        if phone:
            return self._find_by_phone(phone)
        if email:
            query = f"role:end-user email:{email}"
        else:
            return []
        users = self.client.get(ZendeskClient.USERS_SEARCH, params={"query": query})["users"]
        contacts = [_user_to_contact(user) for user in users]
        return sorted(contacts, key=lambda contact: contact.created_at or "", reverse=True)

    def _find_by_phone(self, phone: str) -> list[Contact]:
        """End users whose stored phone is the caller's number in any format, exact ones first.

        Zendesk's search compares digits and `*` matches any leading ones (developer.zendesk.com,
        "Retrieving the Zendesk user id of a caller"): searching the national number finds
        `(415) 555-0100` and `4155550100`, which the full E.164 digits would miss. The candidates
        are then parsed, so another country's number with the same last digits is not taken.
        """
        query = f"role:end-user phone:*{national_number(phone)}"
        users = self.client.get(ZendeskClient.USERS_SEARCH, params={"query": query})["users"]
        return rank_contacts((phone_match(user.get("phone"), phone), _user_to_contact(user)) for user in users)

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
        # The ticket has no solve time of its own; its metric set does. Sideloaded on the same read
        # (developer.zendesk.com side-loading: tickets support `metric_sets`), so R2 costs no
        # request per ticket. `next_page` keeps the include.
        records: list[Record] = []
        page: str | None = ZendeskClient.USER_REQUESTED_TICKETS.format(id=contact_id)
        params: dict[str, Any] | None = {"include": "metric_sets"}
        while page:
            body = self.client.get(page, params=params)
            solved = {str(item.get("ticket_id")): item.get("solved_at") for item in body.get("metric_sets") or ()}
            records += [_ticket_to_record(ticket, solved.get(str(ticket["id"]))) for ticket in body["tickets"]]
            page = body.get("next_page")
            params = None
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

    # -- Import for QA search (SPEC T1-T2; crm-api-shapes.md §1.3, §1.4, §1.7) ----------------------
    #
    # Agents come from the users list filtered by role (not incremental: agents are few), tickets
    # from the incremental cursor export with the users sideloaded (requester details), comments
    # from the incremental ticket event export with comment events (up to 1,000 events a request,
    # instead of one request per ticket; both exports share Zendesk's 10 requests/min for them).

    INCREMENTAL_TICKETS = "api/v2/incremental/tickets/cursor.json"
    INCREMENTAL_TICKET_EVENTS = "api/v2/incremental/ticket_events.json"
    # The comment child events (a voice call's comment is its own type, with the recording).
    # Voice comments: Talk ("VoiceComment") and calls partner integrations log ("TpeVoiceComment").
    COMMENT_EVENT_TYPES: ClassVar[frozenset[str]] = frozenset({"Comment", "VoiceComment", "TpeVoiceComment"})
    comments_in_bulk = True
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

    def iter_comments(self, *, cursor: str | None, since: datetime) -> Iterator[CommentPage]:
        """Comment events since the cursor (a unix time: the time-based export has no opaque cursor)."""
        start = int(cursor) if cursor and cursor.isdigit() else int(since.timestamp())
        while True:
            body = self.client.get(
                self.INCREMENTAL_TICKET_EVENTS, params={"start_time": start, "include": "comment_events"}
            )
            comments = [
                ImportedTicketComment(
                    ticket_crm_id=str(event["ticket_id"]),
                    # A child event may leave its time to the audit it belongs to.
                    comment=imported_comment({"created_at": event.get("created_at"), **child}),
                )
                for event in body.get("ticket_events") or ()
                for child in event.get("child_events") or ()
                if child.get("event_type") in self.COMMENT_EVENT_TYPES
            ]
            end_time = int(body.get("end_time") or start)
            done = bool(body.get("end_of_stream")) or not body.get("next_page")
            # A page ends with every event of its last second, so when a whole page is one second
            # (no progress) the next starts after it; otherwise at end_time, as Zendesk asks.
            following = end_time + 1 if end_time <= start else end_time
            # Every comment before second `end_time` is read (that second itself may go on next page).
            yield CommentPage(
                items=comments,
                cursor=str(following),
                complete_until=datetime.fromtimestamp(end_time, UTC) if not done else datetime.now(UTC),
            )
            if done:
                return
            start = following

    def load_comments(self, tickets: list[ImportedTicket]) -> list[ImportedTicket]:
        loaded = []
        for ticket in tickets:
            comments: list[ImportedComment] = []
            page: str | None = ZendeskClient.TICKET_COMMENTS.format(id=ticket.crm_id)
            while page:
                body = self.client.get(page)
                comments += [imported_comment(comment) for comment in body["comments"]]
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
            # A ticket has no language of its own: its requester's locale is the language they write in.
            language=requester.get("locale") or None,
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


# Voice comments and where their `data` keeps the recording and the transcript. A Talk (or Tickets
# API) call is a VoiceComment with `transcription_text`; a call logged by a partner integration
# through Talk Partner Edition is a TpeVoiceComment whose `data` holds the call record's fields
# (`recording_url`, `transcript`), with "" for a recording the call has not got.
VOICE_TRANSCRIPT_KEYS = {
    "VoiceComment": ("transcription_text",),
    "TpeVoiceComment": ("transcript", "transcription_text"),
}


def imported_comment(comment: dict[str, Any]) -> ImportedComment:
    author = comment.get("author_id")
    raw_data = comment.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    transcript_keys = VOICE_TRANSCRIPT_KEYS.get(str(comment.get("type")))
    voice = transcript_keys is not None
    transcript = next((str(data[key]) for key in transcript_keys or () if data.get(key)), None)
    return ImportedComment(
        crm_id=str(comment.get("id")),
        # Zendesk writes -1 (or nothing) as the author of system-made entries: no user behind them.
        author_id=None if author in (None, -1, "-1") else str(author),
        body=comment.get("plain_body") or comment.get("body") or "",
        public=bool(comment.get("public")),
        created_at=_time(comment.get("created_at")),
        recording_url=(str(data.get("recording_url") or "") or None) if voice else None,
        transcript=transcript,
    )
