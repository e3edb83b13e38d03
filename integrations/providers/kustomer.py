"""Kustomer REST v1 (shapes: shared/crm-api-shapes.md §2, developer.kustomer.com).

Records are conversations; the product's comments are internal notes on them; custom fields are
conversation custom attributes, named in camelCase with Kustomer's type suffix and defined through
the metadata API. Agent statuses are routing statuses, set on the agent's active work session.
"""

import re
import time
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from integrations.exceptions import CrmNotFound, CrmRequestError
from integrations.http import RateGate, parse_retry_after
from integrations.providers.base import (
    Agent,
    Attachment,
    Capability,
    Comment,
    ConnectionClient,
    ConnectionSettings,
    Contact,
    CrmProvider,
    CrmUserStatus,
    CustomFieldSpec,
    CustomFieldType,
    NewRecord,
    Record,
    RecordChanges,
    SettingSpec,
)
from integrations.providers.phones import best_match, national_number, rank_contacts

# The name suffix that gives a Kustomer custom attribute its type (crm-api-shapes.md §2.3).
ATTRIBUTE_SUFFIXES = {
    CustomFieldType.TEXT: "Str",
    CustomFieldType.INTEGER: "Num",
    CustomFieldType.DECIMAL: "Num",
    CustomFieldType.BOOLEAN: "Bool",
}
# Kustomer's largest page; fewer round trips when following links.next.
PAGE_SIZE = 100
# An `x-ratelimit-reset` above this is an epoch time, below it a number of seconds to wait.
EPOCH_THRESHOLD = 1_000_000_000
# The name our outbound webhooks carry in Kustomer's settings.
WEBHOOK_NAME = "CRM Bridge"

Json = dict[str, Any]


class KustomerClient(ConnectionClient):
    """`Authorization: Bearer <API key>`, sent only to the Kustomer API (never to an upload URL)."""

    CUSTOMERS = "v1/customers"
    CUSTOMERS_SEARCH = "v1/customers/search"
    CUSTOMER_BY = "v1/customers/{key}={value}"
    CUSTOMER_CONVERSATIONS = "v1/customers/{id}/conversations"
    CONVERSATION = "v1/conversations/{id}"
    CONVERSATION_BY_EXTERNAL_ID = "v1/conversations/externalId={value}"
    CONVERSATION_TAGS = "v1/conversations/{id}/tags"
    CONVERSATION_NOTES = "v1/conversations/{id}/notes"
    ATTACHMENTS = "v1/attachments"
    ATTACHMENT = "v1/attachments/{id}"
    USERS = "v1/users"
    USER = "v1/users/{id}"
    CURRENT_TOKEN = "v1/auth/tokens/current"
    CONVERSATION_METADATA = "v1/metadata/conversation"
    ROUTING_STATUSES = "v1/routing/statuses"
    USER_WORK_SESSIONS = "v1/routing/users/{id}/work-sessions"
    WORK_SESSION = "v1/routing/work-sessions/{id}"
    OUTBOUND_WEBHOOKS = "v1/outbound-webhooks"

    def __init__(self, settings: ConnectionSettings, rate_gate: RateGate | None) -> None:
        super().__init__(settings, rate_gate)
        self._authorization = f"Bearer {settings.secrets.get('api_token', '')}"

    def authorize(self, request: requests.PreparedRequest) -> None:
        # A presigned upload URL (S3 in production) must not receive the API key.
        if (request.url or "").startswith(self.base_url):
            request.headers["Authorization"] = self._authorization

    def retry_after(self, response: requests.Response) -> float:
        # Kustomer's 429 carries `x-ratelimit-reset` (epoch seconds; small values read as seconds)
        # and may carry no Retry-After at all.
        if response.headers.get("Retry-After"):
            return super().retry_after(response)
        reset = response.headers.get("x-ratelimit-reset")
        try:
            value = float(reset) if reset else None
        except ValueError:
            value = None
        if value is None:
            return parse_retry_after(None, now=time.time())
        return max(0.0, value - time.time()) if value > EPOCH_THRESHOLD else max(0.0, value)

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Json]:
        """Every item of a list endpoint, following `links.next` until it is null."""
        page: str | None = path
        page_params: dict[str, Any] | None = {"pageSize": PAGE_SIZE, **(params or {})}
        while page:
            body = self.get(page, params=page_params)
            yield from body.get("data") or ()
            page = (body.get("links") or {}).get("next")
            # links.next already carries the query string.
            page_params = None


def _path_value(value: str) -> str:
    # `+` of an E.164 number and `@` of an email must survive as one path segment.
    return quote(value, safe="")


def _attributes(resource: Json) -> Json:
    attributes: Json = resource.get("attributes") or {}
    return attributes


def _related_id(resource: Json, name: str) -> str | None:
    data = ((resource.get("relationships") or {}).get(name) or {}).get("data")
    return str(data["id"]) if isinstance(data, dict) and data.get("id") is not None else None


def _customer_to_contact(customer: Json) -> Contact:
    attributes = _attributes(customer)
    phones = attributes.get("phones") or []
    emails = attributes.get("emails") or []
    return Contact(
        id=str(customer["id"]),
        name=attributes.get("name") or attributes.get("displayName") or "",
        phone=phones[0].get("phone") if phones else None,
        email=emails[0].get("email") if emails else None,
        created_at=attributes.get("createdAt"),
        external_id=attributes.get("externalId"),
        fields=dict(attributes.get("custom") or {}),
    )


def _user_to_agent(user: Json) -> Agent:
    attributes = _attributes(user)
    return Agent(
        id=str(user["id"]),
        email=attributes.get("email") or "",
        name=attributes.get("displayName") or attributes.get("name") or "",
    )


def _note_to_comment(note: Json, api_url: str) -> Comment:
    attributes = _attributes(note)
    attachments = tuple(
        Attachment(
            filename=item.get("name") or "",
            content_type=item.get("contentType") or "application/octet-stream",
            # The attachment resource: its `links.related` is the download URL.
            url=f"{api_url}{KustomerClient.ATTACHMENT.format(id=item['_id'])}" if item.get("_id") else None,
        )
        for item in attributes.get("attachments") or ()
    )
    return Comment(body=attributes.get("body") or "", public=False, attachments=attachments)


def attribute_name(spec: CustomFieldSpec) -> str:
    """The Kustomer custom attribute for a product field: `call_duration` (INTEGER) -> `callDurationNum`."""
    words = [word for word in re.split(r"[^A-Za-z0-9]+", spec.key) if word]
    camel = words[0].lower() + "".join(word[:1].upper() + word[1:].lower() for word in words[1:]) if words else "field"
    return camel + ATTRIBUTE_SUFFIXES[spec.type]


class KustomerProvider(CrmProvider):
    kind = "kustomer"
    record_web_path = "{base}/app/conversations/{id}"
    contact_web_path = "{base}/app/customers/{id}"

    @classmethod
    def web_base_url(cls, base_url: str) -> str:
        # The API is https://<org>.api.kustomerapp.com; agents work in https://<org>.kustomerapp.com.
        return base_url.rstrip("/").replace(".api.kustomerapp.com", ".kustomerapp.com")

    open_statuses: ClassVar[frozenset[str]] = frozenset({"open"})
    # A done conversation is reopened by a new message or by setting it open again.
    resolved_status = "done"
    # The Kustomer integration posts the caller's number as a note on the conversation (S14).
    posts_phone_number_note: ClassVar[bool] = True
    default_open_status = "open"
    base_url_help = "Your Kustomer API address, e.g. https://acme.api.kustomerapp.com"
    settings_spec = (
        SettingSpec(
            "api_token",
            "API key",
            "Settings > Security > API Keys, with the roles for customers, conversations, notes, metadata, "
            "users and routing.",
            secret=True,
        ),
    )
    capabilities = frozenset(
        {
            Capability.RECORDS,
            Capability.CUSTOM_FIELDS,
            Capability.TAGS,
            Capability.USER_STATUSES,
            Capability.WEBHOOKS,
        }
    )

    def __init__(self, settings: ConnectionSettings, *, rate_gate: RateGate | None = None) -> None:
        super().__init__(settings, rate_gate=rate_gate)
        self.client = KustomerClient(self.settings, self.rate_gate)

    def _conversation_to_record(self, conversation: Json) -> Record:
        attributes = _attributes(conversation)
        assigned = attributes.get("assignedUsers") or []
        self_link = (conversation.get("links") or {}).get("self")
        return Record(
            id=str(conversation["id"]),
            subject=attributes.get("name") or "",
            status=attributes.get("status") or "",
            external_id=attributes.get("externalId"),
            requester_id=_related_id(conversation, "customer"),
            assignee_id=str(assigned[0]) if assigned else None,
            tags=tuple(attributes.get("tags") or ()),
            url=self.client.build_url(self_link) if self_link else None,
            created_at=attributes.get("createdAt"),
            updated_at=attributes.get("updatedAt"),
            # The last time an agent or rule set it done (`lastDone`), else when it ended.
            closed_at=(attributes.get("lastDone") or {}).get("createdAt") or attributes.get("endedAt"),
            custom_fields=dict(attributes.get("custom") or {}),
        )

    def test_connection(self) -> None:
        self.client.get(KustomerClient.CURRENT_TOKEN)

    # -- Contacts --------------------------------------------------------------------------------

    def find_contacts(
        self, *, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> list[Contact]:
        # Identifiers are unique per org in Kustomer, so each lookup finds at most one customer.
        if external_id:
            key, value = "externalId", external_id
        elif phone:
            return self._find_by_phone(phone)
        elif email:
            key, value = "email", email
        else:
            return []
        try:
            body = self.client.get(KustomerClient.CUSTOMER_BY.format(key=key, value=_path_value(value)))
        except CrmNotFound:
            return []
        return [_customer_to_contact(body["data"])]

    def _find_by_phone(self, phone: str) -> list[Contact]:
        """Customers holding the caller's number in any format, exact ones first.

        The identifier lookup finds a phone stored as the caller's E.164 in one request (the
        integration writes E.164, so a repeat caller is found there). A phone an agent typed
        another way is found by the customer search on the national number, in `phones` and
        `sharedPhones`; its candidates are parsed so a near miss (another country) is dropped.
        The search is the second choice because Kustomer limits it to 100 requests a minute
        per API key (crm-api-shapes.md §2.9).
        """
        try:
            body = self.client.get(KustomerClient.CUSTOMER_BY.format(key="phone", value=_path_value(phone)))
        except CrmNotFound:
            body = None
        if body is not None:
            return [_customer_to_contact(body["data"])]
        national = national_number(phone)
        query = {
            "queryContext": "customer",
            "or": [{"customer_phone": {"contains": national}}, {"customer_shared_phone": {"contains": national}}],
        }
        search = f"{KustomerClient.CUSTOMERS_SEARCH}?pageSize={PAGE_SIZE}"
        found = self.client.post(search, json=query)
        ranked = []
        for customer in found.get("data") or ():
            attributes = _attributes(customer)
            stored = [item.get("phone") for key in ("phones", "sharedPhones") for item in attributes.get(key) or ()]
            ranked.append((best_match(stored, phone), _customer_to_contact(customer)))
        return rank_contacts(ranked)

    def create_contact(
        self, *, name: str, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> Contact:
        customer: Json = {"name": name}
        if phone:
            customer["phones"] = [{"type": "mobile", "phone": phone}]
        if email:
            customer["emails"] = [{"type": "home", "email": email}]
        if external_id:
            customer["externalId"] = external_id
        return _customer_to_contact(self.client.post(KustomerClient.CUSTOMERS, json=customer)["data"])

    def get_contact(self, contact_id: str) -> Contact:
        return _customer_to_contact(self.client.get(f"{KustomerClient.CUSTOMERS}/{_path_value(contact_id)}")["data"])

    # -- Agents ----------------------------------------------------------------------------------

    def find_agent(self, *, email: str) -> Agent | None:
        # No documented users-by-email lookup: the org's users are listed (one page for most orgs).
        wanted = email.strip().lower()
        for user in self.client.pages(KustomerClient.USERS):
            attributes = _attributes(user)
            if attributes.get("userType", "user") != "user" or attributes.get("deleted"):
                continue
            if (attributes.get("email") or "").lower() == wanted:
                return _user_to_agent(user)
        return None

    def get_agent(self, agent_id: str) -> Agent:
        return _user_to_agent(self.client.get(KustomerClient.USER.format(id=_path_value(agent_id)))["data"])

    # -- Records (conversations) -----------------------------------------------------------------

    def find_records_by_external_id(self, external_id: str) -> list[Record]:
        path = KustomerClient.CONVERSATION_BY_EXTERNAL_ID.format(value=_path_value(external_id))
        try:
            body = self.client.get(path)
        except CrmNotFound:
            return []
        return [self._conversation_to_record(body["data"])]

    def list_contact_records(self, contact_id: str) -> list[Record]:
        path = KustomerClient.CUSTOMER_CONVERSATIONS.format(id=_path_value(contact_id))
        records = [self._conversation_to_record(item) for item in self.client.pages(path)]
        return sorted(records, key=lambda record: record.updated_at or "", reverse=True)

    def create_record(self, record: NewRecord) -> Record:
        """Create the conversation, then its first comment as a note.

        Two calls: if the note fails, a retry finds the conversation by its external id.
        """
        conversation: Json = {
            "name": record.subject,
            "externalId": record.external_id,
            "status": record.status or self.default_open_status,
            "tags": list(record.tags),
        }
        if record.assignee_id:
            conversation["assignedUsers"] = [record.assignee_id]
        if record.custom_fields:
            conversation["custom"] = dict(record.custom_fields)
        path = KustomerClient.CUSTOMER_CONVERSATIONS.format(id=_path_value(record.requester_id))
        created = self._conversation_to_record(self.client.post(path, json=conversation)["data"])
        self._add_note(created.id, record.first_comment)
        return created

    def get_record(self, record_id: str) -> Record:
        body = self.client.get(KustomerClient.CONVERSATION.format(id=_path_value(record_id)))
        return self._conversation_to_record(body["data"])

    def record_web_url(self, record: Record) -> str | None:
        # A conversation opens on its customer's timeline; Kustomer has no API that opens it on the
        # agent's screen.
        web = self.web_base_url(self.settings.base_url)
        if not record.requester_id:
            return None
        return f"{web}/app/customers/{quote(record.requester_id, safe='')}/event/{quote(record.id, safe='')}"

    def update_record(self, record_id: str, changes: RecordChanges) -> Record:
        conversation_path = KustomerClient.CONVERSATION.format(id=_path_value(record_id))
        fields: Json = dict(changes.extra)
        if changes.status:
            fields["status"] = changes.status
        if changes.assignee_id:
            fields["assignedUsers"] = [changes.assignee_id]
        if changes.custom_fields:
            fields["custom"] = dict(changes.custom_fields)
        latest: Json | None = None
        if fields:
            latest = self.client.patch(conversation_path, json=fields)["data"]
        if changes.add_tags:
            # Appends; PATCH `tags` would replace the conversation's set.
            tags_path = KustomerClient.CONVERSATION_TAGS.format(id=_path_value(record_id))
            latest = self.client.post(tags_path, json={"tags": list(changes.add_tags)})["data"]
        if changes.comment:
            self._add_note(record_id, changes.comment)
        if latest is None:
            return self.get_record(record_id)
        return self._conversation_to_record(latest)

    def list_comments(self, record_id: str) -> list[Comment]:
        path = KustomerClient.CONVERSATION_NOTES.format(id=_path_value(record_id))
        notes = sorted(self.client.pages(path), key=lambda note: _attributes(note).get("createdAt") or "")
        return [_note_to_comment(note, self.client.base_url) for note in notes]

    def _add_note(self, record_id: str, comment: Comment) -> None:
        # Kustomer notes are internal by nature; a public reply would be a message (drafts).
        note: Json = {"body": comment.body}
        if comment.attachments:
            note["attachments"] = [self._upload(attachment) for attachment in comment.attachments]
        self.client.post(KustomerClient.CONVERSATION_NOTES.format(id=_path_value(record_id)), json=note)

    def _upload(self, attachment: Attachment) -> Json:
        """Create the attachment record, send the bytes to its presigned form; return the note's reference."""
        described = {
            "name": attachment.filename,
            "contentType": attachment.content_type,
            "contentLength": len(attachment.content),
        }
        body = self.client.post(KustomerClient.ATTACHMENTS, json=described)
        upload = (body.get("meta") or {}).get("upload") or {}
        if not upload.get("url"):
            raise CrmRequestError("POST /v1/attachments: no upload policy in the answer", status_code=201, body=body)
        # The form's fields first, the file last, as the presigned policy requires.
        self.client.request(
            "POST",
            upload["url"],
            data={str(key): str(value) for key, value in (upload.get("fields") or {}).items()},
            files={"file": (attachment.filename, attachment.content, attachment.content_type)},
        )
        return {"_id": str(body["data"]["id"]), **described}

    # -- Vocabulary ------------------------------------------------------------------------------

    def session_type_tag(self, session_type_name: str) -> str:
        # Kustomer tags keep their words: "Voice Inbound (IVR)" -> "Voice Inbound - IVR".
        return re.sub(r"\s*\(([^()]*)\)\s*$", r" - \1", session_type_name.strip()).strip()

    # -- Custom fields (conversation custom attributes) ------------------------------------------

    def ensure_custom_fields(self, specs: Sequence[CustomFieldSpec]) -> dict[str, str]:
        properties = self._conversation_properties()
        by_display_name = {str(spec.get("displayName") or ""): name for name, spec in properties.items()}
        names: dict[str, str] = {}
        missing: Json = {}
        for spec in specs:
            name = attribute_name(spec)
            suffix = ATTRIBUTE_SUFFIXES[spec.type]
            same_title = by_display_name.get(spec.title)
            if name not in properties and same_title is not None and same_title.endswith(suffix):
                # An admin already defined this field under another name: reuse it.
                name = same_title
            names[spec.key] = name
            if name not in properties:
                missing[name] = {"displayName": spec.title, "description": f"CRM Bridge: {spec.key}"}
        if missing:
            # The whole set is sent, so it does not matter whether PUT merges or replaces.
            self.client.put(KustomerClient.CONVERSATION_METADATA, json={"properties": {**properties, **missing}})
        return names

    def existing_custom_fields(self) -> frozenset[str]:
        return frozenset(self._conversation_properties())

    def _conversation_properties(self) -> dict[str, Json]:
        body = self.client.get(KustomerClient.CONVERSATION_METADATA)
        properties = _attributes(body.get("data") or {}).get("properties") or {}
        return {str(name): dict(spec or {}) for name, spec in properties.items()}

    # -- Agent status (routing) ------------------------------------------------------------------

    def list_user_statuses(self) -> list[CrmUserStatus]:
        return [
            CrmUserStatus(
                id=str(status["id"]),
                name=_attributes(status).get("name") or "",
                status_type=_attributes(status).get("statusType") or "",
            )
            for status in self.client.pages(KustomerClient.ROUTING_STATUSES)
        ]

    def set_user_status(self, agent_id: str, status_id: str) -> None:
        """Put the agent's active work session in `status_id`; CrmNotFound when the agent has none.

        With several active sessions (tabs or computers), the most recently signed-in one is set.
        """
        path = KustomerClient.USER_WORK_SESSIONS.format(id=_path_value(agent_id))
        active = [session for session in self.client.pages(path) if _attributes(session).get("active")]
        if not active:
            raise CrmNotFound(f"Kustomer user {agent_id} has no active work session", status_code=404)
        session = max(active, key=lambda item: _attributes(item).get("signedInAt") or "")
        session_path = KustomerClient.WORK_SESSION.format(id=_path_value(str(session["id"])))
        self.client.put(session_path, json={"status": status_id})

    def register_webhook(self, url: str, events: Sequence[str]) -> str:
        body = self.client.post(
            KustomerClient.OUTBOUND_WEBHOOKS, json={"name": WEBHOOK_NAME, "url": url, "events": list(events)}
        )
        data = body.get("data") or {}
        # The signing token: JSON:API attributes, or at the top level of data or of the body.
        token = _attributes(data).get("token") or data.get("token") or body.get("token")
        if not token:
            raise CrmRequestError("POST /v1/outbound-webhooks: no token in the answer", status_code=201, body=body)
        return str(token)
