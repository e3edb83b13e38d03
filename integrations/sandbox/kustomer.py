"""A sandbox Kustomer: the REST v1 subset the provider uses, in Kustomer's JSON:API shapes.

Shapes follow shared/crm-api-shapes.md §2 and developer.kustomer.com: customers (create, lookup by
phone/email/externalId, unique identifiers), conversations (create, show, patch, tags, lookup by
externalId, per customer), notes with attachments (presigned upload), custom attribute metadata
(suffix-typed names, undefined attributes refused), users and teams, routing statuses and work
sessions, outbound webhooks, the `{"errors": [...]}` bodies and the `x-ratelimit-*` headers.
For the QA import: `GET /v1/conversations/{id}/messages`, and the search
(`POST /v1/customers/search`) over conversations (`conversation_updated_at`, `conversation_created_at`,
`conversation_status`), messages and notes (`message_created_at`, `note_created_at`, ... updated),
sorted by one of those times, and over customers by id (`customer_id`), at most 100 pages of one
query, as Kustomer serves it.

Beyond the API, sandbox-only control endpoints stand in for an agent and for S3:

- `POST /__sandbox/work-sessions` `{"user", "status"}` signs an agent instance in (201);
- `POST /__sandbox/work-sessions/{id}` `{"status"}` changes its status, `{"active": false}` signs it out;
- `POST /__sandbox/uploads/{attachmentId}` is the presigned form an attachment's bytes go to (204);
- `GET /__sandbox/files/{attachmentId}` serves them back (an attachment's `links.related`);
- `POST /__sandbox/bulk_faults` `{"item_fail_rate"}` makes that share of bulk-update items fail;
- `POST /__sandbox/seed` `{"users", "customers", "conversations"}` (raw records, conversations with
  their `messages` and `notes`) or `{"count", "seed"}` (a generated org) stores records as they
  would be after months of work, and answers their ids.

Work-session changes, through these or through `PUT /v1/routing/work-sessions/{id}`, are delivered
to the outbound webhooks subscribed to `kustomer.work-session.create|update`, signed, from a
background thread (see `_deliver`).
"""

import email.parser
import email.policy
import hashlib
import hmac
import json
import queue
import random
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from integrations.sandbox.base import CONTROL_PREFIX, Reject, Request, Response, Sandbox
from integrations.sandbox.zendesk import SEED_WORDS

Json = dict[str, Any]

# Kustomer ids are 24 hex digits (Mongo ObjectIds); each kind gets its own 8-digit prefix here.
ID_PREFIXES = {
    "bulk": "5e6a7b8c",
    "bulk_batch": "5e6a7b8d",
    "customer": "5a821b94",
    "conversation": "5b1e8f2a",
    "note": "5c2f9a3b",
    "attachment": "5d3a0b4c",
    "work-session": "5e4b1c5d",
    "webhook": "5f5c2d6e",
    "event": "605d3e7f",
    "message": "616e4f80",
    "user": "5f0a0000",
}
PHONE_TYPES = ("mobile", "home", "work", "fax", "other")
EMAIL_TYPES = ("home", "work", "other")
CREATE_STATUSES = ("open", "done")
STATUSES = ("open", "snoozed", "done")
STATUS_TYPES = ("available", "busy", "unavailable", "offline")
# A custom attribute's name ends with its type (crm-api-shapes.md §2.3); the type its metadata shows.
ATTRIBUTE_TYPES = {
    "Str": "string",
    "Txt": "text",
    "Num": "number",
    "At": "date",
    "Bool": "boolean",
    "Url": "url",
    "Id": "id",
}
ATTRIBUTE_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*?(Str|Txt|Num|At|Bool|Url|Id)$")
METADATA_RESOURCES = ("conversation", "customer", "message", "company", "note", "user")
# The events Kustomer lists at GET /v1/outbound-webhooks/events, plus the work-session events the
# sandbox emits for agent-status sync.
STANDARD_EVENTS = tuple(
    f"kustomer.{resource}.{action}"
    for resource in ("customer", "conversation", "message", "user", "team", "tag")
    for action in ("create", "update")
)
WORK_SESSION_EVENTS = ("kustomer.work-session.create", "kustomer.work-session.update")
WEBHOOK_EVENTS = STANDARD_EVENTS + WORK_SESSION_EVENTS
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100
MAX_STRING = 1024
# Items one bulk request may carry (developer.kustomer.com/docs/guides/bulk-operations).
BULK_MAX_ITEMS = 100
MAX_NOTE_BODY = 10240
# A receiver must answer within this long; a slower one counts as a failed delivery (not retried).
DELIVERY_TIMEOUT_SECONDS = 5.0
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Kustomer keeps a phone as written (`(415) 555-0100` too); only obvious non-numbers are refused.
PHONE_RE = re.compile(r"^\+?[0-9(][0-9 ().-]{3,}$")
# The customer search's phone criteria take digits with an optional `+` (Kustomer's standard-fields
# JSON schema for `customer_phone` and `customer_shared_phone`).
SEARCH_PHONE_RE = re.compile(r"^\+?[1-9]\d{1,14}$")
# Customer search criteria the sandbox answers, and the customer lists each looks in.
SEARCH_PHONE_CRITERIA = {"customer_phone": "phones", "customer_shared_phone": "sharedPhones"}
SEARCH_STRING_OPERATORS = ("equals", "contains")
# The conversation search's criteria: times compared with these operators, the status by value.
SEARCH_TIME_CRITERIA = {
    f"{context}_{when}_at": key
    for context in ("conversation", "message", "note")
    for when, key in (("updated", "updatedAt"), ("created", "createdAt"))
}
SEARCH_TIME_OPERATORS = ("gte", "gt", "lte", "lt")
SEARCH_CONTEXTS = ("customer", "conversation", "message", "note")
# One query is served at most this many pages deep, and no result past the 10,000th (Kustomer's
# search recipes; AWS Glue's Kustomer notes); a search page holds up to 500.
SEARCH_MAX_PAGES = 100
SEARCH_MAX_RESULTS = 10_000
SEARCH_MAX_PAGE_SIZE = 500
MESSAGE_CHANNELS = ("email", "sms", "chat", "facebook", "twitter-dm", "twitter-tweet", "voice", "instagram", "whatsapp")


# -- Kustomer's two error bodies ---------------------------------------------------------------------


def _bad_request(message: str, **meta: Any) -> Reject:
    """The usual variant: `{"errors": [{"code", "message", "meta"}]}`."""
    return Reject(Response(400, {"errors": [{"code": "bad_request", "message": message, "meta": meta}]}))


def _json_api_error(status: int, code: str, title: str, detail: str, source: Json | None = None) -> Json:
    """The JSON:API variant some endpoints answer with."""
    error: Json = {"status": str(status), "code": code, "title": title, "detail": detail, "meta": {}}
    if source is not None:
        error["source"] = source
    return {"errors": [error]}


def _not_found(kind: str, key: str) -> Reject:
    body = _json_api_error(404, "not_found", "Not Found", f"{kind} {key} not found", {"parameter": "id"})
    return Reject(Response(404, body))


def _conflict(detail: str, pointer: str) -> Reject:
    return Reject(Response(409, _json_api_error(409, "conflict", "Conflict", detail, {"pointer": pointer})))


# -- Small helpers -----------------------------------------------------------------------------------


def _phone_key(phone: str) -> str:
    return "+" + re.sub(r"\D", "", phone)


def _body(request: Request) -> Json:
    if not isinstance(request.data, dict):
        raise _bad_request("Invalid request body or parameters.", reason="the body must be a JSON object")
    return request.data


def _string(fields: Mapping[str, Any], key: str, *, required: bool = False, limit: int = MAX_STRING) -> str | None:
    value = fields.get(key)
    if value is None:
        if required:
            raise _bad_request(f"{key} is required", attribute=key)
        return None
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        raise _bad_request(f"{key} must be a string of at most {limit} characters", attribute=key)
    return value


def _string_list(fields: Mapping[str, Any], key: str) -> list[str] | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _bad_request(f"{key} must be a list of strings", attribute=key)
    return list(dict.fromkeys(value))


def _choice(fields: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if value not in allowed:
        raise _bad_request(f"{key} must be one of {', '.join(allowed)}", attribute=key, value=value)
    return str(value)


def _custom_value_ok(suffix: str, value: Any) -> bool:
    if value is None:
        return True
    if suffix == "Num":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if suffix == "Bool":
        return isinstance(value, bool)
    if suffix == "Str":
        return isinstance(value, str) and len(value) <= MAX_STRING
    return isinstance(value, str)


def _custom(value: Any, defined: Mapping[str, Any] | None) -> Json:
    """Validated `custom` attributes; 400 for a wrong suffix, a mistyped value or (when `defined` is
    given) an attribute the object's metadata does not define."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad_request("custom must be an object", attribute="custom")
    for name, item in value.items():
        match = ATTRIBUTE_NAME_RE.match(name)
        if match is None:
            raise _bad_request(
                f"Invalid custom attribute name {name}: it must end with a type suffix ({', '.join(ATTRIBUTE_TYPES)})",
                attribute=f"custom.{name}",
            )
        if not _custom_value_ok(match.group(1), item):
            expected = ATTRIBUTE_TYPES[match.group(1)]
            raise _bad_request(f"custom.{name} must be a {expected} or null", attribute=f"custom.{name}")
        if defined is not None and name not in defined:
            raise _bad_request(f"Custom attribute {name} is not defined for this object", attribute=f"custom.{name}")
    return dict(value)


def _int_param(request: Request, name: str, default: int, high: int | None = None) -> int:
    text = request.param(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise _bad_request(f"{name} must be a whole number", parameter=name) from None
    if value < 1 or (high is not None and value > high):
        raise _bad_request(f"{name} must be from 1 to {high}" if high else f"{name} must be at least 1")
    return value


def _parse_time(value: Any) -> datetime:
    """A search date or time: `2026-10-01` (midnight UTC) or ISO 8601 with `Z`."""
    if not isinstance(value, str):
        raise TypeError("not a string")
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _kustomer_time(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def _arg(request: Request, name: str = "id") -> str:
    return unquote(request.args[name])


class KustomerSandbox(Sandbox):
    """Kustomer REST v1: customers, conversations, notes, attachments, metadata, users, routing, webhooks.

    Only the fixture's API keys authenticate. The fixture is
    `{"org", "apiKeys": [{token, user}], "users", "teams", "routingStatuses", "metadata"?}`.
    """

    kind = "kustomer"
    # The Enterprise plan's org-wide requests per minute (crm-api-shapes.md §2.9).
    advertised_rate_limit = 1000

    # -- State -----------------------------------------------------------------------------------

    def reset_state(self) -> None:
        self.org_id = "5a7d3f1c9b2e4a0012345678"
        self.api_keys: dict[str, str] = {}
        self.users: dict[str, Json] = {}
        self.teams: dict[str, Json] = {}
        self.statuses: dict[str, Json] = {}
        self.customers: dict[str, Json] = {}
        self.conversations: dict[str, Json] = {}
        self.notes: dict[str, Json] = {}
        self.messages: dict[str, Json] = {}
        self.attachments: dict[str, Json] = {}
        self.files: dict[str, bytes] = {}
        self.metadata: dict[str, dict[str, Json]] = {resource: {} for resource in METADATA_RESOURCES}
        self.work_sessions: dict[str, Json] = {}
        self.webhooks: dict[str, Json] = {}
        self.bulk_operations: dict[str, Json] = {}
        # Share of bulk-update items that fail in their result (POST /__sandbox/bulk_faults).
        self.bulk_item_fail_rate = 0.0
        self.bulk_item_failures = 0
        self.deliveries: list[Json] = []
        self.delivery_counts: Counter[str] = Counter()
        self.delivery_failures = 0
        self._sequence = 0
        self._last_millis = 0
        # Deliveries queued before a reset are dropped, so a test never sees the previous one's.
        self._generation = getattr(self, "_generation", 0) + 1
        if not hasattr(self, "_outbox"):
            self._outbox: queue.Queue[tuple[int, Json, bytes, Json]] = queue.Queue()
            self._delivery_lock = threading.Lock()
            self._sender: threading.Thread | None = None

    def load_fixture(self, fixture: Mapping[str, Any]) -> None:
        org = fixture.get("org") or {}
        if isinstance(org, dict) and org.get("id"):
            self.org_id = str(org["id"])
        for index, user in enumerate(fixture.get("users") or []):
            if not isinstance(user, dict) or not user.get("id") or not user.get("email"):
                raise ValueError(f"fixture user {index}: needs an id and an email")
            now = self._now()
            self.users[str(user["id"])] = {
                "id": str(user["id"]),
                "name": user.get("name") or user["email"],
                "displayName": user.get("displayName") or user.get("name") or user["email"],
                "email": str(user["email"]).lower(),
                "userType": user.get("userType", "user"),
                "createdAt": now,
                "updatedAt": now,
            }
        for index, key in enumerate(fixture.get("apiKeys") or []):
            if not isinstance(key, dict) or key.get("user") not in self.users or not key.get("token"):
                raise ValueError(f"fixture apiKeys {index}: needs a token and the id of a fixture user")
            self.api_keys[str(key["token"])] = str(key["user"])
        for index, team in enumerate(fixture.get("teams") or []):
            members = [str(member) for member in team.get("members") or []]
            if not team.get("id") or any(member not in self.users for member in members):
                raise ValueError(f"fixture team {index}: needs an id and members that are fixture users")
            self.teams[str(team["id"])] = {"id": str(team["id"]), "name": team.get("name") or "", "members": members}
        for index, status in enumerate(fixture.get("routingStatuses") or []):
            if not status.get("id") or status.get("statusType") not in STATUS_TYPES:
                raise ValueError(f"fixture routing status {index}: needs an id and a statusType")
            now = self._now()
            self.statuses[str(status["id"])] = {
                "id": str(status["id"]),
                "name": status.get("name") or "",
                "statusType": status["statusType"],
                "system": bool(status.get("system")),
                "createdAt": now,
                "updatedAt": now,
            }
        for resource, properties in (fixture.get("metadata") or {}).items():
            if resource not in self.metadata:
                raise ValueError(f"fixture metadata: unknown resource {resource}")
            try:
                self._define(resource, properties)
            except Reject as rejection:
                raise ValueError(f"fixture metadata {resource}: {json.dumps(rejection.response.body)}") from None

    def authenticate(self, headers: Mapping[str, str]) -> Response | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip() in self.api_keys:
            return None
        body = _json_api_error(401, "unauthorized", "Unauthorized", "Invalid or missing API key")
        return Response(401, body)

    def connection_settings(self) -> dict[str, str]:
        # Only the fixture's keys authenticate: the first one connects.
        return {"api_token": sorted(self.api_keys)[0]} if self.api_keys else {}

    def error(self, status: int, code: str, description: str) -> Response:
        titles = {400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}
        return Response(status, _json_api_error(status, code, titles.get(status, code), description))

    def rate_limit_headers(self, limit: int, remaining: int, reset_seconds: int) -> dict[str, str]:
        # `x-ratelimit-reset` is the epoch second the window resets (how singer-io's client reads it).
        return {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(int(time.time()) + reset_seconds),
        }

    def rate_limited(self, retry_after: int) -> Response:
        # Kustomer's 429 names when to come back only through `x-ratelimit-reset` (no Retry-After).
        body = _json_api_error(429, "too_many_requests", "Too Many Requests", "Rate limit exceeded")
        return Response(
            429, body, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + retry_after)}
        )

    def stats_snapshot(self) -> dict[str, Any]:
        stats = super().stats_snapshot()
        with self._lock:
            stats["webhook_deliveries"] = {
                "by_event": dict(sorted(self.delivery_counts.items())),
                "failed": self.delivery_failures,
                "pending": self._outbox.unfinished_tasks,
            }
        return stats

    def _next_id(self, kind: str) -> str:
        self._sequence += 1
        return f"{ID_PREFIXES[kind]}{self._sequence:016x}"

    def _now(self) -> str:
        # Strictly increasing by the millisecond, so "most recently updated" is never a tie.
        millis = max(int(time.time() * 1000), self._last_millis + 1)
        self._last_millis = millis
        moment = datetime.fromtimestamp(millis / 1000, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"

    def _org(self) -> Json:
        return {"data": {"type": "org", "id": self.org_id}, "links": {"self": f"/v1/orgs/{self.org_id}"}}

    def _api_user(self, request: Request) -> str:
        token = request.headers.get("authorization", "").partition(" ")[2].strip()
        return self.api_keys[token]

    def _page(self, request: Request, items: list[Json], *, search: bool = False) -> Json:
        """Kustomer's list envelope: `meta`, `links` (relative, `next` null on the last page) and `data`.

        A search page holds up to 500, and no page past the 100th or the 10,000th result is served
        (the last one has no `next`).
        """
        size = _int_param(request, "pageSize", DEFAULT_PAGE_SIZE, SEARCH_MAX_PAGE_SIZE if search else MAX_PAGE_SIZE)
        max_pages = min(SEARCH_MAX_PAGES, SEARCH_MAX_RESULTS // size) if search else None
        page = _int_param(request, "page", 1, max_pages)
        total_pages = max(1, -(-len(items) // size))
        if max_pages is not None:
            total_pages = min(total_pages, max_pages)
        params = {key: values[0] for key, values in request.query.items() if key not in ("page", "pageSize")}

        def link(number: int) -> str:
            return f"{request.path}?{urlencode({**params, 'page': number, 'pageSize': size})}"

        return {
            "meta": {"pageSize": size, "page": page, "total": len(items), "totalPages": total_pages},
            "links": {
                "self": link(page),
                "first": link(1),
                "prev": link(page - 1) if page > 1 else None,
                "next": link(page + 1) if page < total_pages else None,
                "last": link(total_pages),
            },
            "data": items[(page - 1) * size : page * size],
        }

    # -- Customers -------------------------------------------------------------------------------

    def _customer_json(self, customer: Json) -> Json:
        attributes = {key: value for key, value in customer.items() if key != "id"}
        return {
            "type": "customer",
            "id": customer["id"],
            "attributes": attributes,
            "relationships": {
                "org": self._org(),
                "messages": {"links": {"self": f"/v1/customers/{customer['id']}/messages"}},
            },
            "links": {"self": f"/v1/customers/{customer['id']}"},
        }

    def _customer(self, customer_id: str) -> Json:
        customer = self.customers.get(customer_id)
        if customer is None:
            raise _not_found("Customer", customer_id)
        return customer

    def _identifiers(self, fields: Json, key: str, item_key: str, types: tuple[str, ...], default: str) -> list[Json]:
        value = fields.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _bad_request(f"{key} must be a list", attribute=key)
        items: list[Json] = []
        for index, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get(item_key), str):
                raise _bad_request(f"{key}[{index}].{item_key} is required", attribute=f"{key}.{index}")
            kind = item.get("type", default)
            if kind not in types:
                raise _bad_request(f"{key}[{index}].type must be one of {', '.join(types)}", attribute=key)
            items.append({item_key: item[item_key].strip(), "type": kind, "verified": item.get("verified") is True})
        return items

    def create_customer(self, request: Request) -> Response:
        fields = _body(request)
        name = _string(fields, "name")
        external_id = _string(fields, "externalId")
        phones = self._identifiers(fields, "phones", "phone", PHONE_TYPES, "other")
        # Shared phones (a family's or an office's line) may belong to several customers.
        shared_phones = self._identifiers(fields, "sharedPhones", "phone", PHONE_TYPES, "other")
        emails = self._identifiers(fields, "emails", "email", EMAIL_TYPES, "other")
        for key, items in (("phones", phones), ("sharedPhones", shared_phones)):
            for index, phone in enumerate(items):
                if not PHONE_RE.match(phone["phone"]):
                    raise _bad_request(f"{key}[{index}].phone is not a phone number", attribute=f"{key}.{index}")
        for index, item in enumerate(emails):
            item["email"] = item["email"].lower()
            if not EMAIL_RE.match(item["email"]):
                raise _bad_request(f"emails[{index}].email is not an email address", attribute=f"emails.{index}")
        tags = _string_list(fields, "tags") or []
        custom = _custom(fields.get("custom"), None)
        # Identifiers are unique per org: a second customer may not hold one.
        for holder in self.customers.values():
            if external_id is not None and holder["externalId"] == external_id:
                raise _conflict(f"externalId {external_id} already belongs to customer {holder['id']}", "/externalId")
            held_phones = {_phone_key(item["phone"]) for item in holder["phones"]}
            for index, phone in enumerate(phones):
                if _phone_key(phone["phone"]) in held_phones:
                    detail = f"phone {phone['phone']} already belongs to customer {holder['id']}"
                    raise _conflict(detail, f"/phones/{index}/phone")
            held_emails = {item["email"] for item in holder["emails"]}
            for index, item in enumerate(emails):
                if item["email"] in held_emails:
                    detail = f"email {item['email']} already belongs to customer {holder['id']}"
                    raise _conflict(detail, f"/emails/{index}/email")

        now = self._now()
        display_name = name or (emails[0]["email"] if emails else phones[0]["phone"] if phones else "")
        customer: Json = {
            "id": self._next_id("customer"),
            "name": name,
            "displayName": display_name,
            "externalId": external_id,
            "externalIds": [{"externalId": external_id, "verified": False}] if external_id else [],
            "emails": emails,
            "phones": phones,
            "sharedPhones": shared_phones,
            "tags": tags,
            "custom": custom,
            "createdAt": now,
            "updatedAt": now,
            "lastActivityAt": now,
            "deleted": False,
            "verified": False,
            "conversationCounts": {"all": 0, "snoozed": 0, "open": 0, "done": 0},
            "rev": 1,
        }
        self.customers[customer["id"]] = customer
        return Response(201, {"data": self._customer_json(customer)})

    def show_customer(self, request: Request) -> Response:
        return Response(200, {"data": self._customer_json(self._customer(_arg(request)))})

    def _customer_by(self, kind: str, value: str, matches: Any) -> Response:
        for customer in sorted(self.customers.values(), key=lambda item: item["createdAt"], reverse=True):
            if matches(customer):
                return Response(200, {"data": self._customer_json(customer)})
        raise _not_found("Customer", f"with {kind} {value}")

    def customer_by_phone(self, request: Request) -> Response:
        # The identifier lookup finds the phone as it was stored: `+14155550100` does not find a
        # customer whose phone was written `(415) 555-0100` (the search below does).
        wanted = _arg(request, "phone").strip()
        return self._customer_by("phone", wanted, lambda c: any(item["phone"] == wanted for item in c["phones"]))

    def search_customers(self, request: Request) -> Response:
        """`POST /v1/customers/search`: `{"queryContext": "customer"|"conversation", "and"|"or": [...], "sort"?}`.

        Customers by phone (a phone criterion compares digits, so `contains` of the national
        number finds the number however it was written) or by id; conversations by their times
        and status. At most 100 pages and 10,000 results of one query are served.
        """
        fields = _body(request)
        context = fields.get("queryContext", "customer")
        if context not in SEARCH_CONTEXTS:
            raise _bad_request(f"queryContext must be one of {', '.join(SEARCH_CONTEXTS)}", attribute="queryContext")
        groups: dict[str, list[Any]] = {}
        for key in ("and", "or"):
            value = fields.get(key)
            if value is not None and (not isinstance(value, list) or not value):
                raise _bad_request(f"{key} must be a non-empty list of criteria", attribute=key)
            if value is not None:
                groups[key] = value
        if not groups:
            raise _bad_request("and or or must be a non-empty list of criteria", attribute="and")
        criterion = self._customer_criterion if context == "customer" else self._timeline_criterion(context)
        tests: dict[str, list[Any]] = {
            key: [criterion(item, f"{key}.{index}") for index, item in enumerate(criteria)]
            for key, criteria in groups.items()
        }

        def matches(item: Json) -> bool:
            every = all(test(item) for test in tests.get("and", []))
            return every and (not tests.get("or") or any(test(item) for test in tests["or"]))

        if context == "customer":
            customers = [c for c in self.customers.values() if matches(c) and not c["deleted"]]
            customers.sort(key=lambda customer: customer["updatedAt"], reverse=True)
            items = [self._customer_json(customer) for customer in customers]
        else:
            attribute, descending = self._search_sort(context, fields.get("sort"))
            stored, shown = {
                "conversation": (self.conversations, self._conversation_json),
                "message": (self.messages, self._message_json),
                "note": (self.notes, self._note_json),
            }[context]
            found = [item for item in stored.values() if matches(item)]
            found.sort(key=lambda item: (_parse_time(item[attribute]), item["id"]), reverse=descending)
            items = [shown(item) for item in found]
        return Response(200, self._page(request, items, search=True))

    def _search_sort(self, context: str, value: Any) -> tuple[str, bool]:
        """The search's order, `[{"conversation_updated_at": "asc"|"desc"}]`; by default the latest change first."""
        if value is None:
            return "updatedAt", True
        if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict) or len(value[0]) != 1:
            raise _bad_request("sort must be a list of one {attribute: asc|desc}", attribute="sort")
        [(name, order)] = value[0].items()
        if not str(name).startswith(f"{context}_") or name not in SEARCH_TIME_CRITERIA or order not in ("asc", "desc"):
            raise _bad_request(f"sort: {name} {order} is not a sort the sandbox answers", attribute="sort")
        return SEARCH_TIME_CRITERIA[name], order == "desc"

    def _criterion(self, criterion: Any, where: str) -> tuple[str, str, Any]:
        if not isinstance(criterion, dict) or len(criterion) != 1:
            raise _bad_request(f"{where} must be one criterion object", attribute=where)
        [(name, condition)] = criterion.items()
        if not isinstance(condition, dict) or len(condition) != 1:
            raise _bad_request(f"{where}.{name} must be one operator and its value", attribute=where)
        [(operator, value)] = condition.items()
        return str(name), str(operator), value

    def _customer_criterion(self, criterion: Any, where: str) -> Any:
        name, operator, value = self._criterion(criterion, where)
        if name != "customer_id":
            return self._phone_criterion(criterion, where)
        ids = value if operator == "in" else [value] if operator == "equals" else None
        if ids is None or not all(isinstance(item, str) for item in ids):
            raise _bad_request(f"{where}.customer_id: equals an id, or in a list of ids", attribute=where)
        wanted = set(ids)
        return lambda customer: customer["id"] in wanted

    def _timeline_criterion(self, context: str) -> Any:
        return lambda criterion, where: self._time_or_status_criterion(context, criterion, where)

    def _time_or_status_criterion(self, context: str, criterion: Any, where: str) -> Any:
        """A conversation's, message's or note's time (`<context>_created_at`, ...), or a conversation's status."""
        name, operator, value = self._criterion(criterion, where)
        if name == "conversation_status" and context == "conversation":
            values = value if operator == "in" else [value] if operator == "equals" else None
            if values is None or not all(item in STATUSES for item in values):
                raise _bad_request(f"{where}.conversation_status: equals or in of {', '.join(STATUSES)}")
            allowed = set(values)
            return lambda conversation: conversation["status"] in allowed
        if name not in SEARCH_TIME_CRITERIA or not name.startswith(f"{context}_"):
            raise _bad_request(f"{where}: {name} is not a search attribute the sandbox answers", attribute=where)
        if operator not in SEARCH_TIME_OPERATORS:
            raise _bad_request(f"{where}.{name}: operator must be one of {', '.join(SEARCH_TIME_OPERATORS)}")
        try:
            bound = _parse_time(value)
        except (TypeError, ValueError):
            raise _bad_request(f"{where}.{name}: {value!r} is not a date or time", attribute=where) from None
        key = SEARCH_TIME_CRITERIA[name]
        compare = {
            "gte": lambda moment: moment >= bound,
            "gt": lambda moment: moment > bound,
            "lte": lambda moment: moment <= bound,
            "lt": lambda moment: moment < bound,
        }[operator]
        return lambda item: compare(_parse_time(item[key]))

    def _phone_criterion(self, criterion: Any, where: str) -> Any:
        if not isinstance(criterion, dict) or len(criterion) != 1:
            raise _bad_request(f"{where} must be one criterion object", attribute=where)
        [(name, condition)] = criterion.items()
        if name not in SEARCH_PHONE_CRITERIA:
            raise _bad_request(f"{where}: {name} is not a search attribute the sandbox answers", attribute=where)
        if not isinstance(condition, dict) or len(condition) != 1:
            raise _bad_request(f"{where}.{name} must be one operator and its value", attribute=where)
        [(operator, value)] = condition.items()
        if operator not in SEARCH_STRING_OPERATORS:
            raise _bad_request(f"{where}.{name}: operator must be one of {', '.join(SEARCH_STRING_OPERATORS)}")
        if not isinstance(value, str) or not SEARCH_PHONE_RE.match(value):
            raise _bad_request(f"{where}.{name}: {value!r} must match {SEARCH_PHONE_RE.pattern}", attribute=where)
        digits, key = re.sub(r"\D", "", value), SEARCH_PHONE_CRITERIA[name]

        def test(customer: Json) -> bool:
            stored = [re.sub(r"\D", "", item["phone"]) for item in customer.get(key) or ()]
            return any(phone == digits if operator == "equals" else digits in phone for phone in stored)

        return test

    def customer_by_email(self, request: Request) -> Response:
        wanted = _arg(request, "email").strip().lower()
        return self._customer_by("email", wanted, lambda c: any(item["email"] == wanted for item in c["emails"]))

    def customer_by_external_id(self, request: Request) -> Response:
        wanted = _arg(request, "externalId")
        return self._customer_by("externalId", wanted, lambda c: c["externalId"] == wanted)

    # -- Conversations ---------------------------------------------------------------------------

    def _conversation_json(self, conversation: Json) -> Json:
        hidden = ("id", "customer", "createdBy", "modifiedBy")
        attributes = {key: value for key, value in conversation.items() if key not in hidden}
        conversation_id = conversation["id"]

        def user(user_id: str) -> Json:
            return {"data": {"type": "user", "id": user_id}, "links": {"self": f"/v1/users/{user_id}"}}

        return {
            "type": "conversation",
            "id": conversation_id,
            "attributes": attributes,
            "relationships": {
                "org": self._org(),
                "customer": {
                    "data": {"type": "customer", "id": conversation["customer"]},
                    "links": {"self": f"/v1/customers/{conversation['customer']}"},
                },
                "messages": {"links": {"self": f"/v1/conversations/{conversation_id}/messages"}},
                "createdBy": user(conversation["createdBy"]),
                "modifiedBy": user(conversation["modifiedBy"]),
            },
            "links": {"self": f"/v1/conversations/{conversation_id}"},
        }

    def _conversation(self, conversation_id: str) -> Json:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            raise _not_found("Conversation", conversation_id)
        return conversation

    def _users(self, fields: Json, key: str) -> list[str] | None:
        ids = _string_list(fields, key)
        unknown = [user_id for user_id in ids or () if user_id not in self.users]
        if unknown:
            raise _bad_request(f"{key}: unknown user {unknown[0]}", attribute=key)
        return ids

    def _teams(self, fields: Json) -> list[str] | None:
        ids = _string_list(fields, "assignedTeams")
        unknown = [team_id for team_id in ids or () if team_id not in self.teams]
        if unknown:
            raise _bad_request(f"assignedTeams: unknown team {unknown[0]}", attribute="assignedTeams")
        return ids

    def _unique_external_id(self, external_id: str | None, conversation_id: str | None = None) -> None:
        for conversation in self.conversations.values():
            taken = external_id is not None and conversation["externalId"] == external_id
            if taken and conversation["id"] != conversation_id:
                detail = f"externalId {external_id} already belongs to conversation {conversation['id']}"
                raise _conflict(detail, "/externalId")

    def _create_conversation(self, request: Request, customer_id: str, fields: Json) -> Response:
        customer = self._customer(customer_id)
        name = _string(fields, "name")
        external_id = _string(fields, "externalId")
        status = _choice(fields, "status", CREATE_STATUSES) or "open"
        tags = _string_list(fields, "tags") or []
        assigned_users = self._users(fields, "assignedUsers") or []
        assigned_teams = self._teams(fields) or []
        custom = _custom(fields.get("custom"), self.metadata["conversation"])
        direction = _choice(fields, "direction", ("in", "out")) or "in"
        priority = fields.get("priority", 3)
        if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 5:
            raise _bad_request("priority must be a whole number from 1 to 5", attribute="priority")
        self._unique_external_id(external_id)

        now, user_id = self._now(), self._api_user(request)
        conversation: Json = {
            "id": self._next_id("conversation"),
            "customer": customer["id"],
            "createdBy": user_id,
            "modifiedBy": user_id,
            "name": name,
            "externalId": external_id,
            "channels": [],
            "status": status,
            "priority": priority,
            "direction": direction,
            "messageCount": 0,
            "noteCount": 0,
            "outboundMessageCount": 0,
            "satisfaction": 0,
            "createdAt": now,
            "updatedAt": now,
            "modifiedAt": now,
            "lastActivityAt": now,
            "tags": tags,
            "suggestedTags": [],
            "sentiment": None,
            "assignedUsers": assigned_users,
            "assignedTeams": assigned_teams,
            "custom": custom,
            "ended": status == "done",
            "endedAt": now if status == "done" else None,
            # Kustomer's record of the conversation's last close (the done time analytics use).
            "lastDone": {"createdAt": now, "createdBy": user_id} if status == "done" else None,
            "doneCount": 1 if status == "done" else 0,
            "rev": 1,
        }
        self.conversations[conversation["id"]] = conversation
        customer["conversationCounts"]["all"] += 1
        return Response(201, {"data": self._conversation_json(conversation)})

    def create_customer_conversation(self, request: Request) -> Response:
        return self._create_conversation(request, _arg(request), _body(request))

    def create_conversation(self, request: Request) -> Response:
        fields = _body(request)
        customer_id = _string(fields, "customer", required=True)
        assert customer_id is not None
        return self._create_conversation(request, customer_id, fields)

    def show_conversation(self, request: Request) -> Response:
        return Response(200, {"data": self._conversation_json(self._conversation(_arg(request)))})

    def conversation_by_external_id(self, request: Request) -> Response:
        wanted = _arg(request, "externalId")
        for conversation in self.conversations.values():
            if conversation["externalId"] == wanted:
                return Response(200, {"data": self._conversation_json(conversation)})
        raise _not_found("Conversation", f"with externalId {wanted}")

    def customer_conversations(self, request: Request) -> Response:
        customer = self._customer(_arg(request))
        mine = [c for c in self.conversations.values() if c["customer"] == customer["id"]]
        mine.sort(key=lambda conversation: conversation["createdAt"], reverse=True)
        return Response(200, self._page(request, [self._conversation_json(c) for c in mine]))

    def update_conversation(self, request: Request) -> Response:
        conversation = self._conversation(_arg(request))
        self._update_conversation(conversation, _body(request), request)
        return Response(200, {"data": self._conversation_json(conversation)})

    # -- Bulk (asynchronous) ---------------------------------------------------------------------

    def bulk_update_conversations(self, request: Request) -> Response:
        """`PUT /v1/conversations/bulk`: an array of up to 100 `{id, _clientRef?, ...fields}`; a bulk operation.

        `_clientRef` is all or nothing, a non-empty string of at most 255 characters, unique in the
        array (else 400). Each item is applied as `PUT /v1/conversations/{id}` would be; one that is
        refused (unknown, invalid, or drawn by `bulk_item_fail_rate`) changes nothing and its result
        says `status: "error"`. The operation answers 202 `queued`; its first read says `complete`.
        """
        items = request.data
        if not isinstance(items, list) or not items or len(items) > BULK_MAX_ITEMS:
            raise _bad_request(f"the body must be an array of 1 to {BULK_MAX_ITEMS} items", attribute="body")
        refs = [item.get("_clientRef") if isinstance(item, dict) else None for item in items]
        with_refs = [ref for ref in refs if ref is not None]
        if with_refs and len(with_refs) != len(items):
            raise _bad_request("_clientRef must be on every item or on none", attribute="_clientRef")
        if any(not isinstance(ref, str) or not ref or len(ref) > 255 for ref in with_refs):
            raise _bad_request(
                "_clientRef must be a non-empty string of at most 255 characters", attribute="_clientRef"
            )
        if len(set(with_refs)) != len(with_refs):
            raise _bad_request("_clientRef must be unique within the request", attribute="_clientRef")
        results = [self._bulk_item(item, request) for item in items]
        bulk_id = self._next_id("bulk")
        now = self._now()
        updated = [result["objectId"] for result in results if result.get("status") == "updated"]
        batch = {
            "type": "bulk_batch",
            "id": self._next_id("bulk_batch"),
            "attributes": {
                "status": "complete",
                "objectIds": updated,
                "successCount": len(updated),
                "failureCount": len(results) - len(updated),
                "completedAt": now,
                "errors": [result["error"] for result in results if result.get("status") == "error"],
                **({"results": results} if with_refs else {}),
            },
        }
        self.bulk_operations[bulk_id] = {
            "type": "bulk",
            "id": bulk_id,
            "attributes": {
                "status": "queued",
                "resource": "conversation",
                "method": "update",
                "batches": {"complete": 0, "total": 1},
                "createdAt": now,
            },
            "batches": [batch],
        }
        return Response(202, {"data": self._bulk_json(bulk_id)})

    def _bulk_item(self, item: Any, request: Request) -> Json:
        ref = item.get("_clientRef") if isinstance(item, dict) else None
        failed: Json = {"_clientRef": ref, "status": "error"} if ref else {"status": "error"}
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return {**failed, "error": "id is required"}
        conversation = self.conversations.get(item["id"])
        if conversation is None:
            return {**failed, "error": f"conversation {item['id']} not found"}
        if self.bulk_item_fail_rate > 0 and self._random.random() < self.bulk_item_fail_rate:
            self.bulk_item_failures += 1
            return {**failed, "error": "could not be updated (sandbox bulk_item_fail_rate)"}
        fields = {key: value for key, value in item.items() if key not in ("id", "_clientRef")}
        try:
            self._update_conversation(conversation, fields, request)
        except Reject as rejection:
            body = rejection.response.body if isinstance(rejection.response.body, dict) else {}
            errors = body.get("errors") or [{}]
            return {**failed, "error": str(errors[0].get("detail") or errors[0].get("title") or "invalid")}
        result: Json = {"objectId": conversation["id"], "status": "updated"}
        return {"_clientRef": ref, **result} if ref else result

    def _bulk_json(self, bulk_id: str) -> Json:
        return {key: value for key, value in self.bulk_operations[bulk_id].items() if key != "batches"}

    def _bulk(self, request: Request) -> Json:
        operation = self.bulk_operations.get(_arg(request))
        if operation is None:
            raise _not_found("bulk", _arg(request))
        return operation

    def show_bulk(self, request: Request) -> Response:
        """`GET /v1/bulk/{id}`: queued when submitted, complete from its first read on."""
        operation = self._bulk(request)
        attributes = operation["attributes"]
        if attributes["status"] != "complete":
            attributes.update(status="complete", batches={"complete": 1, "total": 1}, completedAt=self._now())
        return Response(200, {"data": self._bulk_json(operation["id"])})

    def bulk_batches(self, request: Request) -> Response:
        """`GET /v1/bulk/{id}/batches`: each batch's counts, objectIds, errors and (with `_clientRef`) results."""
        operation = self._bulk(request)
        return Response(200, {"data": operation["batches"]})

    def _bulk_faults(self, method: str, data: Any) -> Response:
        """`POST /__sandbox/bulk_faults` `{"item_fail_rate": 0.2}`: that share of bulk items fail.

        A failed item changes nothing and its result says `status: "error"`, while the operation
        itself completes.
        """
        if method == "POST":
            rate = data.get("item_fail_rate") if isinstance(data, dict) else None
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ValueError("item_fail_rate: must be a number from 0 to 1")
            self.bulk_item_fail_rate = float(rate)
        return Response(200, {"item_fail_rate": self.bulk_item_fail_rate, "item_failures": self.bulk_item_failures})

    def _update_conversation(self, conversation: Json, fields: Json, request: Request) -> None:
        if "rev" in fields and fields["rev"] != conversation["rev"]:
            raise _conflict(f"rev {fields['rev']} is not the current revision {conversation['rev']}", "/rev")
        changes: Json = {}
        if "name" in fields:
            changes["name"] = _string(fields, "name")
        if "status" in fields:
            changes["status"] = _choice(fields, "status", STATUSES) or conversation["status"]
        if "externalId" in fields:
            changes["externalId"] = _string(fields, "externalId")
            self._unique_external_id(changes["externalId"], conversation["id"])
        if "tags" in fields:
            changes["tags"] = _string_list(fields, "tags") or []
        if "assignedUsers" in fields:
            changes["assignedUsers"] = self._users(fields, "assignedUsers") or []
        if "assignedTeams" in fields:
            changes["assignedTeams"] = self._teams(fields) or []
        if "priority" in fields:
            priority = fields["priority"]
            if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 5:
                raise _bad_request("priority must be a whole number from 1 to 5", attribute="priority")
            changes["priority"] = priority
        if "custom" in fields:
            # Attributes merge: the ones not sent keep their values.
            changes["custom"] = {**conversation["custom"], **_custom(fields["custom"], self.metadata["conversation"])}
        if "snooze" in fields:
            changes["snooze"] = fields["snooze"]
        self._apply(conversation, changes, request)

    def _apply(self, conversation: Json, changes: Json, request: Request) -> None:
        changed = {key: value for key, value in changes.items() if conversation.get(key) != value}
        if not changed:
            return
        conversation.update(changed)
        now = self._now()
        if "status" in changed:
            done = changed["status"] == "done"
            conversation["ended"] = done
            if done:
                # Reopening keeps lastDone and endedAt: they say when it was last done.
                conversation.update(
                    endedAt=now,
                    lastDone={"createdAt": now, "createdBy": self._api_user(request)},
                    doneCount=conversation["doneCount"] + 1,
                )
        conversation.update(updatedAt=now, modifiedAt=now, modifiedBy=self._api_user(request))
        conversation["rev"] += 1

    def add_conversation_tags(self, request: Request) -> Response:
        conversation = self._conversation(_arg(request))
        tags = _string_list(_body(request), "tags")
        if not tags:
            raise _bad_request("tags is required", attribute="tags")
        self._apply(conversation, {"tags": list(dict.fromkeys([*conversation["tags"], *tags]))}, request)
        return Response(200, {"data": self._conversation_json(conversation)})

    def remove_conversation_tags(self, request: Request) -> Response:
        conversation = self._conversation(_arg(request))
        removed = set(_string_list(_body(request), "tags") or ())
        self._apply(conversation, {"tags": [tag for tag in conversation["tags"] if tag not in removed]}, request)
        return Response(200, {"data": self._conversation_json(conversation)})

    def delete_conversation(self, request: Request) -> Response:
        conversation = self._conversation(_arg(request))
        del self.conversations[conversation["id"]]
        for note_id in [key for key, note in self.notes.items() if note["conversation"] == conversation["id"]]:
            del self.notes[note_id]
        return Response(204)

    # -- Notes and attachments -------------------------------------------------------------------

    def _note_json(self, note: Json) -> Json:
        return {
            "type": "note",
            "id": note["id"],
            "attributes": {
                "body": note["body"],
                "attachments": note["attachments"],
                "userMentions": note["userMentions"],
                "createdAt": note["createdAt"],
                "updatedAt": note["updatedAt"],
            },
            "relationships": {
                "org": self._org(),
                "customer": {"data": {"type": "customer", "id": note["customer"]}},
                "conversation": {"data": {"type": "conversation", "id": note["conversation"]}},
                "createdBy": {"data": {"type": "user", "id": note["createdBy"]}},
            },
            "links": {"self": f"/v1/notes/{note['id']}"},
        }

    def _note_attachments(self, value: Any) -> list[Json]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise _bad_request("attachments must be a list", attribute="attachments")
        references: list[Json] = []
        for index, item in enumerate(value):
            attachment_id = item.get("_id") if isinstance(item, dict) else item
            attachment = self.attachments.get(str(attachment_id))
            if attachment is None:
                raise _bad_request(f"attachments[{index}]: unknown attachment", attribute=f"attachments.{index}")
            if not attachment["uploaded"]:
                raise _bad_request(f"attachments[{index}]: the file was never uploaded", attribute="attachments")
            references.append({key: attachment[key] for key in ("_id", "name", "contentType", "contentLength")})
        return references

    def create_note(self, request: Request) -> Response:
        conversation = self._conversation(_arg(request))
        fields = _body(request)
        body = _string(fields, "body", required=True, limit=MAX_NOTE_BODY)
        attachments = self._note_attachments(fields.get("attachments"))
        mentions = fields.get("userMentions") or []
        if not isinstance(mentions, list) or len(mentions) > 20:
            raise _bad_request("userMentions must be a list of at most 20 entries", attribute="userMentions")
        now = self._now()
        note: Json = {
            "id": self._next_id("note"),
            "conversation": conversation["id"],
            "customer": conversation["customer"],
            "createdBy": self._api_user(request),
            "body": body,
            "attachments": attachments,
            "userMentions": mentions,
            "createdAt": now,
            "updatedAt": now,
        }
        self.notes[note["id"]] = note
        conversation["noteCount"] += 1
        conversation["lastActivityAt"] = now
        return Response(201, {"data": self._note_json(note)})

    def conversation_notes(self, request: Request) -> Response:
        conversation = self._conversation(_arg(request))
        notes = [note for note in self.notes.values() if note["conversation"] == conversation["id"]]
        # Newest first, as Kustomer lists a conversation's timeline.
        notes.sort(key=lambda note: note["createdAt"], reverse=True)
        return Response(200, self._page(request, [self._note_json(note) for note in notes]))

    def _message_json(self, message: Json) -> Json:
        attributes = {key: value for key, value in message.items() if key not in ("id", "conversation", "customer")}
        attributes.pop("createdBy", None)
        relationships: Json = {
            "org": self._org(),
            "customer": {"data": {"type": "customer", "id": message["customer"]}},
            "conversation": {"data": {"type": "conversation", "id": message["conversation"]}},
        }
        if message.get("createdBy"):
            relationships["createdBy"] = {"data": {"type": "user", "id": message["createdBy"]}}
        return {
            "type": "message",
            "id": message["id"],
            "attributes": attributes,
            "relationships": relationships,
            "links": {"self": f"/v1/messages/{message['id']}"},
        }

    def conversation_messages(self, request: Request) -> Response:
        conversation = self._conversation(_arg(request))
        messages = [m for m in self.messages.values() if m["conversation"] == conversation["id"]]
        # Newest first, as Kustomer lists a conversation's timeline.
        messages.sort(key=lambda message: message["createdAt"], reverse=True)
        return Response(200, self._page(request, [self._message_json(message) for message in messages]))

    def _attachment_json(self, attachment: Json) -> Json:
        attributes = {key: value for key, value in attachment.items() if key not in ("_id", "key")}
        links = {"self": f"/v1/attachments/{attachment['_id']}"}
        if attachment["uploaded"]:
            links["related"] = f"{self.base_url}{CONTROL_PREFIX}files/{attachment['_id']}"
        return {"type": "attachment", "id": attachment["_id"], "attributes": attributes, "links": links}

    def create_attachment(self, request: Request) -> Response:
        fields = _body(request)
        name = _string(fields, "name", required=True)
        content_type = _string(fields, "contentType", required=True)
        length = fields.get("contentLength")
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise _bad_request("contentLength must be a whole number of bytes", attribute="contentLength")
        attachment_id = self._next_id("attachment")
        attachment: Json = {
            "_id": attachment_id,
            "name": name,
            "contentType": content_type,
            "contentLength": length,
            "uploaded": False,
            "createdAt": self._now(),
            "key": f"attachments/{self.org_id}/{attachment_id}",
        }
        self.attachments[attachment_id] = attachment
        upload = {
            "url": f"{self.base_url}{CONTROL_PREFIX}uploads/{attachment_id}",
            "fields": {
                "key": attachment["key"],
                "Content-Type": content_type,
                "policy": secrets.token_urlsafe(24),
                "x-amz-signature": secrets.token_hex(16),
            },
        }
        return Response(201, {"data": self._attachment_json(attachment), "meta": {"upload": upload}})

    def show_attachment(self, request: Request) -> Response:
        attachment = self.attachments.get(_arg(request))
        if attachment is None:
            raise _not_found("Attachment", _arg(request))
        return Response(200, {"data": self._attachment_json(attachment)})

    # -- Custom attribute metadata ---------------------------------------------------------------

    def _define(self, resource: str, properties: Any) -> None:
        if not isinstance(properties, dict):
            raise _bad_request("properties must be an object", attribute="properties")
        validated: dict[str, Json] = {}
        for name, spec in properties.items():
            match = ATTRIBUTE_NAME_RE.match(name)
            if match is None:
                raise _bad_request(
                    f"Invalid custom attribute name {name}: it must end with a type suffix "
                    f"({', '.join(ATTRIBUTE_TYPES)})",
                    attribute=f"properties.{name}",
                )
            if spec is not None and not isinstance(spec, dict):
                raise _bad_request(f"properties.{name} must be an object", attribute=f"properties.{name}")
            base = name[: match.start(1)]
            # Kustomer's default label: the camelCase name without its suffix, title-cased.
            default_label = re.sub(r"(?<!^)(?=[A-Z])", " ", base[:1].upper() + base[1:])
            validated[name] = {
                **self.metadata[resource].get(name, {}),
                **(spec or {}),
                "type": ATTRIBUTE_TYPES[match.group(1)],
            }
            validated[name].setdefault("displayName", default_label)
        self.metadata[resource].update(validated)

    def _metadata_json(self, resource: str) -> Json:
        return {
            "data": {
                "type": "metadata",
                "id": f"{self.org_id}:{resource}",
                "attributes": {"name": resource, "properties": self.metadata[resource]},
                "links": {"self": f"/v1/metadata/{resource}"},
            }
        }

    def _metadata_resource(self, request: Request) -> str:
        resource = _arg(request, "resource")
        if resource not in self.metadata:
            raise _not_found("Metadata", resource)
        return resource

    def show_metadata(self, request: Request) -> Response:
        return Response(200, self._metadata_json(self._metadata_resource(request)))

    def update_metadata(self, request: Request) -> Response:
        resource = self._metadata_resource(request)
        self._define(resource, _body(request).get("properties"))
        return Response(200, self._metadata_json(resource))

    # -- Users, teams, tokens --------------------------------------------------------------------

    def _user_json(self, user: Json) -> Json:
        attributes = {key: value for key, value in user.items() if key != "id"}
        return {
            "type": "user",
            "id": user["id"],
            "attributes": attributes,
            "relationships": {"org": self._org()},
            "links": {"self": f"/v1/users/{user['id']}"},
        }

    def list_users(self, request: Request) -> Response:
        return Response(200, self._page(request, [self._user_json(user) for user in self.users.values()]))

    def show_user(self, request: Request) -> Response:
        user = self.users.get(_arg(request))
        if user is None:
            raise _not_found("User", _arg(request))
        return Response(200, {"data": self._user_json(user)})

    def current_user(self, request: Request) -> Response:
        return Response(200, {"data": self._user_json(self.users[self._api_user(request)])})

    def current_token(self, request: Request) -> Response:
        user_id = self._api_user(request)
        token = {
            "type": "token",
            "id": hashlib.sha256(user_id.encode()).hexdigest()[:24],
            "attributes": {"name": "Sandbox API key", "roles": ["org.admin", "org.user"]},
            "relationships": {"user": {"data": {"type": "user", "id": user_id}}, "org": self._org()},
        }
        return Response(200, {"data": token})

    def _team_json(self, team: Json) -> Json:
        return {
            "type": "team",
            "id": team["id"],
            "attributes": {"name": team["name"], "displayName": team["name"]},
            "relationships": {"members": {"data": [{"type": "user", "id": m} for m in team["members"]]}},
            "links": {"self": f"/v1/teams/{team['id']}"},
        }

    def list_teams(self, request: Request) -> Response:
        return Response(200, self._page(request, [self._team_json(team) for team in self.teams.values()]))

    def user_teams(self, request: Request) -> Response:
        user_id = _arg(request)
        if user_id not in self.users:
            raise _not_found("User", user_id)
        teams = [self._team_json(team) for team in self.teams.values() if user_id in team["members"]]
        return Response(200, self._page(request, teams))

    # -- Routing: statuses and work sessions -----------------------------------------------------

    def _status_json(self, status: Json) -> Json:
        attributes = {key: value for key, value in status.items() if key != "id"}
        return {
            "type": "user-status",
            "id": status["id"],
            "attributes": attributes,
            "links": {"self": f"/v1/routing/statuses/{status['id']}"},
        }

    def list_statuses(self, request: Request) -> Response:
        return Response(200, self._page(request, [self._status_json(s) for s in self.statuses.values()]))

    def work_session_json(self, session: Json) -> Json:
        """A work session as the API and the webhook envelopes show it."""
        return {
            "type": "work-session",
            "id": session["id"],
            "attributes": {
                key: session[key]
                for key in ("status", "statusType", "active", "signedInAt", "signedOutAt", "updatedAt")
            },
            "relationships": {"user": {"data": {"type": "user", "id": session["user"]}}},
            "links": {"self": f"/v1/routing/work-sessions/{session['id']}"},
        }

    def _work_session(self, session_id: str) -> Json:
        session = self.work_sessions.get(session_id)
        if session is None:
            raise _not_found("WorkSession", session_id)
        return session

    def _status(self, value: Any) -> Json:
        status = self.statuses.get(value) if isinstance(value, str) else None
        if status is None:
            raise _bad_request(f"status: unknown routing status {value}", attribute="status")
        return status

    def _sessions_page(self, request: Request, sessions: list[Json]) -> Response:
        active = request.param("active")
        if active in ("true", "false"):
            sessions = [session for session in sessions if session["active"] == (active == "true")]
        status_type = request.param("statusType")
        if status_type:
            sessions = [session for session in sessions if session["statusType"] == status_type]
        sessions.sort(key=lambda session: session["signedInAt"], reverse=True)
        return Response(200, self._page(request, [self.work_session_json(session) for session in sessions]))

    def list_work_sessions(self, request: Request) -> Response:
        sessions = list(self.work_sessions.values())
        user = request.param("user")
        # Kustomer documents `user=true` (the caller's own sessions); the sandbox also takes a user id.
        if user == "true":
            user = self._api_user(request)
        if user and user != "false":
            sessions = [session for session in sessions if session["user"] == user]
        return self._sessions_page(request, sessions)

    def user_work_sessions(self, request: Request) -> Response:
        user_id = _arg(request)
        if user_id not in self.users:
            raise _not_found("User", user_id)
        return self._sessions_page(request, [s for s in self.work_sessions.values() if s["user"] == user_id])

    def show_work_session(self, request: Request) -> Response:
        return Response(200, {"data": self.work_session_json(self._work_session(_arg(request)))})

    def update_work_session(self, request: Request) -> Response:
        session = self._work_session(_arg(request))
        status = self._status(_body(request).get("status"))
        if not session["active"]:
            detail = f"work session {session['id']} ended at {session['signedOutAt']} and is read-only"
            raise _conflict(detail, "/status")
        self._change_session(session, {"status": status})
        return Response(200, {"data": self.work_session_json(session)})

    def _change_session(self, session: Json, change: Json) -> None:
        """Apply a status change or a sign-out and emit `kustomer.work-session.update`."""
        before = {key: session[key] for key in ("status", "statusType", "active", "signedOutAt")}
        updated_before, now = session["updatedAt"], self._now()
        if "status" in change:
            session["status"], session["statusType"] = change["status"]["id"], change["status"]["statusType"]
        # Going offline ends the session, as on Kustomer.
        if change.get("active") is False or session["statusType"] == "offline":
            session["active"], session["signedOutAt"] = False, now
        after = {key: session[key] for key in before}
        changed = {key: {"op": "replace", "before": before[key], "after": after[key]} for key in before}
        changed = {key: value for key, value in changed.items() if value["before"] != value["after"]}
        if not changed:
            return
        session["updatedAt"] = now
        changed["updatedAt"] = {"op": "replace", "before": updated_before, "after": now}
        self._emit("kustomer.work-session.update", self.work_session_json(session), {"attributes": changed})

    # -- Sandbox control: agent instances, uploads, files ----------------------------------------

    def sign_in(self, fields: Any) -> Json:
        """Start a work session (an agent instance: a tab or a computer); emits the create event."""
        if not isinstance(fields, dict):
            raise _bad_request("the body must be a JSON object")
        user_id = fields.get("user")
        if user_id not in self.users:
            raise _bad_request(f"user: unknown user {user_id}", attribute="user")
        status = self._status(fields.get("status"))
        if status["statusType"] == "offline":
            raise _bad_request("status: a session cannot start offline", attribute="status")
        now = self._now()
        session: Json = {
            "id": self._next_id("work-session"),
            "user": user_id,
            "status": status["id"],
            "statusType": status["statusType"],
            "active": True,
            "signedInAt": now,
            "signedOutAt": None,
            "updatedAt": now,
        }
        self.work_sessions[session["id"]] = session
        self._emit("kustomer.work-session.create", self.work_session_json(session), None)
        return session

    def change_session(self, session_id: str, fields: Any) -> Json:
        """A status change (`{"status"}`) or a sign-out (`{"active": false}`) made by the agent."""
        session = self._work_session(session_id)
        if not isinstance(fields, dict) or ("status" not in fields and fields.get("active") is not False):
            raise _bad_request('send {"status": "<statusId>"} or {"active": false}')
        if not session["active"]:
            raise _conflict(f"work session {session_id} has ended", "/active")
        change: Json = {}
        if "status" in fields:
            change["status"] = self._status(fields["status"])
        if fields.get("active") is False:
            change["active"] = False
        self._change_session(session, change)
        return session

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes, client_ip: str) -> Response:
        path = urlsplit(target).path
        if path.startswith(CONTROL_PREFIX):
            try:
                response = self._sandbox_control(method, path.removeprefix(CONTROL_PREFIX).rstrip("/"), headers, body)
            except Reject as rejection:
                response = rejection.response
            if response is not None:
                return response.encoded()
        return super().handle(method, target, headers, body, client_ip)

    def control(self, method: str, action: str, data: Any) -> Response | None:
        """`POST /__sandbox/backdate` `{"conversation": id, "lastDoneAt"?, "updatedAt"?}`: move its times.

        Stands in for the days that pass in a real org: a conversation done 9 days ago and touched
        by a rule 3 days ago, without waiting for either.
        """
        if (method, action) == ("POST", "seed"):
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            return Response(200, self.seed(data))
        if action == "bulk_faults" and method in ("GET", "POST"):
            return self._bulk_faults(method, data)
        if (method, action) != ("POST", "backdate"):
            return None
        if not isinstance(data, dict) or data.get("conversation") not in self.conversations:
            raise ValueError("conversation: must be the id of a conversation")
        conversation = self.conversations[data["conversation"]]
        for key in ("lastDoneAt", "updatedAt"):
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"{key}: must be an ISO 8601 time")
            datetime.fromisoformat(value)
            if key == "lastDoneAt":
                conversation["lastDone"] = {**(conversation["lastDone"] or {}), "createdAt": value}
                conversation["endedAt"] = value
            else:
                conversation["updatedAt"] = value
        return Response(200, {"data": self._conversation_json(conversation)})

    # -- Seeding (QA import) ----------------------------------------------------------------------

    def seed_stores(self) -> Sequence[tuple[str, Callable[[Json], Any]]]:
        return (
            ("users", self._seed_user),
            ("customers", self._seed_customer),
            ("conversations", self._seed_conversation),
        )

    def _seed_user(self, fields: Json) -> str:
        user_id = str(fields.get("id") or self._next_id("user"))
        now = self._now()
        self.users[user_id] = {
            "id": user_id,
            "name": fields.get("name") or "",
            "displayName": fields.get("name") or "",
            # A user is invited by email; the sandbox also keeps one without, for the import's T1 rule.
            "email": str(fields["email"]).lower() if fields.get("email") else None,
            "userType": fields.get("userType", "user"),
            "deleted": bool(fields.get("deleted")),
            "createdAt": now,
            "updatedAt": fields.get("updatedAt") or now,
        }
        return user_id

    def _seed_customer(self, fields: Json) -> str:
        now = self._now()
        customer_id = self._next_id("customer")
        phones = [{"phone": phone, "type": "mobile", "verified": False} for phone in fields.get("phones") or ()]
        emails = [
            {"email": str(email).lower(), "type": "home", "verified": False} for email in fields.get("emails") or ()
        ]
        self.customers[customer_id] = {
            "id": customer_id,
            "name": fields.get("name"),
            "displayName": fields.get("name") or "",
            "externalId": None,
            "externalIds": [],
            "emails": emails,
            "phones": phones,
            "sharedPhones": [],
            "tags": [],
            "custom": {},
            "createdAt": now,
            "updatedAt": now,
            "lastActivityAt": now,
            "deleted": False,
            "verified": False,
            "conversationCounts": {"all": 0, "snoozed": 0, "open": 0, "done": 0},
            "rev": 1,
        }
        return customer_id

    def _seed_conversation(self, fields: Json) -> str:
        customer = self.customers.get(str(fields.get("customer")))
        if customer is None:
            raise ValueError("conversations: each needs the id of a seeded customer")
        status = fields.get("status", "done")
        if status not in STATUSES:
            raise ValueError(f"conversations: status must be one of {', '.join(STATUSES)}")
        assigned = [str(user) for user in fields.get("assignedUsers") or ()]
        if any(user not in self.users for user in assigned):
            raise ValueError("conversations: assignedUsers must be users of the org")
        channels = [str(channel) for channel in fields.get("channels") or ()]
        if any(channel not in MESSAGE_CHANNELS for channel in channels):
            raise ValueError(f"conversations: channels must be of {', '.join(MESSAGE_CHANNELS)}")
        now = self._now()
        created_at = fields.get("createdAt") or now
        updated_at = fields.get("updatedAt") or now
        done_at = fields.get("lastDoneAt") or (updated_at if status == "done" else None)
        for moment in (created_at, updated_at, done_at):
            if moment is not None:
                _parse_time(moment)
        creator = next(iter(self.api_keys.values()), assigned[0] if assigned else "")
        conversation_id = self._next_id("conversation")
        messages, notes = fields.get("messages") or [], fields.get("notes") or []
        self.conversations[conversation_id] = {
            "id": conversation_id,
            "customer": customer["id"],
            "createdBy": creator,
            "modifiedBy": creator,
            "name": fields.get("name"),
            "externalId": None,
            "channels": channels,
            "status": status,
            "priority": 3,
            "direction": "in",
            "messageCount": len(messages),
            "noteCount": len(notes),
            "outboundMessageCount": sum(1 for message in messages if message.get("direction") == "out"),
            "satisfaction": 0,
            "preview": (messages[0].get("body") or "")[:200] if messages else None,
            "createdAt": created_at,
            "updatedAt": updated_at,
            "modifiedAt": updated_at,
            "lastActivityAt": updated_at,
            "tags": [str(tag) for tag in fields.get("tags") or ()],
            "suggestedTags": [],
            "sentiment": None,
            "assignedUsers": assigned,
            "assignedTeams": [],
            "custom": {},
            "ended": status == "done",
            "endedAt": done_at,
            "lastDone": {"createdAt": done_at, "createdBy": creator} if done_at else None,
            "doneCount": 1 if done_at else 0,
            "rev": 1,
        }
        customer["conversationCounts"]["all"] += 1
        for index, item in enumerate(messages):
            if not isinstance(item, dict) or item.get("direction", "in") not in ("in", "out"):
                raise ValueError(f"conversations: messages[{index}] needs a direction of in or out")
            message_id = self._next_id("message")
            body = str(item.get("body") or "")
            moment = item.get("createdAt") or created_at
            self.messages[message_id] = {
                "id": message_id,
                "conversation": conversation_id,
                "customer": customer["id"],
                # The user who sent an outgoing message (none for an automatic one or an incoming one).
                "createdBy": item.get("createdBy") if item.get("direction") == "out" else None,
                "channel": item.get("channel") or (channels[0] if channels else "chat"),
                "app": item.get("app") or "sandbox",
                "direction": item.get("direction", "in"),
                "auto": bool(item.get("auto")),
                "status": "received" if item.get("direction", "in") == "in" else "sent",
                "body": body,
                "preview": body[:200],
                "sentAt": moment,
                "createdAt": moment,
                "updatedAt": moment,
            }
        for index, item in enumerate(notes):
            if not isinstance(item, dict) or not item.get("body"):
                raise ValueError(f"conversations: notes[{index}] needs a body")
            note_id = self._next_id("note")
            moment = item.get("createdAt") or created_at
            self.notes[note_id] = {
                "id": note_id,
                "conversation": conversation_id,
                "customer": customer["id"],
                "createdBy": item.get("createdBy") or creator,
                "body": str(item["body"]),
                "attachments": [],
                "userMentions": [],
                "createdAt": moment,
                "updatedAt": moment,
            }
        return conversation_id

    def generate(self, count: int, rng: random.Random) -> Json:
        """A reproducible org: 20 agents (and two not importable), 2,000 customers, `count` conversations in 95 days."""
        agents = [
            {"id": f"5f0a1{n:019d}", "name": f"Agent{n} Seeded", "email": f"kagent{n}@seed.example.com"}
            for n in range(20)
        ]
        users = [
            *agents,
            {"id": f"5f0a2{0:019d}", "name": "Mononym", "email": "kmono@seed.example.com"},
            {"id": f"5f0a2{1:019d}", "name": "Seed Bot", "email": "kbot@seed.example.com", "userType": "machine"},
        ]
        for user in users:
            self._seed_user(dict(user))
        customers = [
            self._seed_customer({"name": f"Customer {n}", "emails": [f"kcust{n}@seed.example.net"],
                                 "phones": [f"+1415{n:07d}"]})
            for n in range(2000)
        ]  # fmt: skip
        now = time.time()
        conversations = []
        for n in range(count):
            created = now - rng.uniform(0, 95) * 86400
            updated = min(now, created + rng.uniform(0, 2) * 86400)
            agent = rng.choice(agents)["id"]
            words = " ".join(rng.choices(SEED_WORDS, k=6))
            channel = rng.choice(("email", "chat", "voice", "sms", "whatsapp"))
            conversations.append({
                "customer": rng.choice(customers),
                "name": f"Seeded {n}: {words[:40]}",
                "status": "done" if rng.random() < 0.8 else "open",
                "channels": [channel],
                "assignedUsers": [agent] if rng.random() < 0.95 else [],
                "tags": rng.sample(("vip", "billing", "technical", "returns"), k=rng.randint(0, 2)),
                "createdAt": _kustomer_time(created),
                "updatedAt": _kustomer_time(updated),
                "messages": [
                    {"direction": "in", "body": f"Customer writes: {words}", "createdAt": _kustomer_time(created)},
                    {"direction": "out", "body": f"Agent answers about {words[:30]}", "createdBy": agent,
                     "createdAt": _kustomer_time(updated)},
                ],
                "notes": [{"body": f"Internal: {words[:30]}", "createdBy": agent, "createdAt": _kustomer_time(updated)}]
                if rng.random() < 0.3 else [],
            })  # fmt: skip
        return {"conversations": conversations}

    def _sandbox_control(self, method: str, action: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        parts = action.split("/")
        if parts[0] == "work-sessions" and method == "POST" and len(parts) <= 2:
            try:
                fields = json.loads(body or b"{}")
            except ValueError:
                raise _bad_request("the body is not valid JSON") from None
            with self._lock:
                if len(parts) == 1:
                    return Response(201, {"data": self.work_session_json(self.sign_in(fields))})
                return Response(200, {"data": self.work_session_json(self.change_session(parts[1], fields))})
        if parts[0] == "uploads" and method == "POST" and len(parts) == 2:
            return self._upload(parts[1], headers, body)
        if parts[0] == "files" and method == "GET" and len(parts) == 2:
            with self._lock:
                attachment, content = self.attachments.get(parts[1]), self.files.get(parts[1])
            if attachment is None or content is None:
                raise _not_found("File", parts[1])
            return Response(200, content, {"Content-Type": attachment["contentType"]})
        return None

    def _upload(self, attachment_id: str, headers: Mapping[str, str], body: bytes) -> Response:
        """The presigned form: multipart fields with the policy's `key`, then the file (S3 answers 204)."""
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise _bad_request("the upload must be multipart/form-data")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        fields: dict[str, str] = {}
        file_content: bytes | None = None
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                payload = b""
            if name == "file":
                file_content = payload
            elif isinstance(name, str):
                fields[name] = payload.decode()
        with self._lock:
            attachment = self.attachments.get(attachment_id)
            if attachment is None:
                raise _not_found("Attachment", attachment_id)
            if fields.get("key") != attachment["key"] or file_content is None:
                raise _bad_request("the form needs the policy's key field and a file part named file")
            if len(file_content) != attachment["contentLength"]:
                raise _bad_request("the file's size is not the attachment's contentLength")
            self.files[attachment_id] = file_content
            attachment["uploaded"] = True
        return Response(204)

    # -- Outbound webhooks -----------------------------------------------------------------------

    def _webhook_json(self, webhook: Json) -> Json:
        attributes = {key: value for key, value in webhook.items() if key != "id"}
        return {
            "type": "outbound-webhook",
            "id": webhook["id"],
            "attributes": attributes,
            "links": {"self": f"/v1/outbound-webhooks/{webhook['id']}"},
        }

    def create_webhook(self, request: Request) -> Response:
        fields = _body(request)
        name = _string(fields, "name", required=True, limit=255)
        url = _string(fields, "url", required=True, limit=2048)
        assert url is not None
        # Kustomer requires https; the sandbox also takes http so a loopback receiver works.
        if urlsplit(url).scheme not in ("https", "http") or not urlsplit(url).netloc:
            raise _bad_request("url must be an https URL", attribute="url")
        events = _string_list(fields, "events")
        if not events or len(events) > len(WEBHOOK_EVENTS):
            raise _bad_request("events must list the events to subscribe to", attribute="events")
        unknown = [event for event in events if event not in WEBHOOK_EVENTS]
        if unknown:
            raise _bad_request(f"events: unknown event {unknown[0]}", attribute="events")
        extra_headers = fields.get("headers") or []
        if not isinstance(extra_headers, list) or not all(
            isinstance(h, dict) and isinstance(h.get("name"), str) and isinstance(h.get("value"), str)
            for h in extra_headers
        ):
            raise _bad_request("headers must be a list of {name, value}", attribute="headers")
        now = self._now()
        webhook: Json = {
            "id": self._next_id("webhook"),
            "name": name,
            "url": url,
            "events": events,
            "headers": extra_headers,
            "enabled": True,
            # The HMAC key deliveries are signed with.
            "token": secrets.token_hex(32),
            "createdAt": now,
            "updatedAt": now,
        }
        self.webhooks[webhook["id"]] = webhook
        return Response(201, {"data": self._webhook_json(webhook)})

    def list_webhooks(self, request: Request) -> Response:
        return Response(200, self._page(request, [self._webhook_json(w) for w in self.webhooks.values()]))

    def delete_webhook(self, request: Request) -> Response:
        if self.webhooks.pop(_arg(request), None) is None:
            raise _not_found("OutboundWebhook", _arg(request))
        return Response(204)

    def list_webhook_events(self, request: Request) -> Response:
        return Response(200, {"data": [{"type": "event", "id": event} for event in WEBHOOK_EVENTS]})

    def _emit(self, name: str, data: Json, changes: Json | None) -> None:
        """Queue the event for every enabled webhook subscribed to it (called under the lock)."""
        envelope = {
            "id": self._next_id("event"),
            "name": name,
            "org": self.org_id,
            "partition": self.org_id,
            "data": data,
            "changes": changes,
        }
        raw = json.dumps(envelope, separators=(",", ":")).encode()
        for webhook in self.webhooks.values():
            if webhook["enabled"] and name in webhook["events"]:
                self._outbox.put((self._generation, dict(webhook), raw, envelope))
        with self._delivery_lock:
            if self._sender is None or not self._sender.is_alive():
                self._sender = threading.Thread(
                    target=self._send_forever, name="sandbox-kustomer-webhooks", daemon=True
                )
                self._sender.start()

    def _send_forever(self) -> None:
        while True:
            generation, webhook, raw, envelope = self._outbox.get()
            try:
                if generation == self._generation:
                    self._deliver(webhook, raw, envelope)
            finally:
                self._outbox.task_done()

    def _deliver(self, webhook: Json, raw: bytes, envelope: Json) -> None:
        """POST one event, signed; a failure is recorded and not retried."""
        # As Kustomer documents (events/delivery-and-retries): lowercase hex HMAC-SHA256 of the raw
        # body keyed with the webhook's token, and no timestamp header.
        signature = hmac.new(webhook["token"].encode(), raw, hashlib.sha256).hexdigest()
        headers = {item["name"]: item["value"] for item in webhook["headers"]}
        headers.update(
            {
                "Content-Type": "application/json",
                "X-Kustomer-Webhook-Event": envelope["name"],
                "X-Kustomer-Webhook-Signature": signature,
            }
        )
        outcome: Json = {"event": envelope["name"], "eventId": envelope["id"], "webhook": webhook["id"]}
        try:
            # The URL was checked to be http(s) when the webhook was created.
            post = urllib.request.Request(webhook["url"], data=raw, headers=headers, method="POST")  # noqa: S310
            with urllib.request.urlopen(post, timeout=DELIVERY_TIMEOUT_SECONDS) as answer:  # noqa: S310
                outcome["status"] = answer.status
        except urllib.error.HTTPError as exc:
            outcome["status"], outcome["error"] = exc.code, f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            outcome["status"], outcome["error"] = None, f"{exc.__class__.__name__}: {exc}"
        with self._lock:
            self.delivery_counts[envelope["name"]] += 1
            if "error" in outcome:
                self.delivery_failures += 1
            self.deliveries.append(outcome)

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery was attempted; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while self._outbox.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    routes = (
        ("GET", "/v1/auth/tokens/current", current_token),
        ("GET", "/v1/users/current", current_user),
        ("GET", "/v1/users", list_users),
        ("GET", "/v1/users/{id}", show_user),
        ("GET", "/v1/users/{id}/teams", user_teams),
        ("GET", "/v1/teams", list_teams),
        ("POST", "/v1/customers", create_customer),
        ("POST", "/v1/customers/search", search_customers),
        ("GET", "/v1/customers/phone={phone}", customer_by_phone),
        ("GET", "/v1/customers/email={email}", customer_by_email),
        ("GET", "/v1/customers/externalId={externalId}", customer_by_external_id),
        ("GET", "/v1/customers/{id}", show_customer),
        ("GET", "/v1/customers/{id}/conversations", customer_conversations),
        ("POST", "/v1/customers/{id}/conversations", create_customer_conversation),
        ("POST", "/v1/conversations", create_conversation),
        ("GET", "/v1/conversations/externalId={externalId}", conversation_by_external_id),
        ("GET", "/v1/conversations/{id}", show_conversation),
        ("PUT", "/v1/conversations/bulk", bulk_update_conversations),
        ("GET", "/v1/bulk/{id}", show_bulk),
        ("GET", "/v1/bulk/{id}/batches", bulk_batches),
        ("PATCH", "/v1/conversations/{id}", update_conversation),
        ("PUT", "/v1/conversations/{id}", update_conversation),
        ("DELETE", "/v1/conversations/{id}", delete_conversation),
        ("POST", "/v1/conversations/{id}/tags", add_conversation_tags),
        ("DELETE", "/v1/conversations/{id}/tags", remove_conversation_tags),
        ("GET", "/v1/conversations/{id}/notes", conversation_notes),
        ("GET", "/v1/conversations/{id}/messages", conversation_messages),
        ("POST", "/v1/conversations/{id}/notes", create_note),
        ("POST", "/v1/attachments", create_attachment),
        ("GET", "/v1/attachments/{id}", show_attachment),
        ("GET", "/v1/metadata/{resource}", show_metadata),
        ("PUT", "/v1/metadata/{resource}", update_metadata),
        ("GET", "/v1/routing/statuses", list_statuses),
        ("GET", "/v1/routing/work-sessions", list_work_sessions),
        ("GET", "/v1/routing/work-sessions/{id}", show_work_session),
        ("PUT", "/v1/routing/work-sessions/{id}", update_work_session),
        ("GET", "/v1/routing/users/{id}/work-sessions", user_work_sessions),
        ("GET", "/v1/outbound-webhooks/events", list_webhook_events),
        ("GET", "/v1/outbound-webhooks", list_webhooks),
        ("POST", "/v1/outbound-webhooks", create_webhook),
        ("DELETE", "/v1/outbound-webhooks/{id}", delete_webhook),
    )
