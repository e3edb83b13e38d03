"""A sandbox Freshdesk: the API v2 subset the provider uses, in Freshdesk's shapes (crm-api-shapes.md §4).

- `Authorization: Basic base64("<API key>:X")` with a key from the fixture (`api_keys`), else 401
  `{"code": "invalid_credentials", "message": ...}`.
- Contacts: create, list filtered by `phone`, `mobile`, `email`, `unique_external_id` (a bare
  array), and `GET /api/v2/search/contacts?query="phone:'...' OR mobile:'...'"` (`{"total",
  "results"}`; the query must be wrapped in double quotes, string values in single quotes).
- Agents: `GET /api/v2/agents/me`, `GET /api/v2/agents?email=` (paged with `page`/`per_page`; a
  deactivated agent stays listed with `deactivated: true`).
- Tickets: create (201), show, update (PUT; `tags` replaces the list), list (by `requester_id`,
  `updated_since`, else the last 30 days only; ordered; paged up to page 300; `include=` embeds
  `description`, `requester` and `stats`, each counted in `X-RateLimit-Used-CurrentRequest`),
  and the ticket search over `cf_` fields, status and tag; statuses 2 open,
  3 pending, 4 resolved, 5 closed.
- Notes: `POST /api/v2/tickets/{id}/notes` (JSON, or multipart with `attachments[]`), listed with
  `GET /api/v2/tickets/{id}/conversations`; files are served at their `attachment_url`.
- Ticket fields: `GET /api/v2/ticket_fields` (the default fields, then custom `cf_` ones) and
  `POST /api/v2/admin/ticket_fields`.
- Errors are `{"description": "Validation failed", "errors": [{"field", "message", "code"}]}`;
  every answer carries `X-RateLimit-Total`, `X-RateLimit-Remaining` and
  `X-RateLimit-Used-CurrentRequest`; past the limit, 429 with `Retry-After`.
- `POST /__sandbox/seed` `{"agents", "contacts", "tickets"}` (raw records, tickets with their
  `conversations` and `stats`) or `{"count", "seed"}` (a generated helpdesk) stores records as
  they would be after months of work, and answers their ids.
"""

import base64
import binascii
import email.parser
import email.policy
import html
import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.sandbox.base import Reject, Request, Response, Sandbox
from integrations.sandbox.zendesk import SEED_WORDS

Json = dict[str, Any]

FIRST_ID = 43000000001
STATUSES = (2, 3, 4, 5)
DEFAULT_API_KEYS = ("sandbox-api-key",)
# Freshdesk's own fields, listed before the custom ones (`default: true`).
DEFAULT_TICKET_FIELDS = (
    ("requester", "Search a requester", "default_requester"),
    ("subject", "Subject", "default_subject"),
    ("ticket_type", "Type", "default_ticket_type"),
    ("source", "Source", "default_source"),
    ("status", "Status", "default_status"),
    ("priority", "Priority", "default_priority"),
    ("group", "Group", "default_group"),
    ("agent", "Agent", "default_agent"),
    ("description", "Description", "default_description"),
)
CUSTOM_FIELD_TYPES = {"custom_text": str, "custom_number": int, "custom_decimal": float, "custom_checkbox": bool}
SEARCH_TERM_RE = re.compile(r"^(\w+):(?:'([^']*)'|(-?\d+(?:\.\d+)?)|(true|false|null))$")
SEARCH_PAGE_SIZE = 30
MAX_PER_PAGE = 100
MAX_LIST_PAGE = 300
# The ticket list without `updated_since` shows only tickets created in the last 30 days.
DEFAULT_LIST_DAYS = 30
TICKET_EMBEDS = ("description", "requester", "stats")
SOURCES = (1, 2, 3, 7, 9, 10)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(field: str, message: str, code: str = "invalid_value", status: int = 400) -> Reject:
    body = {"description": "Validation failed", "errors": [{"field": field, "message": message, "code": code}]}
    return Reject(Response(status, body))


def _moment(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("a time must be an ISO 8601 string")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_found() -> Reject:
    return Reject(Response(404, None))


def _plain(body_html: str) -> str:
    """`body_text` as Freshdesk derives it: line breaks kept, tags dropped, entities decoded."""
    text = re.sub(r"<br\s*/?>", "\n", body_html, flags=re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def parse_search(query: str | None) -> list[list[tuple[str, Any]]]:
    """A search query as OR-groups of AND-ed `(field, value)` terms; 400 for what Freshdesk refuses."""
    if not query or len(query) < 2 or not (query.startswith('"') and query.endswith('"')):
        raise _invalid("query", "It should be a/an String enclosed in double quotes", "invalid_value")
    groups = []
    for alternative in re.split(r"\s+OR\s+", query[1:-1].strip()):
        terms = []
        for term in re.split(r"\s+AND\s+", alternative.strip()):
            match = SEARCH_TERM_RE.match(term.strip())
            if match is None:
                raise _invalid("query", f"Invalid term {term!r}", "invalid_value")
            field, string, number, word = match.groups()
            if string is not None:
                value: Any = string
            elif number is not None:
                value = float(number) if "." in number else int(number)
            else:
                value = {"true": True, "false": False, "null": None}[word]
            terms.append((field, value))
        groups.append(terms)
    return groups


class FreshdeskSandbox(Sandbox):
    kind = "freshdesk"
    # Enterprise: 700 calls a minute, account-wide.
    advertised_rate_limit = 700
    raw_body_routes = frozenset({"POST /api/v2/tickets/{id}/notes"})
    # The Enterprise plan's per-endpoint limits inside the account's (crm-api-shapes.md §4.2).
    # Freshdesk sends only the account-wide headers, so these classes add no headers of their own.
    endpoint_classes = {
        "ticket-create": (frozenset({"POST /api/v2/tickets"}), 280),
        "ticket-update": (frozenset({"PUT /api/v2/tickets/{id}"}), 280),
        "tickets-list": (frozenset({"GET /api/v2/tickets"}), 200),
        "contacts-list": (frozenset({"GET /api/v2/contacts"}), 200),
    }

    def reset_state(self) -> None:
        self.next_id = FIRST_ID
        self.api_keys: set[str] = set(DEFAULT_API_KEYS)
        self.agents: dict[int, Json] = {}
        self.contacts: dict[int, Json] = {}
        self.tickets: dict[int, Json] = {}
        # A ticket's `stats` (`include=stats`): when it was last resolved and closed.
        self.ticket_stats: dict[int, Json] = {}
        self.conversations: dict[int, list[Json]] = {}
        self.fields: list[Json] = [
            {"id": self._id(), "name": name, "label": label, "type": kind, "default": True, "position": n + 1}
            for n, (name, label, kind) in enumerate(DEFAULT_TICKET_FIELDS)
        ]
        self.files: dict[int, tuple[str, str, bytes]] = {}
        self.me: int | None = None

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def load_fixture(self, fixture: Mapping[str, Any]) -> None:
        keys = fixture.get("api_keys", list(DEFAULT_API_KEYS))
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise ValueError("api_keys: must be a list of strings")
        self.api_keys = set(keys)
        for agent in fixture.get("agents", []):
            if not isinstance(agent, dict) or not agent.get("email"):
                raise ValueError("agents: each needs an email")
            self._add_agent(str(agent.get("name") or agent["email"]), str(agent["email"]))

    def _add_agent(self, name: str, address: str, *, deactivated: bool = False) -> Json:
        agent_id = self._id()
        now = _now()
        contact = {"id": agent_id, "name": name, "email": address, "active": True}
        agent = {
            "id": agent_id,
            "available": True,
            "occasional": False,
            "deactivated": deactivated,
            "contact": contact,
            "created_at": now,
            "updated_at": now,
        }
        self.agents[agent_id] = agent
        if self.me is None:
            self.me = agent_id
        return agent

    def control(self, method: str, action: str, data: Any) -> Response | None:
        if (method, action) == ("POST", "backdate"):
            return self._backdate(data)
        if (method, action) == ("POST", "seed"):
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            return Response(200, self.seed(data))
        if (method, action) == ("POST", "agents"):
            if not isinstance(data, dict) or not isinstance(data.get("email"), str):
                raise ValueError("the body needs an email")
            return Response(201, self._add_agent(str(data.get("name") or data["email"]), data["email"]))
        return None

    def _backdate(self, data: Any) -> Response:
        """`POST /__sandbox/backdate` `{"ticket": id, "resolved_at"?, "closed_at"?, "updated_at"?}`.

        Stands in for the days that pass in a real helpdesk: a ticket resolved 9 days ago and
        touched by an automation 3 days ago, without waiting for either.
        """
        if not isinstance(data, dict) or not isinstance(data.get("ticket"), int) or data["ticket"] not in self.tickets:
            raise ValueError("ticket: must be the id of a ticket")
        ticket = self.tickets[data["ticket"]]
        stats = self._stats(ticket)
        for key in ("resolved_at", "closed_at", "updated_at"):
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"{key}: must be an ISO 8601 time")
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            if key == "updated_at":
                ticket["updated_at"] = value
            else:
                stats[key] = value
        return Response(200, self._with_stats(ticket))

    def _stats(self, ticket: Json) -> Json:
        blank = dict.fromkeys(
            ("agent_responded_at", "requester_responded_at", "first_responded_at", "status_updated_at",
             "reopened_at", "resolved_at", "closed_at", "pending_since")
        )  # fmt: skip
        return self.ticket_stats.setdefault(ticket["id"], blank)

    def _with_stats(self, ticket: Json) -> Json:
        return {**ticket, "stats": dict(self._stats(ticket))}

    def _status_changed(self, ticket: Json, old: Any) -> None:
        """What Freshdesk's stats record of a status change: resolved (4), closed (5), reopened."""
        status, now = ticket.get("status"), _now()
        if status == old:
            return
        stats = self._stats(ticket)
        stats["status_updated_at"] = now
        if status == 4:
            stats["resolved_at"] = now
        elif status == 5:
            stats["closed_at"] = now
            stats["resolved_at"] = stats["resolved_at"] or now
        elif old in (4, 5):
            stats["reopened_at"] = now
        if status == 3:
            stats["pending_since"] = now

    @staticmethod
    def _includes_stats(request: Request) -> bool:
        return "stats" in (request.param("include") or "").split(",")

    # -- Seeding (QA import) ----------------------------------------------------------------------

    def seed_stores(self) -> Sequence[tuple[str, Callable[[Json], Any]]]:
        return (("agents", self._seed_agent), ("contacts", self._seed_contact), ("tickets", self._seed_ticket))

    def _seed_agent(self, fields: Json) -> int:
        if not isinstance(fields.get("email"), str) or not fields["email"]:
            raise ValueError("agents: each needs an email (Freshdesk invites agents by email)")
        agent = self._add_agent(
            str(fields.get("name") or ""), fields["email"], deactivated=bool(fields.get("deactivated"))
        )
        return int(agent["id"])

    def _seed_contact(self, fields: Json) -> int:
        now = _now()
        contact: Json = {
            "id": self._id(),
            "name": fields.get("name") or "",
            "email": fields.get("email"),
            "phone": fields.get("phone"),
            "mobile": fields.get("mobile"),
            "unique_external_id": None,
            "active": True,
            "deleted": False,
            "created_at": now,
            "updated_at": now,
        }
        self.contacts[contact["id"]] = contact
        return int(contact["id"])

    def _seed_ticket(self, fields: Json) -> int:
        if fields.get("requester_id") not in self.contacts:
            raise ValueError("tickets: each needs the requester_id of a seeded contact")
        if fields.get("responder_id") is not None and fields["responder_id"] not in self.agents:
            raise ValueError("tickets: responder_id must be an agent")
        status = fields.get("status", 5)
        if status not in STATUSES:
            raise ValueError("tickets: status must be one of 2, 3, 4, 5")
        now = _now()
        created_at, updated_at = fields.get("created_at") or now, fields.get("updated_at") or now
        for moment in (created_at, updated_at):
            _moment(moment)
        description = str(fields.get("description") or fields.get("subject") or "")
        ticket = {
            "id": len(self.tickets) + 1,
            "subject": fields.get("subject") or "",
            "description": f"<div>{html.escape(description)}</div>",
            "description_text": description,
            "requester_id": fields["requester_id"],
            "responder_id": fields.get("responder_id"),
            "status": status,
            "priority": fields.get("priority", 1),
            "source": fields.get("source", 2),
            "tags": [str(tag) for tag in fields.get("tags") or ()],
            "custom_fields": {name: None for name in self._custom_names()},
            "created_at": created_at,
            "updated_at": updated_at,
        }
        self.tickets[ticket["id"]] = ticket
        stats = self._stats(ticket)
        if status in (4, 5):
            stats["resolved_at"] = (fields.get("stats") or {}).get("resolved_at") or updated_at
        if status == 5:
            stats["closed_at"] = (fields.get("stats") or {}).get("closed_at") or updated_at
        self.conversations[ticket["id"]] = []
        for index, item in enumerate(fields.get("conversations") or ()):
            if not isinstance(item, dict) or not item.get("body"):
                raise ValueError(f"tickets: conversations[{index}] needs a body")
            moment = item.get("created_at") or created_at
            body = str(item["body"])
            self.conversations[ticket["id"]].append({
                "id": self._id(), "body": f"<div>{html.escape(body)}</div>", "body_text": body,
                "incoming": bool(item.get("incoming")), "private": bool(item.get("private", False)),
                # The agent or contact who wrote it; none for what an automation or a system added.
                "user_id": item.get("user_id"), "source": item.get("source", 0), "ticket_id": ticket["id"],
                "attachments": [], "created_at": moment, "updated_at": moment,
            })  # fmt: skip
        return int(ticket["id"])

    def generate(self, count: int, rng: random.Random) -> Json:
        """A reproducible helpdesk: 20 agents (and a mononym), 2,000 contacts, `count` tickets in 95 days."""
        agents = [
            self._seed_agent({"name": f"Agent{n} Seeded", "email": f"fagent{n}@seed.example.com"}) for n in range(20)
        ]
        self._seed_agent({"name": "Mononym", "email": "fmono@seed.example.com"})
        contacts = [
            self._seed_contact(
                {"name": f"Contact {n}", "email": f"fcontact{n}@seed.example.net", "phone": f"+1212{n:07d}"}
            )
            for n in range(2000)
        ]
        now = time.time()
        tickets = []
        for n in range(count):
            created = now - rng.uniform(0, 95) * 86400
            updated = min(now, created + rng.uniform(0, 2) * 86400)
            agent = rng.choice(agents)
            requester = rng.choice(contacts)
            words = " ".join(rng.choices(SEED_WORDS, k=6))
            tickets.append({
                "subject": f"Seeded {n}: {words[:40]}", "description": f"Customer writes: {words}",
                "requester_id": requester, "responder_id": agent if rng.random() < 0.95 else None,
                "status": rng.choice((4, 5, 5, 5, 2)), "source": rng.choice(SOURCES),
                "tags": rng.sample(("vip", "billing", "technical", "returns"), k=rng.randint(0, 2)),
                "created_at": _iso(created), "updated_at": _iso(updated),
                "conversations": [
                    {"body": f"Agent answers about {words[:30]}", "user_id": agent, "created_at": _iso(updated)},
                    {"body": f"Customer thanks: {words[:20]}", "user_id": requester, "incoming": True,
                     "created_at": _iso(updated)},
                ],
            })  # fmt: skip
        return {"tickets": tickets}

    # -- Protocol --------------------------------------------------------------------------------

    def connection_settings(self) -> dict[str, str]:
        return {"api_token": sorted(self.api_keys)[0]} if self.api_keys else {}

    def authenticate(self, headers: Mapping[str, str]) -> Response | None:
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        try:
            key = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
        except (ValueError, binascii.Error):
            key = ""
        if scheme.lower() == "basic" and key in self.api_keys:
            return None
        body = {"code": "invalid_credentials", "message": "You have to be logged in to perform this action."}
        return Response(401, body)

    def error(self, status: int, code: str, description: str) -> Response:
        return Response(status, {"code": code, "message": description})

    def rate_limit_headers(self, limit: int, remaining: int, reset_seconds: int) -> dict[str, str]:
        return {
            "X-RateLimit-Total": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Used-CurrentRequest": "1",
        }

    def rate_limited(self, retry_after: int) -> Response:
        body = {
            "message": f"You have exceeded the limit of requests per minute. Try again after {retry_after} seconds."
        }
        return Response(429, body, {"Retry-After": str(retry_after), "X-RateLimit-Remaining": "0"})

    def _body(self, request: Request) -> Json:
        if not isinstance(request.data, dict):
            raise Reject(Response(400, {"code": "invalid_json", "message": "Request body has invalid json format"}))
        return request.data

    # -- Agents and contacts -----------------------------------------------------------------------

    def agent_me(self, request: Request) -> Response:
        if self.me is None:
            raise _not_found()
        return Response(200, self.agents[self.me])

    def list_agents(self, request: Request) -> Response:
        wanted = (request.param("email") or "").lower()
        agents = [a for a in self.agents.values() if not wanted or a["contact"]["email"].lower() == wanted]
        per_page = min(int(request.param("per_page") or 30), MAX_PER_PAGE)
        page = int(request.param("page") or 1)
        return Response(200, agents[(page - 1) * per_page : page * per_page])

    def create_contact(self, request: Request) -> Response:
        data = self._body(request)
        allowed = {"name", "email", "phone", "mobile", "unique_external_id", "twitter_id", "description"}
        for key in data:
            if key not in allowed:
                raise _invalid(key, "Unexpected/invalid field in request", "invalid_field")
        if not isinstance(data.get("name"), str) or not data["name"].strip():
            raise _invalid("name", "It should be a/an String", "missing_field")
        identifiers = ("email", "phone", "mobile", "unique_external_id", "twitter_id")
        if not any(data.get(key) for key in identifiers):
            raise _invalid(
                "requester_id",
                "Please fill at least 1 of email, mobile, phone, twitter_id, unique_external_id fields",
                "missing_field",
            )
        for key in ("email", "unique_external_id"):
            if data.get(key) and any(c.get(key) == data[key] for c in self.contacts.values()):
                raise Reject(
                    Response(
                        409,
                        {
                            "description": "Validation failed",
                            "errors": [
                                {"field": key, "message": "It should be a unique value", "code": "duplicate_value"}
                            ],
                        },
                    )
                )
        now = _now()
        contact = {
            "id": self._id(),
            "name": data["name"],
            "email": data.get("email"),
            "phone": data.get("phone"),
            "mobile": data.get("mobile"),
            "unique_external_id": data.get("unique_external_id"),
            "active": False,
            "deleted": False,
            "created_at": now,
            "updated_at": now,
        }
        self.contacts[contact["id"]] = contact
        return Response(201, contact)

    def list_contacts(self, request: Request) -> Response:
        contacts = list(self.contacts.values())
        for key in ("email", "phone", "mobile", "unique_external_id"):
            value = request.param(key)
            if value is not None:
                contacts = [c for c in contacts if (c.get(key) or "").lower() == value.lower()]
        return Response(200, contacts)

    def _search(self, request: Request, items: list[Json], read: Any) -> Response:
        groups = parse_search(request.param("query"))
        page = int(request.param("page") or 1)
        if not 1 <= page <= 10:
            raise _invalid("page", "It should be a Positive Integer less than or equal to 10")
        found = [item for item in items if any(all(read(item, f) == v for f, v in group) for group in groups)]
        start = (page - 1) * SEARCH_PAGE_SIZE
        return Response(200, {"total": len(found), "results": found[start : start + SEARCH_PAGE_SIZE]})

    def search_contacts(self, request: Request) -> Response:
        def read(contact: Json, field: str) -> Any:
            if field not in ("phone", "mobile", "email", "name", "unique_external_id"):
                raise _invalid("query", f"Invalid field {field!r}")
            return contact.get(field)

        return self._search(request, list(self.contacts.values()), read)

    # -- Tickets ---------------------------------------------------------------------------------

    def _custom_names(self) -> dict[str, Json]:
        return {str(field["name"]): field for field in self.fields if not field.get("default")}

    def _check_ticket(self, data: Json, *, creating: bool) -> None:
        allowed = {"subject", "description", "requester_id", "status", "priority", "source", "tags",
                   "custom_fields", "responder_id", "type", "group_id", "email", "phone", "name"}  # fmt: skip
        for key in data:
            if key not in allowed:
                raise _invalid(key, "Unexpected/invalid field in request", "invalid_field")
        if creating:
            if not data.get("requester_id") and not data.get("email") and not data.get("phone"):
                raise _invalid(
                    "requester_id", "Please fill at least 1 of requester_id, email, phone fields", "missing_field"
                )
            if data.get("requester_id") is not None and data["requester_id"] not in self.contacts:
                raise _invalid("requester_id", "There is no contact matching the given requester_id")
            if not isinstance(data.get("subject"), str) or not data.get("description"):
                raise _invalid(
                    "subject" if not data.get("subject") else "description", "It should be a/an String", "missing_field"
                )
        if "status" in data and data["status"] not in STATUSES:
            raise _invalid("status", "It should be one of these values: '2,3,4,5'")
        if data.get("responder_id") is not None and data["responder_id"] not in self.agents:
            raise _invalid("responder_id", "There is no agent matching the given responder_id")
        if "tags" in data and (not isinstance(data["tags"], list) or not all(isinstance(t, str) for t in data["tags"])):
            raise _invalid("tags", "It should be a/an Array of Strings", "datatype_mismatch")
        custom = data.get("custom_fields") or {}
        if not isinstance(custom, dict):
            raise _invalid("custom_fields", "It should be a/an key/value pair", "datatype_mismatch")
        fields = self._custom_names()
        for name, value in custom.items():
            if name not in fields:
                raise _invalid(name, "Unexpected/invalid field in request", "invalid_field")
            expected = CUSTOM_FIELD_TYPES[str(fields[name]["type"])]
            ok = value is None or (
                isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
            )
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if not ok:
                raise _invalid(
                    name,
                    f"Value set is of type {type(value).__name__}.It should be a/an {expected.__name__}",
                    "datatype_mismatch",
                )

    def create_ticket(self, request: Request) -> Response:
        data = self._body(request)
        self._check_ticket(data, creating=True)
        now = _now()
        ticket = {
            "id": len(self.tickets) + 1,
            "subject": data["subject"],
            "description": data["description"],
            "description_text": _plain(data["description"]),
            "requester_id": data["requester_id"],
            "responder_id": data.get("responder_id"),
            "status": data.get("status", 2),
            "priority": data.get("priority", 1),
            "source": data.get("source", 2),
            "tags": list(data.get("tags") or []),
            "custom_fields": {name: None for name in self._custom_names()} | dict(data.get("custom_fields") or {}),
            "created_at": now,
            "updated_at": now,
        }
        self.tickets[ticket["id"]] = ticket
        self.conversations[ticket["id"]] = []
        self._status_changed(ticket, None)
        return Response(201, ticket, {"Location": f"{self.base_url}/api/v2/tickets/{ticket['id']}"})

    def _ticket(self, request: Request) -> Json:
        raw = request.args["id"]
        ticket = self.tickets.get(int(raw)) if raw.isdigit() else None
        if ticket is None:
            raise _not_found()
        return ticket

    def show_ticket(self, request: Request) -> Response:
        ticket = self._ticket(request)
        return Response(200, self._with_stats(ticket) if self._includes_stats(request) else ticket)

    def update_ticket(self, request: Request) -> Response:
        ticket = self._ticket(request)
        data = self._body(request)
        self._check_ticket(data, creating=False)
        old_status = ticket.get("status")
        for key, value in data.items():
            if key == "custom_fields":
                ticket["custom_fields"] = {**ticket["custom_fields"], **value}
            elif key == "description":
                ticket["description"], ticket["description_text"] = value, _plain(value)
            else:
                ticket[key] = list(value) if key == "tags" else value
        ticket["updated_at"] = _now()
        self._status_changed(ticket, old_status)
        return Response(200, ticket)

    def _listed(self, ticket: Json, embeds: set[str]) -> Json:
        """A ticket as the list shows it: the description and the requester only when embedded."""
        shown = {key: value for key, value in ticket.items() if key not in ("description", "description_text")}
        if "description" in embeds:
            shown.update(description=ticket["description"], description_text=ticket["description_text"])
        if "requester" in embeds:
            contact = self.contacts.get(ticket["requester_id"]) or {}
            shown["requester"] = {key: contact.get(key) for key in ("id", "name", "email", "mobile", "phone")}
        if "stats" in embeds:
            shown["stats"] = dict(self._stats(ticket))
        return shown

    def list_tickets(self, request: Request) -> Response:
        tickets = list(self.tickets.values())
        embeds = {item for item in (request.param("include") or "").split(",") if item}
        unknown = embeds - set(TICKET_EMBEDS)
        if unknown:
            raise _invalid("include", f"It should be one of these values: '{','.join(TICKET_EMBEDS)}'")
        requester = request.param("requester_id")
        if requester is not None:
            tickets = [t for t in tickets if str(t["requester_id"]) == requester]
        since = request.param("updated_since")
        if since:
            try:
                bound = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                raise _invalid("updated_since", "It should be in the 'valid date time' format") from None
            tickets = [t for t in tickets if _moment(t["updated_at"]) >= bound]
        else:
            recent = datetime.now(UTC) - timedelta(days=DEFAULT_LIST_DAYS)
            tickets = [t for t in tickets if _moment(t["created_at"]) >= recent]
        order_by = request.param("order_by") or "created_at"
        tickets.sort(
            key=lambda t: (t.get(order_by) or "", t["id"]), reverse=(request.param("order_type") or "desc") == "desc"
        )
        per_page = min(int(request.param("per_page") or 30), MAX_PER_PAGE)
        page = int(request.param("page") or 1)
        if page > MAX_LIST_PAGE:
            raise _invalid(
                "page", "You cannot access tickets beyond the 300th page. Please provide a smaller page number."
            )
        shown = tickets[(page - 1) * per_page : page * per_page]
        # Each embed costs two more credits of the minute's budget (Freshdesk's rate-limit article).
        used = {"X-RateLimit-Used-CurrentRequest": str(1 + 2 * len(embeds))}
        return Response(200, [self._listed(ticket, embeds) for ticket in shown], used)

    def search_tickets(self, request: Request) -> Response:
        def read(ticket: Json, field: str) -> Any:
            if field.startswith("cf_"):
                return ticket["custom_fields"].get(field)
            if field == "tag":
                return field  # matched below
            if field in ("status", "priority", "requester_id", "responder_id", "agent_id"):
                return ticket.get("responder_id" if field == "agent_id" else field)
            raise _invalid("query", f"Invalid field {field!r}")

        groups = parse_search(request.param("query"))
        found = [
            t for t in self.tickets.values()
            if any(all((v in t["tags"]) if f == "tag" else read(t, f) == v for f, v in group) for group in groups)
        ]  # fmt: skip
        page = int(request.param("page") or 1)
        start = (page - 1) * SEARCH_PAGE_SIZE
        return Response(200, {"total": len(found), "results": found[start : start + SEARCH_PAGE_SIZE]})

    # -- Notes and conversations -----------------------------------------------------------------

    def create_note(self, request: Request) -> Response:
        ticket = self._ticket(request)
        content_type = request.headers.get("content-type", "")
        files: list[tuple[str, str, bytes]] = []
        if content_type.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
            )
            data: Json = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                payload = payload if isinstance(payload, bytes) else b""
                if name == "attachments[]":
                    filename = part.get_filename() or "file"
                    files.append((filename, part.get_content_type(), payload))
                elif isinstance(name, str):
                    data[name] = payload.decode()
            if "private" in data:
                data["private"] = data["private"] == "true"
        else:
            try:
                data = json.loads(request.body or b"{}")
            except ValueError:
                raise Reject(
                    Response(400, {"code": "invalid_json", "message": "Request body has invalid json format"})
                ) from None
            if not isinstance(data, dict):
                raise Reject(Response(400, {"code": "invalid_json", "message": "Request body has invalid json format"}))
        if not isinstance(data.get("body"), str) or not data["body"]:
            raise _invalid("body", "It should be a/an String", "missing_field")
        now = _now()
        note_id = self._id()
        attachments = []
        for filename, file_type, payload in files:
            file_id = self._id()
            self.files[file_id] = (filename, file_type, payload)
            attachments.append({
                "id": file_id, "name": filename, "content_type": file_type, "size": len(payload),
                "attachment_url": f"{self.base_url}/attachments/{file_id}", "created_at": now,
            })  # fmt: skip
        note = {
            "id": note_id,
            "body": data["body"],
            "body_text": _plain(data["body"]),
            "incoming": False,
            "private": bool(data.get("private", True)),
            "user_id": self.me,
            "source": 2,
            "ticket_id": ticket["id"],
            "attachments": attachments,
            "created_at": now,
            "updated_at": now,
        }
        self.conversations[ticket["id"]].append(note)
        ticket["updated_at"] = now
        return Response(201, note)

    def list_conversations(self, request: Request) -> Response:
        ticket = self._ticket(request)
        per_page = min(int(request.param("per_page") or 30), MAX_PER_PAGE)
        page = int(request.param("page") or 1)
        return Response(200, self.conversations[ticket["id"]][(page - 1) * per_page : page * per_page])

    def download(self, request: Request) -> Response:
        raw = request.args["id"]
        found = self.files.get(int(raw)) if raw.isdigit() else None
        if found is None:
            raise _not_found()
        return Response(200, found[2], {"Content-Type": found[1]})

    # -- Ticket fields ---------------------------------------------------------------------------

    def list_fields(self, request: Request) -> Response:
        return Response(200, self.fields)

    def create_field(self, request: Request) -> Response:
        data = self._body(request)
        label = data.get("label")
        if not isinstance(label, str) or not label.strip():
            raise _invalid("label", "It should be a/an String", "missing_field")
        if data.get("type") not in CUSTOM_FIELD_TYPES:
            raise _invalid("type", f"It should be one of these values: '{','.join(CUSTOM_FIELD_TYPES)}'")
        name = "cf_" + "_".join(re.findall(r"[a-z0-9]+", label.lower()))
        if any(field["name"] == name or field["label"] == label for field in self.fields):
            raise Reject(Response(409, {"description": "Validation failed", "errors": [
                {"field": "label", "message": "It should be a unique value", "code": "duplicate_value"}]}))  # fmt: skip
        field = {
            "id": self._id(),
            "name": name,
            "label": label,
            "label_for_customers": data.get("label_for_customers") or label,
            "type": data["type"],
            "default": False,
            "position": len(self.fields) + 1,
            "created_at": _now(),
        }
        self.fields.append(field)
        for ticket in self.tickets.values():
            ticket["custom_fields"].setdefault(name, None)
        return Response(201, field)

    routes = (
        ("GET", "/api/v2/agents/me", agent_me),
        ("GET", "/api/v2/agents", list_agents),
        ("POST", "/api/v2/contacts", create_contact),
        ("GET", "/api/v2/contacts", list_contacts),
        ("GET", "/api/v2/search/contacts", search_contacts),
        ("GET", "/api/v2/search/tickets", search_tickets),
        ("POST", "/api/v2/tickets", create_ticket),
        ("GET", "/api/v2/tickets", list_tickets),
        ("GET", "/api/v2/tickets/{id}", show_ticket),
        ("PUT", "/api/v2/tickets/{id}", update_ticket),
        ("POST", "/api/v2/tickets/{id}/notes", create_note),
        ("GET", "/api/v2/tickets/{id}/conversations", list_conversations),
        ("GET", "/api/v2/ticket_fields", list_fields),
        ("POST", "/api/v2/admin/ticket_fields", create_field),
        ("GET", "/attachments/{id}", download),
    )
