"""A sandbox Salesforce: the REST subset the provider uses, in Salesforce's own shapes (crm-api-shapes.md §3).

- `POST /services/oauth2/token` (form-encoded; password or client_credentials grant) answers an
  access token and `instance_url` (this sandbox); any non-empty client id and secret are accepted.
  The password grant checks the login as Salesforce does from outside the org's trusted IP ranges:
  `password` must be the user's password with their security token appended (SANDBOX_LOGIN, or
  logins added with `POST /__sandbox/logins`); anything else is 400 invalid_grant
  "authentication failure", the same answer whether the token is missing or the password wrong.
- `GET /services/data/` lists the API versions; `GET /services/data/vXX.X/query?q=SOQL` runs a
  SOQL subset (below) and pages with `nextRecordsUrl` (`GET .../query/{locator}`);
  `GET .../sobjects/{type}/{id}` reads one record.
- Errors are Salesforce's arrays `[{"message", "errorCode"}]`: 401 INVALID_SESSION_ID for a missing
  or expired token, 400 MALFORMED_QUERY / INVALID_FIELD / INVALID_TYPE, 404 NOT_FOUND, and the
  request limit as 403 REQUEST_LIMIT_EXCEEDED (Salesforce has no 429). Every answer carries
  `Sforce-Limit-Info: api-usage=N/LIMIT`.

SOQL subset: `SELECT fields FROM User|Case|Contact [WHERE cond AND cond ...] [ORDER BY f [, f]]
[LIMIT n]`, where a field may be a parent field (`Contact.Name`) or, on Case, a child sub-query
`(SELECT ... FROM CaseComments)` / `(SELECT ... FROM LiveChatTranscripts)` /
`(SELECT ... FROM EmailMessages)`, and a condition is
`Field op literal` with `= != < <= > >=` and a string, number, true/false/null or datetime.

Control endpoints besides the common ones: `POST /__sandbox/seed` (`{"count", "seed"}` for a
generated org, or `{"users", "contacts", "cases"}` of raw records, cases with `CaseComments` and
`LiveChatTranscripts` lists), `POST /__sandbox/expire_tokens` (every issued token becomes invalid)
and `POST /__sandbox/logins` (`{"username", "password", "security_token"}`: a user the password grant
accepts; an empty security token stands for a login from a trusted IP range, which needs none).
"""

import base64
import binascii
import copy
import dataclasses
import functools
import random
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from integrations.sandbox.base import Reject, Request, Response, Route, Sandbox
from integrations.sandbox.zendesk import SEED_WORDS

Json = dict[str, Any]

API_VERSIONS = ("58.0", "59.0", "60.0", "61.0")
# The API user every sandbox accepts for the password grant: (username, password, security token).
SANDBOX_LOGIN = ("api@example.com", "sandbox-password", "SbxSecurityToken0123456")
# Records per query page: Salesforce's default batch size.
QUERY_BATCH_SIZE = 2000
# The daily request allocation the limit header advertises (Enterprise base, crm-api-shapes.md §3.3).
DAILY_LIMIT = 100_000
# Key prefixes of Salesforce ids, per object.
ID_PREFIXES = {
    "User": "005",
    "Contact": "003",
    "Case": "500",
    "CaseComment": "00a",
    "LiveChatTranscript": "570",
    "EmailMessage": "02s",
    "ContentVersion": "068",
    "CustomField": "00N",
}
QUEUE_ID = "00G000000000001AAA"
CLOSED_STATUSES = frozenset({"Closed"})
ORIGINS = ("Phone", "Email", "Web", "Chat", "Facebook", "SMS", "WhatsApp")

FIELDS: dict[str, tuple[str, ...]] = {
    "User": ("Id", "FirstName", "LastName", "Name", "Email", "IsActive", "UserType", "CreatedDate", "SystemModstamp"),
    "Contact": (
        "Id",
        "FirstName",
        "LastName",
        "Name",
        "Email",
        "Phone",
        "MobilePhone",
        "CreatedDate",
        "SystemModstamp",
    ),
    "Case": (
        "Id",
        "CaseNumber",
        "Subject",
        "Description",
        "Status",
        "IsClosed",
        "Origin",
        "Priority",
        "OwnerId",
        "ContactId",
        "SuppliedName",
        "SuppliedEmail",
        "SuppliedPhone",
        "CreatedDate",
        "ClosedDate",
        "LastModifiedDate",
        "SystemModstamp",
    ),
    "CaseComment": ("Id", "ParentId", "CommentBody", "CreatedById", "CreatedDate", "IsPublished"),
    "LiveChatTranscript": ("Id", "CaseId", "Body", "CreatedDate"),
    "EmailMessage": (
        "Id",
        "ParentId",
        "TextBody",
        "FromAddress",
        "Incoming",
        "MessageDate",
        "CreatedById",
        "CreatedDate",
    ),
    "ContentVersion": ("Id", "Title", "PathOnClient", "FirstPublishLocationId", "VersionData", "CreatedDate"),
}
# Fields the API computes: a create or update that sets one is refused (INVALID_FIELD_FOR_INSERT_UPDATE).
READ_ONLY_FIELDS = frozenset(
    {"Id", "Name", "CaseNumber", "IsClosed", "ClosedDate", "CreatedDate", "LastModifiedDate", "SystemModstamp"}
)
# Objects the API writes to here (create with POST, update with PATCH; Case also upserted).
WRITABLE = frozenset({"Contact", "Case", "CaseComment", "ContentVersion"})
CASE_STATUSES = ("New", "Working", "Escalated", "Closed")
# The Tooling API's custom field types this sandbox accepts, and the JSON values each takes.
CUSTOM_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "Text": (str,),
    "Number": (int, float),
    "Checkbox": (bool,),
    "TextArea": (str,),
}
HALTED = [
    {
        "errorCode": "PROCESSING_HALTED",
        "message": "The transaction was rolled back since another operation in the same transaction failed.",
    }
]
REFERENCE_RE = re.compile(r"@\{(\w+)\.(\w+)\}")
# Parent relationships: (object, relationship name) -> (id field, parent object).
PARENTS = {("Case", "Contact"): ("ContactId", "Contact"), ("Case", "Owner"): ("OwnerId", "User")}
# Child relationships of Case: name -> (child object, field pointing at the case).
CHILDREN = {
    "CaseComments": ("CaseComment", "ParentId"),
    "LiveChatTranscripts": ("LiveChatTranscript", "CaseId"),
    "EmailMessages": ("EmailMessage", "ParentId"),
}
DATETIME_FIELDS = frozenset({"CreatedDate", "ClosedDate", "LastModifiedDate", "SystemModstamp"})

TOKEN_RE = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<op><=|>=|!=|<>|=|<|>)|(?P<punct>[(),])"
    r"|(?P<datetime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))|(?P<word>[\w.]+))"
)


def sf_time(seconds: float) -> str:
    """A datetime as Salesforce writes it: `2026-11-21T10:00:00.000+0000`."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _sf_error(status: int, code: str, message: str) -> Reject:
    return Reject(Response(status, [{"message": message, "errorCode": code}]))


def _malformed(message: str) -> Reject:
    return _sf_error(400, "MALFORMED_QUERY", message)


@dataclasses.dataclass(frozen=True)
class Query:
    obj: str
    fields: tuple[str, ...]
    children: tuple["Query", ...]
    # The relationship name for a sub-query (CaseComments), empty at the top.
    relationship: str
    where: tuple[tuple[str, str, Any], ...]
    order_by: tuple[str, ...]
    limit: int | None


class _Parser:
    def __init__(self, soql: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(soql):
            if soql[position:].strip() == "":
                break
            match = TOKEN_RE.match(soql, position)
            if match is None or match.end() == position:
                raise _malformed(f"unexpected token at: {soql[position : position + 20]!r}")
            kind = match.lastgroup or "word"
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _malformed("unexpected end of query")
        self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].upper() == word:
            self.index += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            found = self.peek()
            raise _malformed(f"expecting {word}, found {found[1] if found else 'the end'!r}")

    def query(self, nested: bool = False) -> Query:
        self.expect("SELECT")
        fields: list[str] = []
        children: list[Query] = []
        while True:
            token = self.take()
            if token == ("punct", "(") and not nested:
                children.append(self.query(nested=True))
                if self.take() != ("punct", ")"):
                    raise _malformed("expecting ) after a sub-query")
            elif token[0] == "word":
                fields.append(token[1])
            else:
                raise _malformed(f"unexpected {token[1]!r} in the field list")
            if self.peek() != ("punct", ","):
                break
            self.take()
        self.expect("FROM")
        source = self.take()[1]
        where: list[tuple[str, str, Any]] = []
        if self.keyword("WHERE"):
            while True:
                field = self.take()
                op = self.take()
                if field[0] != "word" or op[0] != "op":
                    raise _malformed("a condition is `Field operator value`")
                where.append((field[1], op[1], self.literal()))
                if not self.keyword("AND"):
                    break
        order_by: list[str] = []
        if self.keyword("ORDER"):
            self.expect("BY")
            while True:
                field_name = self.take()[1]
                # A leading "-" marks a descending key.
                order_by.append("-" + field_name if self.keyword("DESC") else field_name)
                self.keyword("ASC")
                if self.peek() != ("punct", ","):
                    break
                self.take()
        limit = None
        if self.keyword("LIMIT"):
            text = self.take()[1]
            if not text.isdigit():
                raise _malformed("LIMIT takes a whole number")
            limit = int(text)
        rest = self.peek()
        if not nested and rest is not None:
            raise _malformed(f"unexpected {rest[1]!r}")
        relationship = source if nested else ""
        obj = CHILDREN[source][0] if nested and source in CHILDREN else source
        if nested and source not in CHILDREN:
            raise _sf_error(400, "INVALID_TYPE", f"Didn't understand relationship '{source}' in FROM part of query")
        return Query(obj, tuple(fields), tuple(children), relationship, tuple(where), tuple(order_by), limit)

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "datetime":
            return datetime.fromisoformat(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind == "word" and text.lower() == "null":
            return None
        if kind == "word" and re.fullmatch(r"-?\d+(\.\d+)?", text):
            return float(text)
        raise _malformed(f"unexpected value {text!r}")


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value):
        return datetime.fromisoformat(value)
    return value


def _record_sort_key(field: str, record: Json) -> tuple[bool, Any]:
    # Nulls last, as Salesforce sorts them by default.
    value = record.get(field)
    return (value is None, _comparable(value) if value is not None else "")


def _matches(record: Json, conditions: tuple[tuple[str, str, Any], ...]) -> bool:
    for field, op, literal in conditions:
        value = _comparable(record.get(field))
        if op == "=":
            ok = value == literal
        elif op in ("!=", "<>"):
            ok = value != literal
        elif value is None or literal is None:
            ok = False
        else:
            ok = {"<": value < literal, "<=": value <= literal, ">": value > literal, ">=": value >= literal}[op]
        if not ok:
            return False
    return True


class SalesforceSandbox(Sandbox):
    """Salesforce REST: OAuth token, SOQL query with paging, sObject read, with Salesforce's errors."""

    kind = "salesforce"
    advertised_rate_limit = DAILY_LIMIT

    # -- State -----------------------------------------------------------------------------------

    def reset_state(self) -> None:
        self.records: dict[str, dict[str, Json]] = {obj: {} for obj in FIELDS}
        self.tokens: set[str] = set()
        # username -> (password, security token): what the password grant accepts.
        self.logins: dict[str, tuple[str, str]] = {SANDBOX_LOGIN[0]: SANDBOX_LOGIN[1:]}
        self.locators: dict[str, tuple[Query, list[str], str]] = {}
        self._next_number = dict.fromkeys(ID_PREFIXES, 1)
        # Child records by parent id, per child object (sub-queries read these).
        self.children: dict[str, dict[str, list[Json]]] = {obj: {} for obj, _ in CHILDREN.values()}
        self._locator_number = 0
        # Custom fields made through the Tooling API: object -> API name -> metadata.
        self.custom_fields: dict[str, dict[str, Json]] = {obj: {} for obj in FIELDS}
        # ContentVersion bytes by id (the records keep the VersionData URL, as the API shows it).
        self.blobs: dict[str, bytes] = {}

    def fields_of(self, obj: str) -> tuple[str, ...]:
        return (*FIELDS.get(obj, ()), *self.custom_fields.get(obj, {}))

    def external_id_fields(self, obj: str) -> set[str]:
        return {name for name, meta in self.custom_fields.get(obj, {}).items() if meta.get("externalId")}

    def load_fixture(self, fixture: Mapping[str, Any]) -> None:
        self.seed(dict(fixture))

    def _new_id(self, obj: str) -> str:
        number = self._next_number[obj]
        self._next_number[obj] = number + 1
        return f"{ID_PREFIXES[obj]}{number:012d}AAA"

    def connection_settings(self) -> dict[str, str]:
        # Any non-empty client id and secret get a token (client-credentials flow).
        return {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}

    def error(self, status: int, code: str, description: str) -> Response:
        codes = {400: "BAD_REQUEST", 404: "NOT_FOUND", 500: "UNKNOWN_EXCEPTION", 503: "SERVER_UNAVAILABLE"}
        return Response(status, [{"message": description, "errorCode": codes.get(status, code)}])

    def rate_limit_headers(self, limit: int, remaining: int, reset_seconds: int) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.stats.total}/{limit}"}

    def _too_many_requests(self, retry_after: int) -> Response:
        # Salesforce has no 429: an exhausted allocation is a 403 with this code, and no Retry-After.
        self.stats.rate_limited += 1
        return Response(403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])

    def _dispatch(self, route: Route | None, request: Request, body: bytes) -> Response:
        if route is not None and route.template == "/services/oauth2/token":
            form = {key: values[0] for key, values in parse_qs(body.decode(errors="replace")).items()}
            try:
                return self.token(dataclasses.replace(request, data=form))
            except Reject as rejection:
                return rejection.response
        if route is not None and route.template != "/services/data/":
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() not in self.tokens:
                return Response(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        return super()._dispatch(route, request, body)

    # -- OAuth -------------------------------------------------------------------------------------

    def token(self, request: Request) -> Response:
        form = request.data
        grant = form.get("grant_type")
        if grant not in ("password", "client_credentials", "refresh_token"):
            body = {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
            return Response(400, body)
        if not form.get("client_id") or not form.get("client_secret"):
            return Response(400, {"error": "invalid_client_id", "error_description": "client identifier invalid"})
        if grant == "password" and not self._login_accepted(form.get("username", ""), form.get("password", "")):
            return Response(400, {"error": "invalid_grant", "error_description": "authentication failure"})
        access_token = f"00D000000000001!{secrets.token_urlsafe(24)}"
        self.tokens.add(access_token)
        user_id = next(iter(self.records["User"]), "005000000000001AAA")
        body = {
            "access_token": access_token,
            "instance_url": self.base_url,
            "id": f"{self.base_url}/id/00D000000000001AAA/{user_id}",
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "signature": secrets.token_urlsafe(32),
            "scope": "api",
        }
        return Response(200, body)

    def _login_accepted(self, username: str, password: str) -> bool:
        """The password grant's check: the password, then the security token, as one string."""
        known = self.logins.get(username)
        return known is not None and secrets.compare_digest(password.encode(), (known[0] + known[1]).encode())

    # -- Data API ----------------------------------------------------------------------------------

    def versions(self, request: Request) -> Response:
        return Response(200, [{"version": v, "url": f"/services/data/v{v}", "label": f"v{v}"} for v in API_VERSIONS])

    def _version(self, request: Request) -> str:
        version = request.args["version"]
        if version not in API_VERSIONS:
            raise _sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        return version

    def query(self, request: Request) -> Response:
        version = self._version(request)
        soql = request.param("q")
        if not soql:
            raise _malformed("A query string has to be specified")
        query = _Parser(soql).query()
        self._check(query)
        rows = [r for r in self.records[query.obj].values() if _matches(r, query.where)]
        for field in reversed(query.order_by):
            rows.sort(key=functools.partial(_record_sort_key, field.lstrip("-")), reverse=field.startswith("-"))
        if query.limit is not None:
            rows = rows[: query.limit]
        self._locator_number += 1
        locator = f"01g{self._locator_number:015d}"
        self.locators[locator] = (query, [row["Id"] for row in rows], version)
        return self._page(locator, 0)

    def query_more(self, request: Request) -> Response:
        self._version(request)
        locator, _, offset = request.args["locator"].partition("-")
        if locator not in self.locators or not offset.isdigit():
            raise _sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(locator, int(offset))

    def _page(self, locator: str, offset: int) -> Response:
        query, ids, version = self.locators[locator]
        chunk = ids[offset : offset + QUERY_BATCH_SIZE]
        records = [
            self._shape(query, self.records[query.obj][i], version) for i in chunk if i in self.records[query.obj]
        ]
        done = offset + QUERY_BATCH_SIZE >= len(ids)
        body: Json = {"totalSize": len(ids), "done": done, "records": records}
        if done:
            self.locators.pop(locator, None)
        else:
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{offset + QUERY_BATCH_SIZE}"
        return Response(200, body)

    def _check(self, query: Query) -> None:
        if query.obj not in FIELDS:
            raise _sf_error(400, "INVALID_TYPE", f"sObject type '{query.obj}' is not supported.")
        for field in (*query.fields, *(c[0] for c in query.where), *(f.lstrip("-") for f in query.order_by)):
            parent, dot, name = field.partition(".")
            ok = (
                (
                    PARENTS.get((query.obj, parent), ("", ""))[1] in FIELDS
                    and name in self.fields_of(PARENTS[(query.obj, parent)][1])
                )
                if dot
                else field in self.fields_of(query.obj)
            )
            if not ok:
                raise _sf_error(400, "INVALID_FIELD", f"No such column '{field}' on entity '{query.obj}'.")
        for child in query.children:
            if query.obj != "Case" or child.relationship not in CHILDREN:
                raise _sf_error(400, "INVALID_TYPE", f"Didn't understand relationship '{child.relationship}'")
            self._check(child)

    def _attributes(self, obj: str, record_id: str, version: str) -> Json:
        return {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{record_id}"}

    def _shape(self, query: Query, record: Json, version: str) -> Json:
        shaped: Json = {"attributes": self._attributes(query.obj, record["Id"], version)}
        for field in query.fields:
            parent, dot, name = field.partition(".")
            if not dot:
                shaped[field] = record.get(field)
                continue
            id_field, parent_obj = PARENTS[(query.obj, parent)]
            target = self.records[parent_obj].get(record.get(id_field) or "")
            if target is None:
                shaped[parent] = None
            else:
                nested = shaped.get(parent) or {"attributes": self._attributes(parent_obj, target["Id"], version)}
                nested[name] = target.get(name)
                shaped[parent] = nested
        for child in query.children:
            child_obj, _ = CHILDREN[child.relationship]
            rows = [r for r in self.children[child_obj].get(record["Id"], ()) if _matches(r, child.where)]
            # Salesforce answers an empty child relationship with null, not an empty list.
            shaped[child.relationship] = (
                {"totalSize": len(rows), "done": True, "records": [self._shape(child, r, version) for r in rows]}
                if rows
                else None
            )
        return shaped

    def sobject(self, request: Request) -> Response:
        version = self._version(request)
        obj = request.args["type"]
        if obj not in FIELDS:
            raise _sf_error(404, "NOT_FOUND", f"The requested resource does not exist: {obj}")
        record = self.records[obj].get(request.args["id"])
        if record is None:
            raise _sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        return Response(200, {"attributes": self._attributes(obj, record["Id"], version), **record})

    # -- Writes: create, update, upsert by external id, composite, files, Tooling fields ----------

    def _writable(self, obj: str, body: Any, *, creating: bool) -> Json:
        if obj not in WRITABLE:
            raise _sf_error(404, "NOT_FOUND", f"The requested resource does not exist: {obj}")
        if not isinstance(body, dict):
            raise _sf_error(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        fields = self.fields_of(obj)
        for name, value in body.items():
            if name not in fields and name != "attributes":
                raise _sf_error(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj}")
            if name in READ_ONLY_FIELDS:
                raise _sf_error(400, "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {name}.")
            meta = self.custom_fields.get(obj, {}).get(name)
            expected = CUSTOM_FIELD_TYPES.get(str(meta.get("type"))) if meta else None
            if (
                expected is not None
                and value is not None
                and (not isinstance(value, expected) or (bool not in expected and isinstance(value, bool)))
            ):
                raise _sf_error(400, "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{name}: value not of required type: {value}")
        changes = {name: value for name, value in body.items() if name != "attributes"}
        if obj == "Contact" and creating and not changes.get("LastName"):
            raise _sf_error(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]")
        if obj == "Case" and "Status" in changes and changes["Status"] not in CASE_STATUSES:
            raise _sf_error(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"Status: bad value for restricted picklist field: {changes['Status']}",
            )
        references = {"ContactId": "Contact", "OwnerId": "User", "ParentId": "Case", "FirstPublishLocationId": "Case"}
        for name, target in references.items():
            value = changes.get(name)
            if value and value not in self.records[target] and not (name == "OwnerId" and value == QUEUE_ID):
                raise _sf_error(400, "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {name}")
        if obj in ("CaseComment", "ContentVersion") and creating:
            link = "ParentId" if obj == "CaseComment" else "FirstPublishLocationId"
            if not changes.get(link):
                raise _sf_error(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{link}]")
        return changes

    def _apply(self, obj: str, record: Json, changes: Json) -> None:
        now = sf_time(time.time())
        record.update(changes)
        record["LastModifiedDate"] = record["SystemModstamp"] = now
        if obj == "Contact":
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
        if obj == "Case":
            was_closed = record.get("IsClosed")
            record["IsClosed"] = record.get("Status") in CLOSED_STATUSES
            if record["IsClosed"] and not was_closed:
                record["ClosedDate"] = now
            elif not record["IsClosed"]:
                record["ClosedDate"] = None

    def _create(self, obj: str, changes: Json, version: str) -> Response:
        if obj == "ContentVersion":
            data = changes.get("VersionData") or ""
            try:
                blob = base64.b64decode(str(data), validate=True)
            except (ValueError, binascii.Error):
                raise _sf_error(400, "INVALID_FIELD", "VersionData: not valid base64") from None
            changes = {**changes, "VersionData": None}
        if obj == "Case":
            # The org's default case owner: a support queue (Setup > Support Settings).
            changes = {"OwnerId": QUEUE_ID, **changes}
        record_id = self._store(obj, dict(changes))
        record = self.records[obj][record_id]
        self._apply(obj, record, {})
        if obj == "ContentVersion":
            self.blobs[record_id] = blob
            record["VersionData"] = f"/services/data/v{version}/sobjects/ContentVersion/{record_id}/VersionData"
        if obj == "CaseComment":
            self.children["CaseComment"].setdefault(record["ParentId"], []).append(record)
        location = f"/services/data/v{version}/sobjects/{obj}/{record_id}"
        return Response(201, {"id": record_id, "success": True, "errors": []}, {"Location": location})

    def create(self, request: Request) -> Response:
        version, obj = self._version(request), request.args["type"]
        return self._create(obj, self._writable(obj, request.data, creating=True), version)

    def update(self, request: Request) -> Response:
        self._version(request)
        obj = request.args["type"]
        changes = self._writable(obj, request.data, creating=False)
        record = self.records.get(obj, {}).get(request.args["id"])
        if record is None:
            raise _sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        self._apply(obj, record, changes)
        return Response(204)

    def upsert(self, request: Request) -> Response:
        """`PATCH /sobjects/{type}/{field}/{value}`: 201 created, 200 updated (API 46+), 300 several match."""
        version, obj, field, value = (
            self._version(request),
            request.args["type"],
            request.args["field"],
            request.args["value"],
        )
        if field not in self.external_id_fields(obj):
            raise _sf_error(
                404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field}"
            )
        changes = self._writable(obj, request.data, creating=False)
        if changes.get(field) not in (None, value):
            raise _sf_error(400, "INVALID_FIELD", f"{field}: the body's value differs from the URL's")
        matches = [record for record in self.records[obj].values() if record.get(field) == value]
        if len(matches) > 1:
            urls = [f"/services/data/v{version}/sobjects/{obj}/{record['Id']}" for record in matches]
            return Response(300, urls)
        if matches:
            self._apply(obj, matches[0], changes)
            return Response(200, {"id": matches[0]["Id"], "success": True, "errors": [], "created": False})
        if obj == "Contact" and not changes.get("LastName"):
            raise _sf_error(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]")
        created = self._create(obj, {**changes, field: value}, version)
        return Response(201, {**created.body, "created": True}, created.headers)

    def version_data(self, request: Request) -> Response:
        self._version(request)
        blob = self.blobs.get(request.args["id"])
        if blob is None:
            raise _sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        return Response(200, blob, {"Content-Type": "application/octet-stream"})

    def describe(self, request: Request) -> Response:
        self._version(request)
        obj = request.args["type"]
        if obj not in FIELDS:
            raise _sf_error(404, "NOT_FOUND", f"The requested resource does not exist: {obj}")
        fields = [{"name": name, "custom": False} for name in FIELDS[obj]]
        fields += [
            {"name": name, "custom": True, "label": meta.get("label"), "externalId": bool(meta.get("externalId"))}
            for name, meta in self.custom_fields[obj].items()
        ]
        return Response(200, {"name": obj, "custom": False, "fields": fields})

    def search(self, request: Request) -> Response:
        """SOSL subset: `FIND {term} IN PHONE FIELDS RETURNING Contact(fields)` (digits, any stored format)."""
        version = self._version(request)
        match = re.fullmatch(
            r"\s*FIND\s+\{([^}]*)\}\s+IN\s+PHONE\s+FIELDS\s+RETURNING\s+Contact\s*\(([^)]*)\)\s*",
            request.param("q") or "",
            re.IGNORECASE,
        )
        if match is None:
            raise _sf_error(400, "MALFORMED_SEARCH", "Only FIND {digits} IN PHONE FIELDS RETURNING Contact(...) here")
        digits = re.sub(r"\D", "", match.group(1))
        if len(digits) < 2:
            raise _sf_error(400, "MALFORMED_SEARCH", "search term must be longer than one character")
        query = Query("Contact", tuple(f.strip() for f in match.group(2).split(",") if f.strip()), (), "", (), (), None)
        self._check(query)
        found = [
            record
            for record in self.records["Contact"].values()
            if any(digits in re.sub(r"\D", "", record.get(name) or "") for name in ("Phone", "MobilePhone"))
        ]
        return Response(200, {"searchRecords": [self._shape(query, record, version) for record in found]})

    def composite(self, request: Request) -> Response:
        """Up to 25 subrequests in one call, `@{ref.id}` resolved; all or none (state restored on a failure)."""
        self._version(request)
        data = request.data if isinstance(request.data, dict) else {}
        subrequests = data.get("compositeRequest")
        if not isinstance(subrequests, list) or not 0 < len(subrequests) <= 25:
            raise _sf_error(400, "INVALID_API_INPUT", "compositeRequest: 1 to 25 subrequests")
        saved = copy.deepcopy((self.records, self.children, self.blobs, self._next_number))
        answers: list[Json] = []
        results: dict[str, Any] = {}
        failed = False
        for sub in subrequests:
            reference = str(sub.get("referenceId") or "")
            if failed:
                answers.append({"body": HALTED, "httpHeaders": {}, "httpStatusCode": 400, "referenceId": reference})
                continue
            answer = self._subrequest(sub, results, request)
            answers.append({**answer, "referenceId": reference})
            if answer["httpStatusCode"] >= 400:
                failed = bool(data.get("allOrNone"))
            elif isinstance(answer["body"], dict):
                results[reference] = answer["body"]
        if failed:
            self.records, self.children, self.blobs, self._next_number = saved
            for answer in answers:
                if answer["httpStatusCode"] < 400:
                    answer.update(body=HALTED, httpStatusCode=400, httpHeaders={})
        return Response(200, {"compositeResponse": answers})

    def _subrequest(self, sub: Json, results: dict[str, Any], request: Request) -> Json:
        def resolve(value: Any) -> Any:
            if isinstance(value, str):
                return REFERENCE_RE.sub(lambda m: str((results.get(m.group(1)) or {}).get(m.group(2), "")), value)
            if isinstance(value, dict):
                return {key: resolve(item) for key, item in value.items()}
            return value

        url = urlsplit(resolve(str(sub.get("url") or "")))
        method = str(sub.get("method") or "").upper()
        route, args = self._match(method, url.path)
        if route is None or route.handler in (SalesforceSandbox.composite, SalesforceSandbox.token):
            body = [{"errorCode": "NOT_FOUND", "message": f"The requested resource does not exist: {url.path}"}]
            return {"body": body, "httpHeaders": {}, "httpStatusCode": 404}
        sub_request = dataclasses.replace(
            request, method=method, path=url.path, query=parse_qs(url.query), data=resolve(sub.get("body")), args=args
        )
        try:
            response = route.handler(self, sub_request)
        except Reject as rejection:
            response = rejection.response
        return {"body": response.body, "httpHeaders": dict(response.headers), "httpStatusCode": response.status}

    def tooling_create_field(self, request: Request) -> Response:
        """Tooling API `POST /tooling/sobjects/CustomField` `{"FullName": "Case.X__c", "Metadata": {...}}`."""
        self._version(request)
        data = request.data if isinstance(request.data, dict) else {}
        obj, _, name = str(data.get("FullName") or "").partition(".")
        metadata = data.get("Metadata")
        if obj not in ("Case", "Contact") or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*__c", name):
            raise _sf_error(400, "INVALID_FIELD", "FullName: expected Case.Name__c or Contact.Name__c")
        if (
            not isinstance(metadata, dict)
            or metadata.get("type") not in CUSTOM_FIELD_TYPES
            or not metadata.get("label")
        ):
            raise _sf_error(
                400, "FIELD_INTEGRITY_EXCEPTION", f"Metadata: a label and a type of {sorted(CUSTOM_FIELD_TYPES)}"
            )
        if name in self.fields_of(obj):
            raise _sf_error(400, "DUPLICATE_DEVELOPER_NAME", f"There is already a field named {name[:-3]} on {obj}.")
        self.custom_fields[obj][name] = dict(metadata)
        for record in self.records[obj].values():
            record.setdefault(name, False if metadata["type"] == "Checkbox" else None)
        field_id = self._new_id("CustomField")
        return Response(201, {"id": field_id, "success": True, "errors": []})

    routes = (
        ("POST", "/services/oauth2/token", token),
        ("GET", "/services/data/", versions),
        ("GET", "/services/data/v{version}/query", query),
        ("GET", "/services/data/v{version}/query/{locator}", query_more),
        ("GET", "/services/data/v{version}/search", search),
        ("POST", "/services/data/v{version}/composite", composite),
        ("POST", "/services/data/v{version}/tooling/sobjects/CustomField", tooling_create_field),
        ("GET", "/services/data/v{version}/sobjects/{type}/describe", describe),
        ("GET", "/services/data/v{version}/sobjects/ContentVersion/{id}/VersionData", version_data),
        ("POST", "/services/data/v{version}/sobjects/{type}", create),
        ("GET", "/services/data/v{version}/sobjects/{type}/{id}", sobject),
        ("PATCH", "/services/data/v{version}/sobjects/{type}/{id}", update),
        ("PATCH", "/services/data/v{version}/sobjects/{type}/{field}/{value}", upsert),
    )

    # -- Control: seeding and token expiry -------------------------------------------------------

    def control(self, method: str, action: str, data: Any) -> Response | None:
        if (method, action) == ("POST", "logins"):
            if not isinstance(data, dict):
                raise ValueError("the body must be a JSON object")
            for key in ("username", "password", "security_token"):
                if not isinstance(data.get(key), str) or (key != "security_token" and not data[key]):
                    raise ValueError(f"{key}: must be a string (non-empty but for security_token)")
            self.logins[data["username"]] = (data["password"], data["security_token"])
            return Response(201, {"username": data["username"]})
        if (method, action) == ("POST", "backdate"):
            return self._backdate(data)
        if (method, action) == ("POST", "expire_tokens"):
            expired = len(self.tokens)
            self.tokens.clear()
            return Response(200, {"expired": expired})
        if (method, action) != ("POST", "seed"):
            return None
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return Response(200, self.seed(data))

    def _backdate(self, data: Any) -> Response:
        """`POST /__sandbox/backdate` `{"case": id, "ClosedDate"?, "LastModifiedDate"?}` (ISO 8601 times).

        Stands in for the days that pass in a real org: a case closed 9 days ago and edited by a
        flow 3 days ago, without waiting for either.
        """
        if not isinstance(data, dict) or not isinstance(data.get("case"), str):
            raise ValueError("case: must be the id of a case")
        case = self.records.get("Case", {}).get(data["case"])
        if case is None:
            raise ValueError("case: must be the id of a case")
        for key in ("ClosedDate", "LastModifiedDate"):
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"{key}: must be an ISO 8601 time")
            case[key] = sf_time(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
            if key == "LastModifiedDate":
                case["SystemModstamp"] = case[key]
        return Response(
            200, {"Id": case["Id"], "ClosedDate": case["ClosedDate"], "LastModifiedDate": case["LastModifiedDate"]}
        )

    max_seed_count = 2_000_000

    def seed_stores(self) -> Sequence[tuple[str, Callable[[Json], Any]]]:
        return (
            ("users", lambda fields: self._store("User", fields)),
            ("contacts", lambda fields: self._store("Contact", fields)),
            ("cases", lambda fields: self._store("Case", fields)),
        )

    def _store(self, obj: str, fields: Json) -> str:
        now = sf_time(time.time())
        children = {name: fields.pop(name, None) or [] for name in CHILDREN}
        record: Json = dict.fromkeys(self.fields_of(obj))
        record.update({"Id": self._new_id(obj), "CreatedDate": now, "SystemModstamp": now})
        if obj in ("User", "Contact"):
            record["IsActive"] = True if obj == "User" else None
        if obj == "User":
            record["UserType"] = "Standard"
        if obj == "Case":
            record.update({"CaseNumber": f"{len(self.records['Case']) + 1:08d}", "Status": "New", "Origin": "Phone"})
        record.update(fields)
        if obj in ("User", "Contact"):
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
        if obj == "Case":
            record["IsClosed"] = record["Status"] in CLOSED_STATUSES
            record["LastModifiedDate"] = record.get("LastModifiedDate") or record["SystemModstamp"]
        self.records[obj][record["Id"]] = record
        for name, items in children.items():
            child_obj, link = CHILDREN[name]
            for item in items:
                child: Json = dict.fromkeys(FIELDS[child_obj])
                child.update({"Id": self._new_id(child_obj), "CreatedDate": record["CreatedDate"], link: record["Id"]})
                child.update(item)
                self.records[child_obj][child["Id"]] = child
                self.children[child_obj].setdefault(record["Id"], []).append(child)
        return str(record["Id"])

    def generate(self, count: int, rng: random.Random) -> Json:
        """A reproducible org: agents (a few not importable), contacts, and `count` cases over 95 days."""
        words = SEED_WORDS
        users: list[Json] = [
            {"FirstName": f"Agent{n}", "LastName": "Seeded", "Email": f"sfagent{n}@seed.example.com"} for n in range(20)
        ]
        users += [
            {
                "FirstName": "Portal",
                "LastName": "Customer",
                "Email": "portal@seed.example.net",
                "UserType": "PowerCustomerSuccess",
            },
            {"FirstName": "", "LastName": "Lastonly", "Email": "lastonly@seed.example.com"},
        ]
        contacts = [
            {
                "FirstName": "Contact",
                "LastName": str(n),
                "Email": f"contact{n}@seed.example.net",
                "Phone": f"+1415{rng.randrange(10**7):07d}",
            }
            for n in range(max(1, min(count, 5000)))
        ]
        first_user, first_contact = self._peek_ids("User", len(users)), self._peek_ids("Contact", len(contacts))
        agents = first_user[:20]
        now = time.time()
        cases = []
        for _ in range(count):
            created = now - rng.uniform(0, 95 * 86400)
            modified = min(now - 1, created + rng.uniform(0, 3 * 86400))
            status = rng.choices(("Closed", "New", "Working", "Escalated"), (75, 10, 10, 5))[0]
            origin = rng.choice(ORIGINS)
            text = " ".join(rng.choices(words, k=6))
            owner = rng.choice(agents) if rng.random() < 0.95 else QUEUE_ID
            case: Json = {
                "Subject": f"{rng.choice(words).capitalize()} {rng.choice(words)} issue",
                "Description": f"Customer wrote about {text}",
                "Status": status,
                "Origin": origin,
                "OwnerId": owner,
                "ContactId": rng.choice(first_contact),
                "CreatedDate": sf_time(created),
                "SystemModstamp": sf_time(modified),
                "ClosedDate": sf_time(modified) if status in CLOSED_STATUSES else None,
                "CaseComments": [
                    {
                        "CommentBody": f"Agent note: {' '.join(rng.choices(words, k=8))}",
                        "CreatedById": rng.choice(agents),
                        "IsPublished": False,
                        "CreatedDate": sf_time(modified),
                    },
                ],
            }
            if origin == "Chat":
                case["LiveChatTranscripts"] = [{"Body": f"Visitor: {text}. Agent: I can help with that."}]
            if origin == "Email":
                case["EmailMessages"] = [
                    {
                        "TextBody": f"Hello, {text}",
                        "FromAddress": "customer@seed.example.net",
                        "Incoming": True,
                        "MessageDate": sf_time(created),
                    },
                    {
                        "TextBody": f"Thanks for writing: {' '.join(rng.choices(words, k=6))}",
                        "FromAddress": "support@seed.example.com",
                        "Incoming": False,
                        "MessageDate": sf_time(modified),
                        "CreatedById": rng.choice(agents),
                    },
                ]
            cases.append(case)
        return {"users": users, "contacts": contacts, "cases": cases}

    def _peek_ids(self, obj: str, n: int) -> list[str]:
        """The ids the next `n` records of `obj` will get (the counter is not advanced)."""
        start = self._next_number[obj]
        return [f"{ID_PREFIXES[obj]}{start + i:012d}AAA" for i in range(n)]
