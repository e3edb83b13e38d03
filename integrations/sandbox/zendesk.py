"""A sandbox Zendesk: the Support API v2 subset the provider uses, in Zendesk's own shapes.

Paths, bodies, status codes, error bodies and headers follow shared/crm-api-shapes.md §1: users
(create, show, search, global search, cursor listing), tickets (create, show, update, list by
external_id), ticket comments and audits, the 401/404/422 bodies and the rate-limit headers.
Every path works with or without `.json`, as on Zendesk.
"""

import base64
import bisect
import html
import json
import mimetypes
import random
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from integrations.sandbox.base import Handler, Reject, Request, Response, Sandbox

# Zendesk user ids are large integers; starting here makes the sandbox's look like them.
FIRST_USER_ID = 360000000001
FIRST_TICKET_ID = 1
# Audits, comments and audit events share one id sequence, as in Zendesk's audit log.
FIRST_EVENT_ID = 24000000001
ROLES = ("end-user", "agent", "admin")
AGENT_ROLES = ("agent", "admin")
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("urgent", "high", "normal", "low")
TICKET_TYPES = ("problem", "incident", "question", "task")
# Zendesk never returns more items per page than this.
MAX_PAGE_SIZE = 100
# Tickets one update_many (or create_many) request may carry.
MAX_BULK_TICKETS = 100
# Zendesk's own limit on the Update Ticket endpoint, per account, besides the plan's (§1.2).
TICKET_UPDATES_PER_MINUTE = 100
# Where a ticket, comment or audit written through the API says it came from.
VIA_API: dict[str, Any] = {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}}
# Ticket fields and attachments have id sequences of their own, in Zendesk's large-integer style.
FIRST_TICKET_FIELD_ID = 360011737001
FIRST_ATTACHMENT_ID = 12977278300001
# A ticket's metric set id is its ticket id plus this (Zendesk's are another large-integer sequence).
FIRST_METRIC_SET_ID = 33000000000
# The custom ticket field types Zendesk accepts on create (crm-api-shapes.md §1.5).
CUSTOM_FIELD_TYPES = (
    "text",
    "textarea",
    "checkbox",
    "date",
    "integer",
    "decimal",
    "regexp",
    "partialcreditcard",
    "multiselect",
    "tagger",
    "lookup",
)
# Dropdown types, which need `custom_field_options`.
OPTION_FIELD_TYPES = ("multiselect", "tagger")
# The system fields every account lists first, as (type, title, description, removable, options);
# recorded in go-zendesk fixture/GET/ticket_fields.json.
SYSTEM_TICKET_FIELDS: tuple[tuple[str, str, str, bool, tuple[str, ...]], ...] = (
    ("subject", "Subject", "", False, ()),
    ("description", "Description", "Please enter the details of your request.", False, ()),
    ("status", "Status", "Request status", False, ("open", "pending", "solved")),
    ("tickettype", "Type", "Request type", True, TICKET_TYPES),
    ("priority", "Priority", "Request priority", True, PRIORITIES),
    ("group", "Group", "Request group", False, ()),
    ("assignee", "Assignee", "Agent assigned to your request", False, ()),
)
# Where a field created without one is placed (Zendesk's own default, per the recorded create).
DEFAULT_FIELD_POSITION = 9999
# An upload token that no comment used expires after this long (recorded: 3 days).
UPLOAD_TOKEN_TTL = timedelta(days=3)
# The tag Zendesk puts on a ticket a merge closed.
CLOSED_BY_MERGE_TAG = "closed_by_merge"
# The keys of a comment that also appear in its audit's Comment event.
COMMENT_EVENT_KEYS = ("id", "type", "author_id", "body", "html_body", "plain_body", "public", "attachments", "audit_id")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# A search term: `key:value`, `key:"quoted value"`, or a bare word.
SEARCH_TERM_RE = re.compile(r'(?:[^\s:"]+:)?"[^"]*"|\S+')

Json = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _record_invalid(field: str, description: str, error: str | None = None) -> Reject:
    """Zendesk's 422: `details` keyed by field, each an array of `{description, error?}`."""
    detail = {"description": description} if error is None else {"description": description, "error": error}
    body = {"error": "RecordInvalid", "description": "Record validation errors", "details": {field: [detail]}}
    return Reject(Response(422, body))


def _record_not_found() -> Reject:
    return Reject(Response(404, {"error": "RecordNotFound", "description": "Not found"}))


def _bad_pagination(description: str) -> Reject:
    return Reject(Response(400, {"error": "InvalidPaginationParameter", "description": description}))


def _root(request: Request, key: str) -> Json:
    """The object under the body's root key (`{"ticket": {...}}`), or a 400 when it is missing."""
    value = request.data.get(key) if isinstance(request.data, dict) else None
    if not isinstance(value, dict):
        description = f"param is missing or the value is empty: {key}"
        raise Reject(Response(400, {"error": "ParameterMissing", "description": description}))
    return value


def _as_id(value: Any) -> int | None:
    """An id as Zendesk accepts it (an integer, or a string of digits), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


def _int_or(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _text(fields: Mapping[str, Any], key: str, label: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _record_invalid(key, f"{label}: is invalid", "InvalidValue")
    return str(value)


def _choice(fields: Mapping[str, Any], key: str, allowed: tuple[str, ...], label: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise _record_invalid(key, f"{label}: {value} is not valid", "InvalidValue")
    return value


def _tags(value: Any, key: str = "tags") -> list[str]:
    """Tags as Zendesk stores them: lower case, spaces as `_`, no repeats, in first-seen order."""
    if value is None:
        return []
    if not isinstance(value, list) or any(isinstance(tag, bool) or not isinstance(tag, str | int) for tag in value):
        raise _record_invalid(key, f"{key}: must be a list of tags", "InvalidValue")
    tags = ("_".join(str(tag).lower().split()) for tag in value)
    return list(dict.fromkeys(tag for tag in tags if tag))


def _custom_fields(value: Any) -> dict[int, Any]:
    """`[{"id": field_id, "value": v}, ...]` as {field_id: v}."""
    invalid = _record_invalid("custom_fields", "Custom fields: each needs an id and a value", "InvalidValue")
    if not isinstance(value, list):
        raise invalid
    fields: dict[int, Any] = {}
    for item in value:
        field_id = _as_id(item.get("id")) if isinstance(item, dict) else None
        if field_id is None:
            raise invalid
        fields[field_id] = item.get("value")
    return fields


def _like(pattern: str, value: str | None) -> bool:
    """Zendesk search matching: case-insensitive, `*` standing for any run of characters."""
    if value is None:
        return False
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value, re.IGNORECASE) is not None


def _phone_like(pattern: str, phone: str | None) -> bool:
    # Zendesk compares digits only: `phone:15135557611` is the whole number whatever its
    # formatting, `phone:*5135557611` any number ending with those digits.
    digits_pattern = re.sub(r"[^\d*]", "", pattern)
    return bool(digits_pattern.strip("*")) and phone is not None and _like(digits_pattern, _digits(phone))


def _user_matches(user: Json, query: str) -> bool:
    """Whether a user satisfies every term of a Zendesk search query."""
    for term in SEARCH_TERM_RE.findall(query):
        key, colon, value = ("", "", term) if term.startswith('"') else term.partition(":")
        value = value.strip('"')
        if not colon:
            matched = any(_like(f"*{value}*", user[name]) for name in ("name", "email", "phone"))
        elif key == "phone":
            matched = _phone_like(value, user["phone"])
        elif key in ("email", "name", "role", "external_id"):
            matched = _like(value, user[key])
        elif key == "type":
            matched = value == "user"
        else:
            matched = False
        if not matched:
            return False
    return True


def _cursor(user_id: int) -> str:
    # Opaque to clients, like Zendesk's (whose cursors also decode to `{"o":"id",...}`).
    return base64.urlsafe_b64encode(json.dumps({"o": "id", "v": user_id}, separators=(",", ":")).encode()).decode()


def _cursor_id(cursor: str, name: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))["v"]
    except (ValueError, KeyError, TypeError):
        raise _bad_pagination(f"{name} is not a valid cursor") from None
    if not isinstance(value, int):
        raise _bad_pagination(f"{name} is not a valid cursor")
    return value


def _basic_token_email(authorization: str) -> str | None:
    """The email of `Basic base64("{email}/token:{api_token}")` credentials, or None if malformed."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    email, separator, token = decoded.partition("/token:")
    return email if separator and email and token else None


def _html(body: str) -> str:
    paragraphs = html.escape(body).replace("\n", "<br>")
    return f'<div class="zd-comment" dir="auto"><p dir="auto">{paragraphs}</p></div>'


class ZendeskSandbox(Sandbox):
    """Zendesk Support API v2: users, search, tickets, comments and audits, with Zendesk's errors.

    Any well-formed credentials are accepted. The fixture is `{"users": [{name, email, role, phone}, ...]}`.
    """

    kind = "zendesk"
    optional_suffix = ".json"
    # The Enterprise plan's requests per minute (crm-api-shapes.md §1.2).
    advertised_rate_limit = 700
    # An upload's body is the file itself.
    raw_body_routes = frozenset({"POST /api/v2/uploads.json"})
    # Update Ticket has a limit of its own; update_many does not count against it.
    endpoint_classes = {"tickets-update": (frozenset({"PUT /api/v2/tickets/{id}.json"}), TICKET_UPDATES_PER_MINUTE)}

    # -- State -----------------------------------------------------------------------------------

    def reset_state(self) -> None:
        self.users: dict[int, Json] = {}
        self.tickets: dict[int, Json] = {}
        self.comments: dict[int, list[Json]] = {}
        # Each ticket's metric set (GET /tickets/{id}/metrics, the `metric_sets` sideload).
        self.metrics: dict[int, Json] = {}
        self._next_ids = {"user": FIRST_USER_ID, "ticket": FIRST_TICKET_ID, "event": FIRST_EVENT_ID}
        # Talk Partner Edition screen pops, in the order they were asked for (GET /__sandbox/displays).
        self.displays: list[Json] = []
        # Share of update_many items that fail in their job result (POST /__sandbox/job_faults).
        self.job_item_fail_rate = 0.0
        self.job_item_failures = 0
        self._reset_fields_and_files()

    def load_fixture(self, fixture: Mapping[str, Any]) -> None:
        users = fixture.get("users", [])
        if not isinstance(users, list):
            raise ValueError("the fixture's `users` must be a list")
        for index, fields in enumerate(users):
            try:
                self._add_user(fields)
            except Reject as rejection:
                raise ValueError(f"fixture user {index}: {json.dumps(rejection.response.body)}") from None

    def authenticate(self, headers: Mapping[str, str]) -> Response | None:
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if (scheme.lower() == "bearer" and token.strip()) or _basic_token_email(authorization):
            return None
        return Response(401, {"error": "Couldn't authenticate you"}, {"WWW-Authenticate": 'Basic realm="Web Password"'})

    def connection_settings(self) -> dict[str, str]:
        # Any email/token pair authenticates; these are the demo's.
        return {"email": "admin@example.com", "api_token": "sandbox-token"}

    def rate_limit_headers(self, limit: int, remaining: int, reset_seconds: int) -> dict[str, str]:
        return {
            "x-rate-limit": str(limit),
            "x-rate-limit-remaining": str(remaining),
            "ratelimit-limit": str(limit),
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": str(reset_seconds),
        }

    def endpoint_limit_headers(self, name: str, limit: int, remaining: int, reset_seconds: int) -> dict[str, str]:
        # As recorded on PUT /tickets/{id}: `zendesk-rate-limit-tickets-update: total=20; remaining=19; resets=59`.
        return {f"zendesk-rate-limit-{name}": f"total={limit}; remaining={remaining}; resets={reset_seconds}"}

    def _next_id(self, sequence: str) -> int:
        value = self._next_ids[sequence]
        self._next_ids[sequence] = value + 1
        return value

    def _url(self, collection: str, record_id: int) -> str:
        return f"{self.base_url}/api/v2/{collection}/{record_id}.json"

    def _page_url(self, request: Request, params: Mapping[str, str], drop: tuple[str, ...] = ()) -> str:
        query = {key: values for key, values in request.query.items() if key not in drop}
        query.update({key: [value] for key, value in params.items()})
        return f"{self.base_url}{request.path}?{urlencode(query, doseq=True)}"

    def _offset_page(self, request: Request, root: str, items: list[Json], **extra: Any) -> Json:
        """Zendesk's offset pagination: `page` and `per_page` (at most 100), with next/previous URLs."""
        page = max(1, _int_or(request.param("page"), 1))
        per_page = min(MAX_PAGE_SIZE, max(1, _int_or(request.param("per_page"), MAX_PAGE_SIZE)))
        start = (page - 1) * per_page
        has_next = start + per_page < len(items)
        return {
            root: items[start : start + per_page],
            **extra,
            "next_page": self._page_url(request, {"page": str(page + 1)}) if has_next else None,
            "previous_page": self._page_url(request, {"page": str(page - 1)}) if page > 1 else None,
            "count": len(items),
        }

    # -- Users -----------------------------------------------------------------------------------

    def _user(self, value: Any) -> Json | None:
        user_id = _as_id(value)
        return None if user_id is None else self.users.get(user_id)

    def _user_json(self, user: Json) -> Json:
        return {**user, "url": self._url("users", user["id"])}

    def _api_user(self, request: Request) -> Json | None:
        """The user whose email authenticated the request (Zendesk's default requester and author)."""
        email = (_basic_token_email(request.headers.get("authorization", "")) or "").lower()
        return next((user for user in self.users.values() if email and user["email"] == email), None)

    def _add_user(self, fields: Any) -> Json:
        """Validate and store a new user; a Zendesk 422 (nothing stored) if anything is wrong."""
        if not isinstance(fields, dict):
            raise _record_invalid("base", "User: is invalid", "InvalidValue")
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _record_invalid("name", "Name: is too short (minimum one character)", "BlankValue")
        email = (_text(fields, "email", "Email") or "").strip().lower() or None
        if email is not None and not EMAIL_RE.match(email):
            raise _record_invalid("email", f"Email: {email} is not properly formatted", "InvalidFormat")
        if email is not None and any(user["email"] == email for user in self.users.values()):
            raise _record_invalid("email", f"Email: {email} is already being used by another user", "DuplicateValue")
        phone = (_text(fields, "phone", "Phone") or "").strip() or None
        # A shared number (a family's or an office's line) may belong to several users.
        shared = fields.get("shared_phone_number") is True
        taken = {
            _digits(user["phone"]) for user in self.users.values() if user["phone"] and not user["shared_phone_number"]
        }
        if phone and not shared and _digits(phone) in taken:
            raise _record_invalid("phone", f"Phone: {phone} is already being used by another user", "DuplicateValue")
        role = _choice(fields, "role", ROLES, "Role") or "end-user"
        external_id = _text(fields, "external_id", "External")
        if external_id is not None and any(user["external_id"] == external_id for user in self.users.values()):
            raise _record_invalid("external_id", "External: has already been taken", "DuplicateValue")
        tags = _tags(fields.get("tags"))
        user_fields = fields.get("user_fields") if isinstance(fields.get("user_fields"), dict) else {}
        now, end_user = _now(), role == "end-user"
        user: Json = {
            "id": self._next_id("user"),
            "url": None,
            "name": name.strip(),
            "email": email,
            "created_at": now,
            "updated_at": now,
            "time_zone": "UTC",
            "iana_time_zone": "Etc/UTC",
            "phone": phone,
            "shared_phone_number": None if phone is None else shared,
            "photo": None,
            "locale_id": 1,
            "locale": "en-US",
            "organization_id": None,
            "role": role,
            "verified": fields.get("verified") is True,
            "external_id": external_id,
            "tags": tags,
            "alias": "",
            "active": True,
            "shared": False,
            "shared_agent": False,
            "last_login_at": None,
            "two_factor_auth_enabled": None if end_user else False,
            "signature": None,
            "details": str(fields.get("details") or ""),
            "notes": str(fields.get("notes") or ""),
            "role_type": None,
            "custom_role_id": None,
            "moderator": role == "admin",
            "ticket_restriction": "requested" if end_user else None,
            "only_private_comments": False,
            "restricted_agent": end_user,
            "suspended": False,
            "default_group_id": None,
            "report_csv": role == "admin",
            "user_fields": user_fields,
        }
        self.users[user["id"]] = user
        return user

    def _search(self, query: str) -> list[Json]:
        return [user for user in self.users.values() if _user_matches(user, query)]

    def create_user(self, request: Request) -> Response:
        user = self._add_user(_root(request, "user"))
        return Response(201, {"user": self._user_json(user)}, {"Location": self._url("users", user["id"])})

    def show_user(self, request: Request) -> Response:
        user = self._user(request.args["id"])
        if user is None:
            raise _record_not_found()
        return Response(200, {"user": self._user_json(user)})

    def search_users(self, request: Request) -> Response:
        external_id = request.param("external_id")
        if external_id is not None:
            users = [user for user in self.users.values() if user["external_id"] == external_id]
        else:
            users = self._search(request.param("query") or "")
        return Response(200, self._offset_page(request, "users", [self._user_json(user) for user in users]))

    def search(self, request: Request) -> Response:
        # Only users are indexed here: `type:ticket` and the like find nothing.
        users = self._search(request.param("query") or "")
        results = [{**self._user_json(user), "result_type": "user"} for user in users]
        return Response(200, self._offset_page(request, "results", results, facets=None))

    def list_users(self, request: Request) -> Response:
        roles = request.query.get("role", []) + request.query.get("role[]", [])
        users = [user for user in self.users.values() if not roles or user["role"] in roles]
        if not any(key.startswith("page[") for key in request.query):
            return Response(200, self._offset_page(request, "users", [self._user_json(user) for user in users]))
        return Response(200, self._cursor_page(request, "users", users, self._user_json))

    def _cursor_page(self, request: Request, root: str, items: list[Json], render: Callable[[Json], Json]) -> Json:
        """Zendesk's cursor pagination (`page[size]`, `page[after]`, `page[before]`) over id-ordered items."""
        size_text = request.param("page[size]")
        size = MAX_PAGE_SIZE if size_text is None else _int_or(size_text, 0)
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise _bad_pagination(f"page[size] must be a number from 1 to {MAX_PAGE_SIZE}")
        after, before = request.param("page[after]"), request.param("page[before]")
        if after:
            items = [item for item in items if item["id"] > _cursor_id(after, "page[after]")]
            page = items[:size]
        elif before:
            items = [item for item in items if item["id"] < _cursor_id(before, "page[before]")]
            page = items[-size:]
        else:
            page = items[:size]
        after_cursor = _cursor(page[-1]["id"]) if page else None
        before_cursor = _cursor(page[0]["id"]) if page else None
        cursors = ("page[after]", "page[before]")
        return {
            root: [render(item) for item in page],
            "meta": {"has_more": len(items) > len(page), "after_cursor": after_cursor, "before_cursor": before_cursor},
            "links": {
                "prev": before_cursor and self._page_url(request, {"page[before]": before_cursor}, cursors),
                "next": after_cursor and self._page_url(request, {"page[after]": after_cursor}, cursors),
            },
        }

    # -- Tickets ---------------------------------------------------------------------------------

    def _ticket(self, value: Any) -> Json:
        ticket_id = _as_id(value)
        ticket = None if ticket_id is None else self.tickets.get(ticket_id)
        if ticket is None:
            raise _record_not_found()
        return ticket

    def _ticket_json(self, ticket: Json) -> Json:
        # Zendesk lists every active custom field on every ticket, null where it has no value.
        values = {field["id"]: field["value"] for field in ticket["custom_fields"]}
        custom_fields = [
            {"id": field_id, "value": values.get(field_id)} for field_id in self._active_custom_field_ids()
        ]
        return {
            **ticket,
            "url": self._url("tickets", ticket["id"]),
            "raw_subject": ticket["subject"],
            # Each status category's built-in custom status; the ids are the sandbox's own.
            "custom_status_id": STATUSES.index(ticket["status"]) + 1,
            "custom_fields": custom_fields,
            "fields": custom_fields,
        }

    def _requester(self, fields: Json, request: Request) -> int | Json:
        """The requester's id, or the fields of an end-user to create once the ticket is valid."""
        if "requester_id" in fields:
            user = self._user(fields["requester_id"])
            if user is None:
                raise _record_invalid("requester", "Requester: is invalid", "InvalidValue")
            return int(user["id"])
        requester = fields.get("requester")
        if isinstance(requester, dict):
            email = str(requester.get("email") or "").strip().lower()
            existing = next((user for user in self.users.values() if email and user["email"] == email), None)
            if existing is not None:
                return int(existing["id"])
            return {**requester, "role": "end-user", "name": requester.get("name") or requester.get("email")}
        # Without one, Zendesk makes the API user the requester.
        api_user = self._api_user(request)
        if api_user is None:
            raise _record_invalid("requester", "Requester: cannot be blank", "BlankValue")
        return int(api_user["id"])

    def _assignee(self, value: Any) -> int | None:
        if value is None:
            return None
        user = self._user(value)
        if user is None or user["role"] not in AGENT_ROLES:
            raise _record_invalid("assignee_id", "Assignee: is not an agent", "InvalidValue")
        return int(user["id"])

    def _comment_fields(self, comment: Any, field: str, label: str) -> tuple[str, bool, int | None]:
        """(body, public, author_id) of a comment object; Zendesk's 422 when it has no body."""
        if not isinstance(comment, dict) or not isinstance(comment.get("body"), str) or not comment["body"].strip():
            raise _record_invalid(field, f"{label}: cannot be blank", "BlankValue")
        body: str = comment["body"]
        public = comment.get("public", True)
        if not isinstance(public, bool):
            raise _record_invalid(field, f"{label}: public must be true or false", "InvalidValue")
        author_id = comment.get("author_id")
        if author_id is not None and self._user(author_id) is None:
            raise _record_invalid(field, f"{label}: author_id is not a user", "InvalidValue")
        return body, public, _as_id(author_id)

    def _audit(self, ticket_id: int, author_id: int, request: Request, created_at: str) -> Json:
        return {
            "id": self._next_id("event"),
            "ticket_id": ticket_id,
            "created_at": created_at,
            "author_id": author_id,
            "metadata": self._metadata(request),
            "events": [],
            "via": VIA_API,
        }

    def _metadata(self, request: Request) -> Json:
        system = {
            "client": request.headers.get("user-agent", ""),
            "ip_address": request.client_ip,
            "location": "",
            "latitude": None,
            "longitude": None,
        }
        return {"system": system, "custom": {}}

    def _add_comment(
        self,
        ticket_id: int,
        audit: Json,
        comment: tuple[str, bool, int],
        request: Request,
        attachments: list[Json] | None = None,
    ) -> None:
        """Store a comment on the ticket and its Comment event in the audit."""
        body, public, author_id = comment
        stored: Json = {
            "id": self._next_id("event"),
            "type": "Comment",
            "body": body,
            "html_body": _html(body),
            "plain_body": body,
            "public": public,
            "author_id": author_id,
            "attachments": attachments or [],
            "audit_id": audit["id"],
            "via": VIA_API,
            "metadata": audit["metadata"],
            "created_at": audit["created_at"],
        }
        self.comments[ticket_id].append(stored)
        audit["events"].append({key: stored[key] for key in COMMENT_EVENT_KEYS})

    def _event(self, kind: str, field_name: str, value: Any, **previous: Any) -> Json:
        return {"id": self._next_id("event"), "type": kind, "value": value, "field_name": field_name, **previous}

    def create_ticket(self, request: Request) -> Response:
        fields = _root(request, "ticket")
        requester = self._requester(fields, request)
        assignee_id = self._assignee(fields.get("assignee_id"))
        # `description` stands for the first comment when no comment object is sent.
        comment = fields.get("comment")
        if comment is None and fields.get("description") is not None:
            comment = {"body": fields["description"]}
        body, public, author_id = self._comment_fields(comment, "description", "Description")
        upload_tokens = self._comment_uploads(comment)
        status = _choice(fields, "status", STATUSES, "Status") or "new"
        if status == "new" and assignee_id is not None:
            # A ticket with an assignee is never new on Zendesk.
            status = "open"
        priority = _choice(fields, "priority", PRIORITIES, "Priority")
        ticket_type = _choice(fields, "type", TICKET_TYPES, "Type")
        tags = _tags(fields.get("tags"))
        custom = self._known_custom_fields(fields.get("custom_fields") or [])
        custom_fields = [{"id": key, "value": value} for key, value in custom.items()]
        subject = _text(fields, "subject", "Subject")
        external_id = _text(fields, "external_id", "External")

        # Everything is valid: from here on the ticket is written.
        requester_id = requester if isinstance(requester, int) else int(self._add_user(requester)["id"])
        api_user = self._api_user(request)
        # Zendesk: the submitter always becomes the author of the first comment.
        submitter_id = author_id or (int(api_user["id"]) if api_user else requester_id)
        ticket_id, now = self._next_id("ticket"), _now()
        ticket: Json = {
            "url": None,
            "id": ticket_id,
            "external_id": external_id,
            "via": VIA_API,
            "created_at": now,
            "updated_at": now,
            "type": ticket_type,
            "subject": subject,
            "raw_subject": subject,
            "description": body,
            "priority": priority,
            "status": status,
            "recipient": None,
            "requester_id": requester_id,
            "submitter_id": submitter_id,
            "assignee_id": assignee_id,
            "organization_id": None,
            "group_id": None,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "forum_topic_id": None,
            "problem_id": None,
            "has_incidents": False,
            "is_public": public,
            "due_at": None,
            "tags": tags,
            "custom_fields": custom_fields,
            "satisfaction_rating": None,
            "sharing_agreement_ids": [],
            "custom_status_id": None,
            "fields": None,
            "followup_ids": [],
            "ticket_form_id": None,
            "brand_id": None,
            "allow_channelback": False,
            "allow_attachments": True,
            "from_messaging_channel": False,
        }
        self.tickets[ticket_id] = ticket
        self.comments[ticket_id] = []
        self._status_metrics(ticket, None, now)
        audit = self._audit(ticket_id, submitter_id, request, now)
        self._add_comment(ticket_id, audit, (body, public, submitter_id), request, self._take_uploads(upload_tokens))
        created = {
            "subject": subject,
            "requester_id": requester_id,
            "status": status,
            "priority": priority,
            "type": ticket_type,
            "assignee_id": assignee_id,
            "tags": tags or None,
        } | {str(field["id"]): field["value"] for field in custom_fields}
        audit["events"] += [self._event("Create", name, value) for name, value in created.items() if value is not None]
        headers = {"Location": self._url("tickets", ticket_id)}
        return Response(201, {"ticket": self._ticket_json(ticket), "audit": audit}, headers)

    def show_ticket(self, request: Request) -> Response:
        ticket = self._ticket(request.args["id"])
        return Response(200, {"ticket": self._ticket_json(ticket), **self._sideloads(request, [ticket])})

    # -- Ticket metrics ----------------------------------------------------------------------------

    def _metric_set(self, ticket: Json) -> Json:
        """The ticket's metric set; its `solved_at` is the only record of when it was solved."""
        metrics = self.metrics.get(ticket["id"])
        if metrics is None:
            solved = ticket["status"] in ("solved", "closed")
            metrics = self.metrics[ticket["id"]] = {
                "id": ticket["id"] + FIRST_METRIC_SET_ID,
                "ticket_id": ticket["id"],
                "created_at": ticket["created_at"],
                "updated_at": ticket["updated_at"],
                "group_stations": 0,
                "assignee_stations": 1 if ticket.get("assignee_id") else 0,
                "reopens": 0,
                "replies": 0,
                "assignee_updated_at": None,
                "requester_updated_at": ticket["created_at"],
                "status_updated_at": ticket["updated_at"],
                "initially_assigned_at": ticket["created_at"] if ticket.get("assignee_id") else None,
                "assigned_at": ticket["created_at"] if ticket.get("assignee_id") else None,
                "solved_at": (ticket.get("solved_at") or ticket["updated_at"]) if solved else None,
                "latest_comment_added_at": ticket["updated_at"],
                "reply_time_in_minutes": {"calendar": None, "business": None},
                "first_resolution_time_in_minutes": {"calendar": None, "business": None},
                "full_resolution_time_in_minutes": {"calendar": None, "business": None},
                "agent_wait_time_in_minutes": {"calendar": None, "business": None},
                "requester_wait_time_in_minutes": {"calendar": None, "business": None},
                "on_hold_time_in_minutes": {"calendar": 0, "business": 0},
            }
        return {**metrics, "url": f"{self.base_url}/api/v2/ticket_metrics/{metrics['id']}.json"}

    def _status_metrics(self, ticket: Json, previous: str | None, now: str) -> None:
        """Keep the metric set in step with a status change: solving stamps solved_at, reopening counts."""
        self._metric_set(ticket)
        metrics = self.metrics[ticket["id"]]
        done = ("solved", "closed")
        if ticket["status"] in done and previous not in done:
            metrics["solved_at"] = now
        if previous in done and ticket["status"] not in done:
            metrics["reopens"] += 1
        if previous is not None:
            metrics["status_updated_at"] = now
        metrics["updated_at"] = now

    def _sideloads(self, request: Request, tickets: list[Json]) -> Json:
        """What `include=` asks for alongside tickets: `metric_sets` (and `users`)."""
        include = set((request.param("include") or "").split(","))
        extra: Json = {}
        if "metric_sets" in include:
            extra["metric_sets"] = [self._metric_set(ticket) for ticket in tickets]
        if "users" in include:
            ids = {ticket[key] for ticket in tickets for key in ("requester_id", "assignee_id", "submitter_id")}
            extra["users"] = [self._user_json(self.users[i]) for i in sorted(ids, key=str) if i in self.users]
        return extra

    def display_ticket(self, request: Request) -> Response:
        """Talk Partner Edition screen pop: no body; 200 empty once shown, 404 for an unknown agent or ticket."""
        agent = self._user(request.args["agent_id"])
        if agent is None or agent["role"] not in ("agent", "admin"):
            raise _record_not_found()
        ticket = self._ticket(request.args["ticket_id"])
        self.displays.append({"agent_id": agent["id"], "ticket_id": ticket["id"], "at": _now()})
        return Response(200, None)

    def _ticket_changes(self, ticket: Json, fields: Json) -> Json:
        """The validated new values of the fields an update changes; nothing is written here."""
        wanted: Json = {}
        if "subject" in fields:
            wanted["subject"] = _text(fields, "subject", "Subject")
        if fields.get("status") is not None:
            wanted["status"] = _choice(fields, "status", STATUSES, "Status")
        for key, allowed, label in (("priority", PRIORITIES, "Priority"), ("type", TICKET_TYPES, "Type")):
            if key in fields:
                wanted[key] = _choice(fields, key, allowed, label)
        if "assignee_id" in fields:
            wanted["assignee_id"] = self._assignee(fields["assignee_id"])
        if "requester_id" in fields:
            requester = self._user(fields["requester_id"])
            if requester is None:
                raise _record_invalid("requester", "Requester: is invalid", "InvalidValue")
            wanted["requester_id"] = requester["id"]
        if "external_id" in fields:
            wanted["external_id"] = _text(fields, "external_id", "External")
        # `tags` replaces the set; `additional_tags` and `remove_tags` patch it.
        tags = _tags(fields["tags"]) if "tags" in fields else list(ticket["tags"])
        if "additional_tags" in fields:
            tags = list(dict.fromkeys([*tags, *_tags(fields["additional_tags"], "additional_tags")]))
        if "remove_tags" in fields:
            removed = set(_tags(fields["remove_tags"], "remove_tags"))
            tags = [tag for tag in tags if tag not in removed]
        wanted["tags"] = tags
        if "custom_fields" in fields:
            merged = {field["id"]: field["value"] for field in ticket["custom_fields"]}
            merged.update(self._known_custom_fields(fields["custom_fields"]))
            wanted["custom_fields"] = [{"id": key, "value": value} for key, value in merged.items()]
        if wanted.get("status", ticket["status"]) == "new" and wanted.get("assignee_id", ticket["assignee_id"]):
            wanted["status"] = "open"
        return {key: value for key, value in wanted.items() if value != ticket[key]}

    def update_ticket(self, request: Request) -> Response:
        ticket = self._ticket(request.args["id"])
        audit = self._apply_update(ticket, _root(request, "ticket"), request)
        return Response(200, {"ticket": self._ticket_json(ticket), "audit": audit})

    def _apply_update(self, ticket: Json, fields: Json, request: Request) -> Json:
        """Validate a ticket update, then write it; its audit. Reject (nothing written) when invalid."""
        if ticket["status"] == "closed":
            raise _record_invalid("status", "Status: closed prevents ticket update")
        changes = self._ticket_changes(ticket, fields)
        comment, upload_tokens = None, []
        if fields.get("comment") is not None:
            comment = self._comment_fields(fields["comment"], "comment", "Comment")
            upload_tokens = self._comment_uploads(fields["comment"])

        # Everything is valid: from here on the update is written.
        api_user = self._api_user(request)
        # A comment's author defaults to the API user (the requester when the sandbox does not know it).
        author_id = int(api_user["id"]) if api_user else int(ticket["requester_id"])
        if comment is not None and comment[2] is not None:
            author_id = comment[2]
        now = _now()
        audit = self._audit(ticket["id"], author_id, request, now)
        if comment is not None:
            attachments = self._take_uploads(upload_tokens)
            self._add_comment(ticket["id"], audit, (comment[0], comment[1], author_id), request, attachments)
        for name, value in changes.items():
            if name == "custom_fields":
                before = {field["id"]: field["value"] for field in ticket[name]}
                audit["events"] += [
                    self._event("Change", str(field["id"]), field["value"], previous_value=before.get(field["id"]))
                    for field in value
                    if field["id"] not in before or before[field["id"]] != field["value"]
                ]
            else:
                audit["events"].append(self._event("Change", name, value, previous_value=ticket[name]))
            previous, ticket[name] = ticket[name], value
            if name == "status":
                self._status_metrics(ticket, previous, now)
        if audit["events"]:
            ticket["updated_at"] = now
            ticket["is_public"] = any(stored["public"] for stored in self.comments[ticket["id"]])
        return audit

    # -- Bulk updates (crm-api-shapes.md §1.6) -------------------------------------------------------

    def update_many_tickets(self, request: Request) -> Response:
        """`PUT /api/v2/tickets/update_many.json`: per-ticket changes, or one change for `?ids=`; a job.

        Zendesk queues the job and answers at once; here the items are applied when the job is made,
        in the order given (two items for one ticket apply one after the other), and the job reads
        "queued" in this answer and "completed", with a result per item, from its first poll on. An
        item that fails (invalid, closed, unknown, or drawn by `job_item_fail_rate`) changes nothing
        and says why in its result; the others are applied all the same.
        """
        items = self._update_many_items(request)
        results = [
            self._update_many_item(index, ticket_id, fields, request) for index, (ticket_id, fields) in enumerate(items)
        ]
        job = self._new_job("bulk_update", results)
        return Response(
            200, {"job_status": {**job, "status": "queued", "progress": None, "message": None, "results": None}}
        )

    def _update_many_items(self, request: Request) -> list[tuple[Any, Json]]:
        ids = request.param("ids")
        body = request.data if isinstance(request.data, dict) else {}
        if ids is not None:
            fields = body.get("ticket")
            if not isinstance(fields, dict):
                raise Reject(
                    Response(
                        400,
                        {"error": "ParameterMissing", "description": "param is missing or the value is empty: ticket"},
                    )
                )
            items: list[tuple[Any, Json]] = [(value.strip(), fields) for value in ids.split(",") if value.strip()]
        else:
            tickets = body.get("tickets")
            if not isinstance(tickets, list) or not tickets or not all(isinstance(t, dict) for t in tickets):
                description = "param is missing or the value is empty: tickets"
                raise Reject(Response(400, {"error": "ParameterMissing", "description": description}))
            items = [(ticket.get("id"), {k: v for k, v in ticket.items() if k != "id"}) for ticket in tickets]
        if not items:
            raise Reject(
                Response(
                    400, {"error": "ParameterMissing", "description": "param is missing or the value is empty: ids"}
                )
            )
        if len(items) > MAX_BULK_TICKETS:
            description = f"Too many tickets: at most {MAX_BULK_TICKETS} a request, got {len(items)}"
            raise Reject(Response(400, {"error": "InvalidValue", "description": description}))
        return items

    def _update_many_item(self, index: int, ticket_id: Any, fields: Json, request: Request) -> Json:
        failed: Json = {
            "index": index,
            "id": _as_id(ticket_id) or ticket_id,
            "action": "update",
            "success": False,
            "status": "Failed",
        }
        ticket = self.tickets.get(_as_id(ticket_id) or 0)
        if ticket is None:
            return {**failed, "error": "RecordNotFound", "details": "Not found"}
        if self.job_item_fail_rate > 0 and self._random.random() < self.job_item_fail_rate:
            self.job_item_failures += 1
            return {
                **failed,
                "error": "TicketUpdateFailed",
                "details": "Ticket could not be updated (sandbox job_item_fail_rate)",
            }
        try:
            self._apply_update(ticket, fields, request)
        except Reject as rejection:
            body = rejection.response.body if isinstance(rejection.response.body, dict) else {}
            return {
                **failed,
                "error": body.get("error", "RecordInvalid"),
                "details": body.get("details") or body.get("description"),
            }
        return {"index": index, "id": ticket["id"], "action": "update", "success": True, "status": "Updated"}

    def _new_job(self, job_type: str, results: list[Json]) -> Json:
        job_id = f"V3-{secrets.token_hex(16)}"
        self.job_statuses[job_id] = {
            "id": job_id,
            "job_type": job_type,
            "url": f"{self.base_url}/api/v2/job_statuses/{job_id}.json",
            "total": len(results),
            "progress": len(results),
            "status": "completed",
            "message": f"Completed at {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S +0000')}",
            "results": results,
        }
        return self.job_statuses[job_id]

    def list_tickets(self, request: Request) -> Response:
        external_id = request.param("external_id")
        tickets = [t for t in self.tickets.values() if external_id is None or t["external_id"] == external_id]
        return self._tickets_page(request, tickets)

    def _tickets_page(self, request: Request, tickets: list[Json]) -> Response:
        """One offset page of tickets, with what `include=` sideloads for the tickets on it."""
        body = self._offset_page(request, "tickets", [self._ticket_json(t) for t in tickets])
        shown = {ticket["id"] for ticket in body["tickets"]}
        return Response(200, {**body, **self._sideloads(request, [t for t in tickets if t["id"] in shown])})

    def list_comments(self, request: Request) -> Response:
        ticket = self._ticket(request.args["id"])
        comments = self.comments[ticket["id"]]
        # As in Zendesk: cursor pagination when asked for with page[size], offset pagination otherwise.
        if any(key.startswith("page[") for key in request.query):
            return Response(200, self._cursor_page(request, "comments", comments, dict))
        return Response(200, self._offset_page(request, "comments", comments))

    def list_requested_tickets(self, request: Request) -> Response:
        user = self._user(request.args["id"])
        if user is None:
            raise _record_not_found()
        # Zendesk lists a user's requested tickets by id, oldest first.
        return self._tickets_page(request, [t for t in self.tickets.values() if t["requester_id"] == user["id"]])

    # -- Merges ------------------------------------------------------------------------------------

    def merge_tickets(self, request: Request) -> Response:
        target = self._ticket(request.args["id"])
        body = request.data if isinstance(request.data, dict) else {}
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids:
            description = "param is missing or the value is empty: ids"
            raise Reject(Response(400, {"error": "ParameterMissing", "description": description}))
        source_ids = list(dict.fromkeys(_as_id(value) for value in ids))
        sources = [self.tickets[i] for i in source_ids if i is not None and i in self.tickets and i != target["id"]]
        if len(sources) != len(source_ids):
            raise _record_invalid("ids", "Ids: must name other tickets of this account", "InvalidValue")
        if any(ticket["status"] == "closed" for ticket in [target, *sources]):
            raise _record_invalid("status", "Status: closed prevents ticket update")
        texts = {name: body.get(name) for name in ("target_comment", "source_comment")}
        publics = {name: body.get(name, False) for name in ("target_comment_is_public", "source_comment_is_public")}
        if any(value is not None and not isinstance(value, str) for value in texts.values()) or any(
            not isinstance(value, bool) for value in publics.values()
        ):
            raise _record_invalid(
                "base", "Merge: comments must be text and their privacy true or false", "InvalidValue"
            )

        # Everything is valid: from here on the merge is written (Zendesk runs it as a job; here it is done at once).
        api_user = self._api_user(request)
        now = _now()
        moved: list[tuple[str, list[Json]]] = []
        for source in sources:
            # Zendesk's own wording: the provider finds the target in it (MERGED_INTO_RE).
            default = f'This request was closed and merged into request #{target["id"]} "{target["subject"] or ""}".'
            text = texts["source_comment"] or default
            tags = list(dict.fromkeys([*source["tags"], CLOSED_BY_MERGE_TAG]))
            changes = {"status": "closed", "tags": tags}
            self._system_update(
                source, request, api_user, now, (text, publics["source_comment_is_public"]), [], changes
            )
            # The source's files go to the target's comment.
            files = [attachment for comment in self.comments[source["id"]] for attachment in comment["attachments"]]
            default = f'Request #{source["id"]} "{source["subject"] or ""}" was closed and merged into this request.'
            moved.append((default, files))
        target_public = publics["target_comment_is_public"]
        if texts["target_comment"]:
            files = [attachment for _, source_files in moved for attachment in source_files]
            self._system_update(target, request, api_user, now, (texts["target_comment"], target_public), files, {})
        else:
            for text, files in moved:
                self._system_update(target, request, api_user, now, (text, target_public), files, {})

        results = [{"action": "update", "id": source["id"], "status": "Updated", "success": True} for source in sources]
        return Response(200, {"job_status": self._new_job("merge", results)})

    def _system_update(
        self,
        ticket: Json,
        request: Request,
        api_user: Json | None,
        now: str,
        comment: tuple[str, bool],
        attachments: list[Json],
        changes: Json,
    ) -> None:
        """One audit on `ticket`: a comment by the API user, then the field changes."""
        author_id = int(api_user["id"]) if api_user else int(ticket["requester_id"])
        audit = self._audit(ticket["id"], author_id, request, now)
        self._add_comment(ticket["id"], audit, (comment[0], comment[1], author_id), request, attachments)
        for name, value in changes.items():
            if value != ticket[name]:
                audit["events"].append(self._event("Change", name, value, previous_value=ticket[name]))
                previous, ticket[name] = ticket[name], value
                if name == "status":
                    self._status_metrics(ticket, previous, now)
        ticket["updated_at"] = now
        ticket["is_public"] = any(stored["public"] for stored in self.comments[ticket["id"]])

    def show_job_status(self, request: Request) -> Response:
        job_status = self.job_statuses.get(request.args["id"])
        if job_status is None:
            raise _record_not_found()
        return Response(200, {"job_status": job_status})

    def list_job_statuses(self, request: Request) -> Response:
        """The account's jobs, newest first (Zendesk keeps them about a day): how a lost job id is found."""
        jobs = list(reversed(self.job_statuses.values()))
        return Response(200, self._offset_page(request, "job_statuses", jobs))

    # -- Ticket fields -----------------------------------------------------------------------------

    def _reset_fields_and_files(self) -> None:
        """Forget custom ticket fields, uploads and attachments; list the system fields again."""
        self.ticket_fields: dict[int, Json] = {}
        self.uploads: dict[str, list[int]] = {}
        self.attachments: dict[int, Json] = {}
        # An attachment's content token -> (bytes, content type), what its content_url serves.
        self.files: dict[str, tuple[bytes, str]] = {}
        self.job_statuses: dict[str, Json] = {}
        self._next_ids.update(field=FIRST_TICKET_FIELD_ID, attachment=FIRST_ATTACHMENT_ID)
        for position, (field_type, title, description, removable, options) in enumerate(SYSTEM_TICKET_FIELDS):
            field = self._new_ticket_field(field_type, title, description, position=position, removable=removable)
            if options:
                field["system_field_options"] = [{"name": value.capitalize(), "value": value} for value in options]
            self.ticket_fields[field["id"]] = field

    def _new_ticket_field(self, field_type: str, title: str, description: str, **values: Any) -> Json:
        field_id, now = self._next_id("field"), _now()
        return {
            "id": field_id,
            "type": field_type,
            "title": title,
            "raw_title": title,
            "description": description,
            "raw_description": description,
            "position": DEFAULT_FIELD_POSITION,
            "active": True,
            "required": False,
            "collapsed_for_agents": False,
            "regexp_for_validation": None,
            "title_in_portal": title,
            "raw_title_in_portal": title,
            "visible_in_portal": False,
            "editable_in_portal": False,
            "required_in_portal": False,
            "tag": None,
            "created_at": now,
            "updated_at": now,
            "removable": True,
            "key": None,
            "agent_description": None,
        } | values

    def _ticket_field_json(self, field: Json) -> Json:
        return {"url": self._url("ticket_fields", field["id"]), **field}

    def _active_custom_field_ids(self) -> list[int]:
        return [
            field["id"]
            for field in self.ticket_fields.values()
            if field["active"] and field["type"] in CUSTOM_FIELD_TYPES
        ]

    def _known_custom_fields(self, value: Any) -> dict[int, Any]:
        """`custom_fields` without the ids that are no custom field: Zendesk drops those silently."""
        known = set(self._active_custom_field_ids())
        return {field_id: item for field_id, item in _custom_fields(value).items() if field_id in known}

    def list_ticket_fields(self, request: Request) -> Response:
        # Unpaginated, Zendesk orders the fields by position: the system ones first.
        fields = sorted(self.ticket_fields.values(), key=lambda field: (field["position"], field["id"]))
        return Response(200, self._offset_page(request, "ticket_fields", [self._ticket_field_json(f) for f in fields]))

    def show_ticket_field(self, request: Request) -> Response:
        field_id = _as_id(request.args["id"])
        field = None if field_id is None else self.ticket_fields.get(field_id)
        if field is None:
            raise _record_not_found()
        return Response(200, {"ticket_field": self._ticket_field_json(field)})

    def create_ticket_field(self, request: Request) -> Response:
        fields = _root(request, "ticket_field")
        title = fields.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _record_invalid("title", "Title: cannot be blank", "BlankValue")
        field_type = fields.get("type")
        if field_type is None:
            raise _record_invalid("type", "Type: cannot be blank", "BlankValue")
        if field_type not in CUSTOM_FIELD_TYPES:
            raise _record_invalid("type", f"Type: {field_type} is not a valid field type", "InvalidValue")
        # Only dropdowns have options, and they must have some.
        options = fields.get("custom_field_options") if field_type in OPTION_FIELD_TYPES else []
        if (
            not isinstance(options, list)
            or (field_type in OPTION_FIELD_TYPES and not options)
            or any(not isinstance(o, dict) or not o.get("name") or not o.get("value") for o in options)
        ):
            raise _record_invalid(
                "custom_field_options", "Field options: each needs a name and a value", "InvalidValue"
            )
        description = _text(fields, "description", "Description") or ""
        values: Json = {"title_in_portal": _text(fields, "title_in_portal", "Title in portal") or title.strip()}
        for key in ("active", "required", "visible_in_portal", "editable_in_portal", "required_in_portal"):
            if isinstance(fields.get(key), bool):
                values[key] = fields[key]
        if isinstance(fields.get("position"), int) and not isinstance(fields["position"], bool):
            values["position"] = fields["position"]
        for key in ("regexp_for_validation", "agent_description", "tag"):
            if fields.get(key) is not None:
                values[key] = _text(fields, key, key.replace("_", " ").capitalize())

        # Everything is valid: from here on the field is written.
        field = self._new_ticket_field(field_type, title.strip(), description, **values)
        field["raw_title_in_portal"] = field["title_in_portal"]
        if field_type in OPTION_FIELD_TYPES:
            field["custom_field_options"] = [
                {
                    "id": self._next_id("field"),
                    "name": o["name"],
                    "raw_name": o["name"],
                    "value": o["value"],
                    "default": False,
                }
                for o in options
            ]
        self.ticket_fields[field["id"]] = field
        headers = {"Location": self._url("ticket_fields", field["id"])}
        return Response(201, {"ticket_field": self._ticket_field_json(field)}, headers)

    # -- Uploads and attachments -------------------------------------------------------------------

    def upload_file(self, request: Request) -> Response:
        filename = (request.param("filename") or "").strip()
        if not filename:
            raise _record_invalid("filename", "Filename: cannot be blank", "BlankValue")
        content_type = request.headers.get("content-type", "").strip()
        if not content_type:
            raise _record_invalid("content_type", "Content type cannot be blank", "BlankValue")
        if content_type.split(";")[0].strip() == "application/octet-stream":
            # Zendesk types a generic upload by its file name (recorded: octet-stream "x.txt" -> text/plain).
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"

        # Everything is valid: from here on the upload is written.
        attachment_id, content_token, token = self._next_id("attachment"), secrets.token_hex(12), secrets.token_hex(12)
        content_url = f"{self.base_url}/attachments/token/{content_token}/?name={quote(filename)}"
        attachment: Json = {
            "url": self._url("attachments", attachment_id),
            "id": attachment_id,
            "file_name": filename,
            "content_url": content_url,
            "mapped_content_url": content_url,
            "content_type": content_type,
            "size": len(request.body),
            "width": None,
            "height": None,
            "inline": False,
            "deleted": False,
            "malware_access_override": False,
            "malware_scan_result": "not_scanned",
            "thumbnails": [],
        }
        self.attachments[attachment_id] = attachment
        self.files[content_token] = (request.body, content_type)
        self.uploads[token] = [attachment_id]
        expires_at = (datetime.now(UTC) + UPLOAD_TOKEN_TTL).strftime("%Y-%m-%dT%H:%M:%SZ")
        upload = {"token": token, "expires_at": expires_at, "attachments": [attachment], "attachment": attachment}
        return Response(201, {"upload": upload}, {"Location": attachment["url"]})

    def show_attachment(self, request: Request) -> Response:
        attachment_id = _as_id(request.args["id"])
        attachment = None if attachment_id is None else self.attachments.get(attachment_id)
        if attachment is None:
            raise _record_not_found()
        return Response(200, {"attachment": attachment})

    def attachment_content(self, request: Request) -> Response:
        stored = self.files.get(request.args["token"])
        if stored is None:
            raise _record_not_found()
        content, content_type = stored
        return Response(200, content, {"Content-Type": content_type})

    def _comment_uploads(self, comment: Any) -> list[str]:
        """The upload tokens a comment attaches; Zendesk's 422 for one it does not know (or already used)."""
        tokens = comment.get("uploads") if isinstance(comment, dict) else None
        if tokens is None:
            return []
        if isinstance(tokens, str):
            tokens = [tokens]
        if not isinstance(tokens, list) or any(not isinstance(token, str) for token in tokens):
            raise _record_invalid("uploads", "Uploads: must be a list of upload tokens", "InvalidValue")
        for token in tokens:
            if token not in self.uploads:
                raise _record_invalid("uploads", f"Uploads: {token} is not a valid upload token", "InvalidValue")
        return list(dict.fromkeys(tokens))

    def _take_uploads(self, tokens: list[str]) -> list[Json]:
        """The attachments of these (validated) uploads; each token attaches its files once."""
        return [self.attachments[attachment_id] for token in tokens for attachment_id in self.uploads.pop(token)]

    routes = (
        ("GET", "/api/v2/users.json", list_users),
        ("POST", "/api/v2/users.json", create_user),
        ("GET", "/api/v2/users/search.json", search_users),
        ("GET", "/api/v2/users/{id}.json", show_user),
        ("GET", "/api/v2/users/{id}/tickets/requested.json", list_requested_tickets),
        ("GET", "/api/v2/search.json", search),
        ("GET", "/api/v2/tickets.json", list_tickets),
        ("POST", "/api/v2/tickets.json", create_ticket),
        ("GET", "/api/v2/tickets/{id}.json", show_ticket),
        ("PUT", "/api/v2/tickets/update_many.json", update_many_tickets),
        ("PUT", "/api/v2/tickets/{id}.json", update_ticket),
        ("GET", "/api/v2/tickets/{id}/comments.json", list_comments),
        ("POST", "/api/v2/tickets/{id}/merge.json", merge_tickets),
        ("POST", "/api/v2/channels/voice/agents/{agent_id}/tickets/{ticket_id}/display.json", display_ticket),
        ("GET", "/api/v2/job_statuses.json", list_job_statuses),
        ("GET", "/api/v2/job_statuses/{id}.json", show_job_status),
        ("GET", "/api/v2/ticket_fields.json", list_ticket_fields),
        ("POST", "/api/v2/ticket_fields.json", create_ticket_field),
        ("GET", "/api/v2/ticket_fields/{id}.json", show_ticket_field),
        ("POST", "/api/v2/uploads.json", upload_file),
        ("GET", "/api/v2/attachments/{id}.json", show_attachment),
        # Not under /api/v2: where Zendesk serves a file itself (an attachment's content_url).
        ("GET", "/attachments/token/{token}/", attachment_content),
    )


# -- Import read API: incremental ticket export and seeding (crm-api-shapes.md §1.7) -------------
#
# Kept as one block so the import side grows without touching the record API above. The export
# orders tickets by a change sequence of the sandbox's own (Zendesk's cursor is opaque too): each
# ticket gets a new sequence number whenever its visible state changes, so a change within the same
# second as the last export is still seen by the next one.

# Tickets per export page when `per_page` is not given: Zendesk's default and maximum.
EXPORT_PAGE_SIZE = 1000
# Words the seeded tickets are written with, so full-text search has something to find.
SEED_WORDS = (
    "refund",
    "invoice",
    "billing",
    "password",
    "login",
    "delivery",
    "parcel",
    "broken",
    "screen",
    "battery",
    "upgrade",
    "plan",
    "cancel",
    "subscription",
    "charge",
    "card",
    "declined",
    "address",
    "change",
    "order",
    "missing",
    "damaged",
    "warranty",
    "replacement",
    "technician",
    "appointment",
    "outage",
    "internet",
    "router",
    "slow",
    "speed",
    "contract",
    "renewal",
)
# Voice comments (Talk's VoiceComment, Talk Partner Edition's TpeVoiceComment) carry these beside
# `data`, as the recorded answers show; the sandbox does not format phone numbers.
VOICE_COMMENT_TYPES = ("VoiceComment", "TpeVoiceComment")
VOICE_COMMENT_EXTRAS: Json = {"formatted_from": "Unknown", "formatted_to": "Unknown", "transcription_visible": False}
SEED_CHANNELS = ("email", "chat", "voice", "native_messaging", "facebook", "sms", "whatsapp", "web", "api")
SEED_TAGS = ("vip", "billing", "technical", "complaint", "follow_up", "escalated", "callback")


def _export_cursor(sequence: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"s": sequence}, separators=(",", ":")).encode()).decode()


def _export_sequence(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))["s"]
    except (ValueError, KeyError, TypeError):
        raise _bad_pagination("cursor is not a valid cursor") from None
    if not isinstance(value, int):
        raise _bad_pagination("cursor is not a valid cursor")
    return value


def _timestamp(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ticket_fingerprint(ticket: Json, comment_count: int) -> tuple[Any, ...]:
    keys = ("updated_at", "status", "assignee_id", "requester_id", "subject", "priority", "type", "external_id")
    return (*(ticket[key] for key in keys), tuple(ticket["tags"]), comment_count)


class _ExportLog:
    """Which tickets changed in which order: (sequence, ticket id) appended, stale entries skipped."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int]] = []
        self.current: dict[int, tuple[int, tuple[Any, ...], int]] = {}  # id -> (sequence, fingerprint, timestamp)
        self.next_sequence = 1
        self.seen_event_id = 0

    def stamp(self, ticket_id: int, fingerprint: tuple[Any, ...], timestamp: int) -> None:
        self.current[ticket_id] = (self.next_sequence, fingerprint, timestamp)
        self.entries.append((self.next_sequence, ticket_id))
        self.next_sequence += 1


class _CommentEventLog:
    """Every comment as a ticket event, ordered by (timestamp, id): rebuilt only when comments changed."""

    def __init__(self) -> None:
        self.key: tuple[int, int] | None = None
        self.events: list[tuple[int, int, int, Json]] = []  # (timestamp, comment id, ticket id, comment)


class ZendeskImportSandbox(ZendeskSandbox):
    """ZendeskSandbox plus the incremental ticket export and `POST /__sandbox/seed` (the registered one).

    The seed body is `{"count": N, "seed": S}` for a generated data set (agents, customers, N
    tickets over the last 95 days), or `{"users": [...], "tickets": [...]}` of raw records: fields
    as Zendesk returns them, merged over defaults, tickets with a `comments` list; no validation,
    so tests can store what the API would refuse (an agent without email).
    """

    def reset_state(self) -> None:
        super().reset_state()
        self._export = _ExportLog()
        self._comment_events = _CommentEventLog()

    def _export_log(self) -> _ExportLog:
        log = self._export
        # Every API write makes an audit (one event id): nothing to re-stamp unless one was made.
        if log.seen_event_id != self._next_ids["event"]:
            for ticket_id, ticket in self.tickets.items():
                fingerprint = _ticket_fingerprint(ticket, len(self.comments.get(ticket_id, ())))
                known = log.current.get(ticket_id)
                if known is None or known[1] != fingerprint:
                    log.stamp(ticket_id, fingerprint, int(time.time()) if known else _timestamp(ticket["updated_at"]))
            log.seen_event_id = self._next_ids["event"]
        return log

    def export_tickets(self, request: Request) -> Response:
        per_page = _int_or(request.param("per_page"), EXPORT_PAGE_SIZE)
        if not 1 <= per_page <= EXPORT_PAGE_SIZE:
            raise _bad_pagination(f"per_page must be a number from 1 to {EXPORT_PAGE_SIZE}")
        cursor, start_time = request.param("cursor"), request.param("start_time")
        log = self._export_log()
        if cursor:
            after = _export_sequence(cursor)
            minimum_time = 0
        elif start_time is not None and start_time.isdigit():
            after, minimum_time = 0, int(start_time)
        else:
            description = "start_time or cursor is required; start_time must be a unix timestamp"
            raise Reject(Response(400, {"error": "InvalidValue", "description": description}))
        position = bisect.bisect_right(log.entries, (after, 2**63))
        page: list[Json] = []
        last_sequence = after
        for sequence, ticket_id in log.entries[position:]:
            known = log.current.get(ticket_id)
            if known is None or known[0] != sequence or ticket_id not in self.tickets:
                continue
            last_sequence = sequence
            if known[2] < minimum_time:
                continue
            page.append({**self._ticket_json(self.tickets[ticket_id]), "generated_timestamp": known[2]})
            if len(page) == per_page:
                break
        end_of_stream = last_sequence >= log.entries[-1][0] if log.entries else True
        after_cursor = _export_cursor(last_sequence)
        body: Json = {
            "tickets": page,
            "after_url": f"{self.base_url}{request.path}?{urlencode({'cursor': after_cursor})}",
            "before_url": None,
            "after_cursor": after_cursor,
            "before_cursor": None,
            "end_of_stream": end_of_stream,
        }
        if "users" in (request.param("include") or "").split(","):
            ids = {ticket[key] for ticket in page for key in ("requester_id", "assignee_id", "submitter_id")}
            body["users"] = [self._user_json(self.users[i]) for i in sorted(ids, key=str) if i in self.users]
        return Response(200, body)

    def export_ticket_events(self, request: Request) -> Response:
        """Zendesk's incremental ticket event export, time-based (its incremental_exports docs); comments only.

        Each comment is one audit event with the comment as its child event (`include=comment_events`;
        without it the child events carry no comment). A page holds every event of its last second,
        so it can be longer than `per_page`, as on Zendesk; the next page starts at `end_time`.
        """
        start_time = request.param("start_time")
        if start_time is None or not start_time.isdigit():
            description = "start_time is required and must be a unix timestamp"
            raise Reject(Response(400, {"error": "InvalidValue", "description": description}))
        per_page = _int_or(request.param("per_page"), EXPORT_PAGE_SIZE)
        if not 1 <= per_page <= EXPORT_PAGE_SIZE:
            raise _bad_pagination(f"per_page must be a number from 1 to {EXPORT_PAGE_SIZE}")
        with_comments = "comment_events" in (request.param("include") or "").split(",")
        events = self._comment_event_log().events
        position = bisect.bisect_left(events, (int(start_time), -1))
        chosen = events[position : position + per_page]
        if len(chosen) == per_page:
            last_second = chosen[-1][0]
            end = bisect.bisect_right(events, (last_second, 2**63))
            chosen = events[position:end]
        end_of_stream = position + len(chosen) >= len(events)
        end_time = chosen[-1][0] if chosen else int(start_time)
        page = []
        for timestamp, comment_id, ticket_id, comment in chosen:
            child: Json = {"id": comment_id, "event_type": comment["type"], "type": comment["type"]}
            if with_comments:
                child |= {
                    key: comment.get(key)
                    for key in ("author_id", "body", "html_body", "plain_body", "public", "attachments", "created_at")
                }
                if "data" in comment:
                    child["data"] = comment["data"]
            page.append(
                {
                    "id": comment.get("audit_id") or comment_id,
                    "ticket_id": ticket_id,
                    "timestamp": timestamp,
                    "created_at": comment["created_at"],
                    "updater_id": comment.get("author_id"),
                    "via": comment.get("via"),
                    "event_type": "Audit",
                    "child_events": [child],
                }
            )
        next_query = urlencode({"start_time": end_time, **({"include": "comment_events"} if with_comments else {})})
        body: Json = {
            "ticket_events": page,
            "next_page": None if end_of_stream else f"{self.base_url}{request.path}?{next_query}",
            "count": len(page),
            "end_of_stream": end_of_stream,
            "end_time": end_time,
        }
        return Response(200, body)

    def _comment_event_log(self) -> _CommentEventLog:
        log = self._comment_events
        key = (self._next_ids["event"], sum(len(comments) for comments in self.comments.values()))
        if log.key != key:
            log.events = sorted(
                (_timestamp(comment["created_at"]), int(comment["id"]), ticket_id, comment)
                for ticket_id, comments in self.comments.items()
                if ticket_id in self.tickets
                for comment in comments
            )
            log.key = key
        return log

    # -- Seeding -------------------------------------------------------------------------------------

    def control(self, method: str, action: str, data: Any) -> Response | None:
        if (method, action) == ("POST", "backdate"):
            return self._backdate(data)
        if (method, action) == ("GET", "displays"):
            return Response(200, {"displays": list(self.displays)})
        if action == "job_faults" and method in ("GET", "POST"):
            return self._job_faults(method, data)
        if (method, action) != ("POST", "seed"):
            return None
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        if "count" in data:
            count, seed = data["count"], data.get("seed", 0)
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 2_000_000:
                raise ValueError("count: must be a whole number from 0 to 2000000")
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError("seed: must be a whole number")
            users, tickets = self._generate(count, random.Random(seed))
        else:
            users, tickets = data.get("users", []), data.get("tickets", [])
            if not isinstance(users, list) or not isinstance(tickets, list):
                raise ValueError("users and tickets must be lists")
        user_ids = [self._seed_user(fields) for fields in users]
        ticket_ids = [self._seed_ticket(fields) for fields in tickets]
        return Response(200, {"users": user_ids, "tickets": ticket_ids})

    def _job_faults(self, method: str, data: Any) -> Response:
        """`POST /__sandbox/job_faults` `{"item_fail_rate": 0.2}`: that share of bulk-update items fail.

        A failed item changes nothing and its job result says `success: false`, as Zendesk reports an
        item it could not update while the job itself completes.
        """
        if method == "POST":
            rate = data.get("item_fail_rate") if isinstance(data, dict) else None
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ValueError("item_fail_rate: must be a number from 0 to 1")
            self.job_item_fail_rate = float(rate)
        return Response(200, {"item_fail_rate": self.job_item_fail_rate, "item_failures": self.job_item_failures})

    def _backdate(self, data: Any) -> Response:
        """`POST /__sandbox/backdate` `{"ticket": id, "solved_at"?, "updated_at"?}`: move a ticket's times.

        Stands in for the days that pass in a real account: a ticket solved 9 days ago and touched by
        an automation 3 days ago, without waiting for either.
        """
        if not isinstance(data, dict) or _as_id(data.get("ticket")) not in self.tickets:
            raise ValueError("ticket: must be the id of a ticket")
        ticket = self.tickets[int(data["ticket"])]
        self._metric_set(ticket)
        for key in ("solved_at", "updated_at"):
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"{key}: must be an ISO 8601 time")
            datetime.fromisoformat(value)
            if key == "solved_at":
                self.metrics[ticket["id"]]["solved_at"] = value
            else:
                ticket["updated_at"] = value
        return Response(200, {"ticket": self._ticket_json(ticket), "metric_set": self._metric_set(ticket)})

    def _seed_user(self, fields: Any) -> int:
        if not isinstance(fields, dict):
            raise ValueError("each user must be an object")
        user_id = int(fields.get("id") or self._next_id("user"))
        now = _now()
        user: Json = {
            "id": user_id,
            "name": "",
            "email": None,
            "phone": None,
            # Every key a user made through the API has, so the API's checks can read any of them.
            "shared_phone_number": None,
            "role": "end-user",
            "active": True,
            "suspended": False,
            "external_id": None,
            "tags": [],
            "created_at": now,
            "updated_at": now,
            "user_fields": {},
            # Every Zendesk user has a locale (the account's default unless set).
            "locale_id": 1,
            "locale": "en-US",
        }
        user.update(fields)
        if user["phone"] is not None and user["shared_phone_number"] is None:
            user["shared_phone_number"] = False
        user["url"] = None
        self.users[user_id] = user
        return user_id

    def _seed_ticket(self, fields: Any) -> int:
        if not isinstance(fields, dict):
            raise ValueError("each ticket must be an object")
        ticket_id = int(fields.get("id") or self._next_id("ticket"))
        now = fields.get("created_at") or _now()
        ticket: Json = {
            "id": ticket_id,
            "url": None,
            "external_id": None,
            "via": {"channel": "email", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": now,
            "updated_at": fields.get("updated_at") or now,
            "type": None,
            "subject": "",
            "description": "",
            "priority": None,
            "status": "new",
            "requester_id": None,
            "submitter_id": None,
            "assignee_id": None,
            "organization_id": None,
            "group_id": None,
            "tags": [],
            "custom_fields": [],
            "satisfaction_rating": None,
            "is_public": True,
            # The rest of the keys Zendesk sends on every ticket (zenpy's recorded export has them all).
            "raw_subject": "",
            "recipient": None,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "forum_topic_id": None,
            "problem_id": None,
            "has_incidents": False,
            "due_at": None,
            "sharing_agreement_ids": [],
            "custom_status_id": None,
            "fields": None,
            "followup_ids": [],
            "ticket_form_id": None,
            "brand_id": None,
            "allow_channelback": False,
            "allow_attachments": True,
            "from_messaging_channel": False,
        }
        comments = fields.get("comments", [])
        ticket.update({key: value for key, value in fields.items() if key not in ("comments", "solved_at")})
        ticket["raw_subject"] = fields.get("raw_subject", ticket["subject"])
        if isinstance(ticket["via"], str):
            ticket["via"] = {"channel": ticket["via"], "source": {"from": {}, "to": {}, "rel": None}}
        stored = []
        for comment in comments:
            body = comment.get("body", "")
            stored.append(
                {
                    "id": comment.get("id") or self._next_id("event"),
                    "type": comment.get("type", "Comment"),
                    "body": body,
                    "html_body": _html(body),
                    "plain_body": body,
                    "public": comment.get("public", True),
                    "author_id": comment.get("author_id"),
                    "attachments": [],
                    "audit_id": None,
                    "via": ticket["via"],
                    "created_at": comment.get("created_at") or ticket["created_at"],
                    "metadata": comment.get("metadata") or {"system": {}, "custom": {}},
                    **({"data": comment["data"]} if "data" in comment else {}),
                    **(VOICE_COMMENT_EXTRAS if comment.get("type") in VOICE_COMMENT_TYPES else {}),
                    **(
                        {"title": (comment.get("data") or {}).get("title") or body.split("\n")[0], "trusted": True}
                        if comment.get("type") == "TpeVoiceComment"
                        else {}
                    ),
                }
            )
        self.tickets[ticket_id] = ticket
        self.comments[ticket_id] = stored
        self.metrics.pop(ticket_id, None)
        self._metric_set({**ticket, "solved_at": fields.get("solved_at")})
        return ticket_id

    def _generate(self, count: int, rng: random.Random) -> tuple[list[Json], list[Json]]:
        """A reproducible data set: agents (a few not importable), customers, and `count` tickets."""
        agents: list[Json] = [
            {"name": f"Agent{n} Seeded", "email": f"agent{n}@seed.example.com", "role": "agent"} for n in range(20)
        ]
        agents += [
            {"name": "Nomail Agent", "email": None, "role": "agent"},
            {"name": "Mononym", "email": "mononym@seed.example.com", "role": "agent"},
        ]
        customers = [
            {
                "name": f"Customer {n}",
                "email": f"customer{n}@seed.example.net",
                "phone": f"+1415{rng.randrange(10**7):07d}",
                "role": "end-user",
            }
            for n in range(max(1, min(count, 5000)))
        ]
        first_user = self._next_ids["user"]
        agent_ids = list(range(first_user, first_user + len(agents)))
        customer_ids = list(range(first_user + len(agents), first_user + len(agents) + len(customers)))
        now = time.time()
        tickets = []
        for _ in range(count):
            created = now - rng.uniform(0, 95 * 86400)
            updated = min(now - 60, created + rng.uniform(0, 3 * 86400))
            channel = rng.choice(SEED_CHANNELS)
            words = " ".join(rng.choices(SEED_WORDS, k=6))
            author = rng.choice(agent_ids)
            comments: list[Json] = [
                {"body": f"Customer wrote about {words}", "author_id": rng.choice(customer_ids)},
                {"body": f"Agent replied: {' '.join(rng.choices(SEED_WORDS, k=8))}", "author_id": author},
            ]
            if rng.random() < 0.05:
                comments.append({"body": "Ticket merged by a trigger", "author_id": -1, "public": False})
            if channel == "voice":
                recording = f"{self.base_url}/recordings/{rng.randrange(10**9)}.mp3"
                transcript = f"Caller: my {words}. Agent: let me check that for you."
                if rng.random() < 0.3:
                    # A call logged by a partner telephony app (Talk Partner Edition): the comment's
                    # data holds the call record's fields, as zenpy's recorded TestCallPE answers show.
                    comments.append(
                        {
                            "type": "TpeVoiceComment",
                            "body": f"Inbound call\n\nSummary\nDirection: inbound\nTranscript: {transcript}",
                            "author_id": author,
                            "public": False,
                            "data": {
                                "app_id": 1003048,
                                "app_name": "Partner telephony",
                                "author_id": None,
                                "call_id": rng.randrange(10**13, 10**14),
                                "direction": "inbound",
                                "external_id": None,
                                "title": "Inbound call",
                                "via_id": 45,
                                "recording_url": recording,
                                "transcript": transcript,
                            },
                        }
                    )
                else:
                    comments.append(
                        {
                            "type": "VoiceComment",
                            "body": "Inbound call",
                            "author_id": author,
                            "data": {"recording_url": recording, "transcription_text": transcript},
                        }
                    )
            tickets.append(
                {
                    "subject": f"{rng.choice(SEED_WORDS).capitalize()} {rng.choice(SEED_WORDS)} issue",
                    "description": f"Customer wrote about {words}",
                    "status": rng.choices(("solved", "closed", "open", "pending"), (55, 20, 15, 10))[0],
                    "via": channel,
                    "requester_id": rng.choice(customer_ids),
                    "assignee_id": rng.choice(agent_ids),
                    "tags": rng.sample(SEED_TAGS, rng.randrange(3)),
                    "created_at": _iso(created),
                    "updated_at": _iso(updated),
                    "comments": comments,
                }
            )
        return agents + customers, tickets

    routes: ClassVar[Sequence[tuple[str, str, Handler]]] = (  # type: ignore[assignment]  # a longer tuple
        *ZendeskSandbox.routes,
        ("GET", "/api/v2/incremental/tickets/cursor.json", export_tickets),
        ("GET", "/api/v2/incremental/ticket_events.json", export_ticket_events),
    )
