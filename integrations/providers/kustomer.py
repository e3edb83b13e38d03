"""Kustomer REST v1 (shapes: shared/crm-api-shapes.md §2, developer.kustomer.com).

Records are conversations; the product's comments are internal notes on them; custom fields are
conversation custom attributes, named in camelCase with Kustomer's type suffix and defined through
the metadata API. Agent statuses are routing statuses, set on the agent's active work session. For QA search
(T1-T2) the users are listed, conversations come from the search API sorted by their last change,
their customers from one customer search per page, and messages and notes from two more searches
over all conversations.
"""

import dataclasses
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from integrations.exceptions import CrmError, CrmNotFound, CrmRequestError, CrmTransientError, CrmUnsupported
from integrations.http import RateGate, parse_retry_after
from integrations.providers.base import (
    Agent,
    Attachment,
    BatchItemResult,
    BatchJob,
    BatchService,
    BatchUpdate,
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
    batch_setting_specs,
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
from integrations.providers.phones import best_match, national_number, rank_contacts
from integrations.ratelimit import WindowReading, header_int

# The name suffix that gives a Kustomer custom attribute its type (crm-api-shapes.md §2.3).
ATTRIBUTE_SUFFIXES = {
    CustomFieldType.TEXT: "Str",
    CustomFieldType.INTEGER: "Num",
    CustomFieldType.DECIMAL: "Num",
    CustomFieldType.BOOLEAN: "Bool",
}
# Kustomer's largest page; fewer round trips when following links.next.
PAGE_SIZE = 100
# The search API serves pages of up to 500, at most 100 pages and 10,000 results of one query
# (Kustomer's search recipes; AWS Glue's Kustomer notes); an import reading more starts the query
# again at the last time read.
SEARCH_PAGE_SIZE = 500
SEARCH_MAX_PAGES = 100
SEARCH_MAX_RESULTS = 10_000
# An `x-ratelimit-reset` above this is an epoch time, below it a number of seconds to wait.
EPOCH_THRESHOLD = 1_000_000_000
# The name our outbound webhooks carry in Kustomer's settings.
WEBHOOK_NAME = "CRM Bridge"

Json = dict[str, Any]


def reset_seconds(value: str | None, *, now: float) -> float | None:
    """`x-ratelimit-reset` as seconds from now: an epoch time, or (small values) seconds; None if unreadable."""
    try:
        reset = float(value) if value else None
    except ValueError:
        return None
    if reset is None:
        return None
    return max(0.0, reset - now) if reset > EPOCH_THRESHOLD else max(0.0, reset)


def kustomer_window_readings(headers: Mapping[str, str], *, now: float) -> list[tuple[str | None, WindowReading]]:
    """The org's window from `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset`."""
    limit, remaining = header_int(headers.get("x-ratelimit-limit")), header_int(headers.get("x-ratelimit-remaining"))
    if limit is None or remaining is None:
        return []
    return [(None, WindowReading(limit, remaining, reset_seconds(headers.get("x-ratelimit-reset"), now=now)))]


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
    CONVERSATION_MESSAGES = "v1/conversations/{id}/messages"
    ATTACHMENTS = "v1/attachments"
    ATTACHMENT = "v1/attachments/{id}"
    USERS = "v1/users"
    USER = "v1/users/{id}"
    CURRENT_TOKEN = "v1/auth/tokens/current"
    CONVERSATION_METADATA = "v1/metadata/conversation"
    # The asynchronous bulk API (docs/kustomer.md, "API batching"): submit, poll, per-item results.
    CONVERSATIONS_BULK = "v1/conversations/bulk"
    BULK = "v1/bulk/{id}"
    BULK_BATCHES = "v1/bulk/{id}/batches"
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
        reset = reset_seconds(response.headers.get("x-ratelimit-reset"), now=time.time())
        return parse_retry_after(None, now=time.time()) if reset is None else reset

    def window_readings(self, response: requests.Response) -> Iterable[tuple[str | None, WindowReading]]:
        return kustomer_window_readings(response.headers, now=time.time())

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Json]:
        """Every item of a list endpoint, following `links.next` until it is null."""
        for body in self.page_bodies(path, params):
            yield from body.get("data") or ()

    def page_bodies(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Json]:
        """Each page of a list endpoint (`meta`, `links`, `data`), following `links.next` until it is null."""
        page: str | None = path
        page_params: dict[str, Any] | None = {"pageSize": PAGE_SIZE, **(params or {})}
        while page:
            body = self.get(page, params=page_params)
            yield body
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


class KustomerProvider(CrmProvider, TicketImportSource):
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
        *batch_setting_specs(frozenset({BatchService.UPDATE_RECORD})),
    )
    capabilities = frozenset(
        {
            Capability.RECORDS,
            Capability.CUSTOM_FIELDS,
            Capability.TAGS,
            Capability.USER_STATUSES,
            Capability.WEBHOOKS,
            Capability.TICKET_IMPORT,
            Capability.BATCHING,
        }
    )
    # B1: bulk conversation updates (PUT /v1/conversations/bulk, at most 100 items); there are no
    # bulk notes, so comments are never batched, and a note is always a request of its own.
    batch_max_items = 100
    batch_services = frozenset({BatchService.UPDATE_RECORD})
    update_writes_comment = False

    def __init__(self, settings: ConnectionSettings, *, rate_gate: RateGate | None = None) -> None:
        super().__init__(settings, rate_gate=rate_gate)
        self.client = KustomerClient(self.settings, self.rate_gate)
        # Messages and notes each conversation read for the import has (its messageCount and
        # noteCount), so load_comments skips the lists it knows are empty.
        self._interaction_counts: dict[str, tuple[int | None, int | None]] = {}

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
        found = self.client.post_read(search, json=query)
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
        fields = self._conversation_fields(changes)
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

    def submit_batch(self, updates: Sequence[BatchUpdate]) -> BatchJob:
        # One array item per conversation, `_clientRef` its id (unique in the request, as Kustomer
        # requires), so each item's result maps back to its record. Only fields: notes have no bulk
        # endpoint, and a bulk `tags` would replace the conversation's set (batch_services).
        items = []
        for update in updates:
            changes = update.changes
            if changes.comment is not None or changes.add_tags:
                raise CrmUnsupported("Kustomer's bulk conversation update carries no notes or added tags")
            items.append({"id": update.record_id, "_clientRef": update.record_id, **self._conversation_fields(changes)})
        body = self.client.put(KustomerClient.CONVERSATIONS_BULK, json=items)
        return _bulk_job(body.get("data") or {})

    def read_batch(self, job_id: str) -> BatchJob:
        # Done only once the operation is `complete` and so is each of its batches; then the
        # per-item results are read from the batches (matched by `_clientRef`).
        body = self.client.get(KustomerClient.BULK.format(id=_path_value(job_id)))
        job = _bulk_job(body.get("data") or {})
        if not job.done:
            return job
        batches = [
            _attributes(batch)
            for batch in self.client.get(KustomerClient.BULK_BATCHES.format(id=_path_value(job_id))).get("data") or ()
            if isinstance(batch, dict)
        ]
        if any(batch.get("status") not in (None, BULK_COMPLETE) for batch in batches):
            return dataclasses.replace(job, done=False)
        results = tuple(
            _bulk_item_result(item)
            for batch in batches
            for item in batch.get("results") or ()
            if isinstance(item, dict) and item.get("_clientRef")
        )
        return dataclasses.replace(job, results=results)

    def _conversation_fields(self, changes: RecordChanges) -> Json:
        fields: Json = dict(changes.extra)
        if changes.status:
            fields["status"] = changes.status
        if changes.assignee_id:
            fields["assignedUsers"] = [changes.assignee_id]
        if changes.custom_fields:
            fields["custom"] = dict(changes.custom_fields)
        return fields

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

    # -- Import for QA search (SPEC T1-T2) -------------------------------------------------------
    #
    # Requests for N conversations with M messages and notes: N/500 searches for them (any status:
    # a reopened one must leave QA search), N/500 customer searches for their customers, and M/500
    # message and note searches over all conversations (iter_comments, like Zendesk's event
    # export). The cursor is the `updatedAt` of the last conversation saved; the next run asks for
    # `gte` it, so a conversation changed in that millisecond is not missed (the few read twice
    # are upserted to the same row).

    # Kustomer message channels and the QA channels (SPEC T5) they are filed under.
    CHANNELS: ClassVar[dict[str, str]] = {
        "email": "email",
        "chat": "chat",
        "sms": "sms",
        "voice": "voice",
        "facebook": "facebook",
        "whatsapp": "whatsapp",
        "telegram": "telegram",
        "viber": "viber",
        "apple-business-chat": "apple_messages_for_business",
        "apple_messages_for_business": "apple_messages_for_business",
        "slack": "slack",
        "microsoft-teams": "microsoft_teams",
        "in-app": "in_app_messaging",
    }
    SOLVED_STATUSES: ClassVar[frozenset[str]] = frozenset({"done"})
    # Messages and notes come from their own searches over all conversations (iter_comments), a
    # request per 500 of them; load_comments (two lists per conversation) is the per-ticket way.
    comments_in_bulk = True

    def iter_users(self, *, cursor: str | None, since: datetime) -> Iterator[ImportPage[ImportedUser]]:
        """Every user of the org, 100 per page (users are few: the list is read whole each run)."""
        for body in self.client.page_bodies(KustomerClient.USERS):
            users = [imported_user(user) for user in body.get("data") or ()]
            yield ImportPage(items=users, cursor="", total=(body.get("meta") or {}).get("total"))

    def _search_pages(self, context: str, start: str) -> Iterator["SearchPage"]:
        """Pages of `context` objects whose `<context>_<SEARCH_TIMES[context]>` is `gte` start, in that order.

        Past the search's limit (100 pages, 10,000 results) the same query starts again at the last
        time read (what changed at that moment comes again: the caller's upserts make it one).
        """
        criterion = f"{context}_{SEARCH_TIMES[context][0]}"
        total: int | None = None
        while True:
            query = {"queryContext": context, "and": [{criterion: {"gte": start}}], "sort": [{criterion: "asc"}]}
            page = f"{KustomerClient.CUSTOMERS_SEARCH}?page=1&pageSize={SEARCH_PAGE_SIZE}"
            last = start
            for _ in range(max(1, min(SEARCH_MAX_PAGES, SEARCH_MAX_RESULTS // SEARCH_PAGE_SIZE))):
                body = self.client.post_read(page, json=query)
                items = list(body.get("data") or ())
                if total is None:
                    total = (body.get("meta") or {}).get("total")
                if items:
                    last = _attributes(items[-1]).get(SEARCH_TIMES[context][1]) or last
                following = (body.get("links") or {}).get("next")
                yield SearchPage(items=items, position=last, last=following is None, total=total)
                if following is None:
                    return
                page = str(following)
            if last == start:
                raise CrmRequestError(
                    f"Kustomer search: more than {SEARCH_MAX_RESULTS} {context}s at {start}", status_code=400
                )
            start = last

    def iter_tickets(self, *, cursor: str | None, since: datetime) -> Iterator[ImportPage[ImportedTicket]]:
        """Conversations changed since the cursor (or `since`), oldest change first, 500 a page."""
        for page in self._search_pages("conversation", cursor or search_time(since)):
            customers = self._customers([_related_id(item, "customer") for item in page.items])
            tickets = [self.imported_ticket(item, customers) for item in page.items]
            yield ImportPage(items=tickets, cursor=page.position, total=page.total)

    def iter_comments(self, *, cursor: str | None, since: datetime) -> Iterator[CommentPage]:
        """Messages and notes on every conversation made since the cursor, from two searches read in step.

        The cursor holds each search's position (`{"message": time, "note": time}`); the page read
        next is always from the one further behind, so the comments are complete up to the earlier
        of the two positions (or now, for a search that has reached its end).
        """
        positions = _comment_positions(cursor, since)
        streams = {context: self._search_pages(context, positions[context]) for context in COMMENT_CONTEXTS}
        ended: set[str] = set()
        while len(ended) < len(streams):
            context = min((c for c in streams if c not in ended), key=lambda c: _time(positions[c]) or since)
            page = next(streams[context], None)
            if page is None:
                ended.add(context)
                continue
            positions[context] = page.position
            if page.last:
                ended.add(context)
            imported = imported_message if context == "message" else imported_note
            comments = [
                ImportedTicketComment(ticket_crm_id=conversation_id, comment=imported(item))
                for item in page.items
                if (conversation_id := _related_id(item, "conversation"))
            ]
            now = datetime.now(UTC)
            reached = [now if c in ended else _time(positions[c]) or since for c in streams]
            yield CommentPage(items=comments, cursor=json.dumps(positions, sort_keys=True), complete_until=min(reached))

    def _customers(self, ids: list[str | None]) -> dict[str, Json]:
        """The page's customers by id, from one customer search (a page holds at most SEARCH_PAGE_SIZE)."""
        wanted = sorted({customer_id for customer_id in ids if customer_id})
        if not wanted:
            return {}
        query = {"queryContext": "customer", "and": [{"customer_id": {"in": wanted}}]}
        found: dict[str, Json] = {}
        page: str | None = f"{KustomerClient.CUSTOMERS_SEARCH}?page=1&pageSize={SEARCH_PAGE_SIZE}"
        while page:
            body = self.client.post_read(page, json=query)
            found.update({str(customer["id"]): customer for customer in body.get("data") or ()})
            page = (body.get("links") or {}).get("next")
        return found

    def load_comments(self, tickets: list[ImportedTicket]) -> list[ImportedTicket]:
        loaded = []
        for ticket in tickets:
            messages, notes = self._interaction_counts.pop(ticket.crm_id, (None, None))
            comments: list[ImportedComment] = []
            if messages != 0:
                path = KustomerClient.CONVERSATION_MESSAGES.format(id=_path_value(ticket.crm_id))
                comments += [imported_message(message) for message in self.client.pages(path)]
            if notes != 0:
                path = KustomerClient.CONVERSATION_NOTES.format(id=_path_value(ticket.crm_id))
                comments += [imported_note(note) for note in self.client.pages(path)]
            comments.sort(key=lambda comment: comment.created_at or ticket.created_at)
            loaded.append(dataclasses.replace(ticket, comments=tuple(comments)))
        # The page is done with: the counts of the conversations it did not keep are not needed.
        self._interaction_counts.clear()
        return loaded

    def imported_ticket(self, conversation: Json, customers: dict[str, Json]) -> ImportedTicket:
        attributes = _attributes(conversation)
        conversation_id = str(conversation["id"])
        status = attributes.get("status") or ""
        updated_at = _time(attributes.get("updatedAt")) or datetime.now(UTC)
        customer_id = _related_id(conversation, "customer")
        customer = customers.get(customer_id or "")
        contact = _customer_to_contact(customer) if customer else None
        assigned = attributes.get("assignedUsers") or []
        channels = [str(channel).lower() for channel in attributes.get("channels") or ()]
        solved = status in self.SOLVED_STATUSES
        self._interaction_counts[conversation_id] = (
            _count(attributes.get("messageCount")),
            _count(attributes.get("noteCount")),
        )
        record = self._conversation_to_record(conversation)
        return ImportedTicket(
            crm_id=conversation_id,
            subject=attributes.get("name") or "",
            description=attributes.get("preview") or "",
            status=status,
            is_solved=solved,
            channel=next((self.CHANNELS[c] for c in channels if c in self.CHANNELS), OTHER_CHANNEL),
            assignee_id=str(assigned[0]) if assigned else None,
            requester_id=customer_id,
            requester_name=contact.name if contact else "",
            requester_email=contact.email if contact else None,
            requester_phone=contact.phone if contact else None,
            tags=tuple(attributes.get("tags") or ()),
            created_at=_time(attributes.get("createdAt")) or updated_at,
            updated_at=updated_at,
            solved_at=_time(record.closed_at) if solved else None,
            web_url=self.record_web_url(record) or self.web_url(self.settings.base_url, record_id=conversation_id),
        )


# What each search is ordered and bounded by: (criterion suffix, the attribute holding it).
SEARCH_TIMES = {
    "conversation": ("updated_at", "updatedAt"),
    "message": ("created_at", "createdAt"),
    "note": ("created_at", "createdAt"),
}
COMMENT_CONTEXTS = ("message", "note")


# A bulk operation's status (GET /v1/bulk/{id}): queued, running, complete.
BULK_COMPLETE = "complete"


def _bulk_job(resource: Json) -> BatchJob:
    """A bulk operation (`{"type": "bulk", "id", "attributes": {"status", "batches"}}`) as a BatchJob."""
    status = str(_attributes(resource).get("status") or resource.get("status") or "")
    return BatchJob(id=str(resource["id"]), done=status == BULK_COMPLETE, message=status)


def _bulk_item_result(item: Mapping[str, Any]) -> BatchItemResult:
    """One `results[]` entry of a batch: `{"_clientRef", "objectId", "status": "updated"|"error", "error"}`."""
    record_id = str(item["_clientRef"])
    if item.get("status") != "error":
        return BatchItemResult(record_id=record_id)
    detail = str(item.get("error") or "error")
    message = f"Kustomer could not update conversation {record_id} in the bulk operation: {detail}"
    error: CrmError
    if "not found" in detail.lower():
        error = CrmNotFound(message, status_code=404, body=dict(item))
    else:
        # Kustomer's item error is free text, not a code: the unbatched retry's own answer says
        # whether the conversation refuses the change (a 4xx fails it then) or it was passing.
        error = CrmTransientError(message)
    return BatchItemResult(record_id=record_id, error=error)


@dataclasses.dataclass(frozen=True)
class SearchPage:
    items: list[Json]
    # The search time of the page's last item (or where the page began, when it has none).
    position: str
    # No page follows.
    last: bool
    total: int | None


def _comment_positions(cursor: str | None, since: datetime) -> dict[str, str]:
    """Each comment search's position from a stored cursor; `since` for a first run (or a cursor not ours)."""
    start = search_time(since)
    try:
        stored = json.loads(cursor) if cursor else {}
    except ValueError:
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    return {context: str(stored.get(context) or start) for context in COMMENT_CONTEXTS}


def search_time(moment: datetime) -> str:
    """A UTC time as the search API takes it (not shifted by a `timeZone`): 2026-10-01T00:00:00.000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def imported_user(user: Json) -> ImportedUser:
    attributes = _attributes(user)
    # Kustomer keeps one name; its first word is taken as the first name, the rest as the last.
    first, _, last = (attributes.get("name") or "").strip().partition(" ")
    return ImportedUser(
        crm_id=str(user["id"]),
        first_name=first,
        last_name=last.strip(),
        email=attributes.get("email") or None,
        is_active=not attributes.get("deleted") and not attributes.get("deletedAt"),
        # API keys act as `machine` users; people who work conversations are `user`s.
        is_agent=attributes.get("userType", "user") == "user",
        updated_at=_time(attributes.get("updatedAt")),
    )


def imported_message(message: Json) -> ImportedComment:
    """A message: written by the customer when it came in, else by the user who sent it.

    An automatic one (a workflow's auto-reply, `auto: true`) or one sent by no user has no user
    information, and T2 leaves it out.
    """
    attributes = _attributes(message)
    if attributes.get("direction") == "in":
        author = _related_id(message, "customer")
    else:
        author = None if attributes.get("auto") else _related_id(message, "createdBy")
    return ImportedComment(
        crm_id=str(message["id"]),
        author_id=author,
        body=attributes.get("body") or attributes.get("preview") or "",
        public=True,
        created_at=_time(attributes.get("sentAt") or attributes.get("createdAt")),
    )


def imported_note(note: Json) -> ImportedComment:
    attributes = _attributes(note)
    return ImportedComment(
        crm_id=str(note["id"]),
        author_id=_related_id(note, "createdBy"),
        body=attributes.get("body") or "",
        public=False,
        created_at=_time(attributes.get("createdAt")),
    )
