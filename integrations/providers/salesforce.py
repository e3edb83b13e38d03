"""Salesforce REST API (shapes: shared/crm-api-shapes.md §3): OAuth, records on Case, SOQL import.

Records are Cases; the first comment is the case's Description, later ones unpublished
CaseComments, files ContentVersions published to the case. The session id is kept in an
External ID field on Case, so a create is an upsert (`PATCH /sobjects/Case/<field>/<session id>`)
and a retried create cannot make a second case. Contacts are found with SOSL over the phone
fields (any stored format), then matched on E.164. Custom fields (F1) are made through the
Tooling API. Salesforce's limit is a rolling 24 h allocation: `Sforce-Limit-Info` on every answer
closes the shared rate gate before the org runs out, and 403 REQUEST_LIMIT_EXCEEDED is a rate limit.
"""

import base64
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from integrations.exceptions import (
    CrmAuthError,
    CrmNotFound,
    CrmRateLimited,
    CrmRequestError,
    CrmTransientError,
)
from integrations.http import RATE_LIMIT_ERROR_CODES, CrmHttpClient, Files, RateGate, error_summary
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
from integrations.urlguard import base_url_problem, loopback_allowed

DEFAULT_API_VERSION = "60.0"
TOKEN_PATH = "services/oauth2/token"
# The access token expired or was revoked (401): log in again, once.
INVALID_SESSION = "INVALID_SESSION_ID"
# Salesforce user ids start with 005; a case owned by anything else (00G: a queue) has no agent.
USER_ID_PREFIX = "005"

USER_FIELDS = "Id, FirstName, LastName, Email, IsActive, UserType, SystemModstamp"
# The External ID fields (Text, unique) the product keeps the session id on Case, and the app
# user id on Contact, in; "Create custom fields" makes them when the org lacks them.
DEFAULT_CASE_EXTERNAL_ID_FIELD = "CRM_Bridge_Session_Id__c"
DEFAULT_CONTACT_EXTERNAL_ID_FIELD = "CRM_Bridge_User_Id__c"
CONTACT_FIELDS = "Id, Name, Phone, MobilePhone, Email, CreatedDate"
RECORD_FIELDS = "Id, Subject, Status, IsClosed, OwnerId, ContactId, CreatedDate, LastModifiedDate, ClosedDate"
# Stop using the org's daily allocation when this share of it is left (other integrations need some).
LIMIT_RESERVE_SHARE = 0.02
LIMIT_INFO_RE = re.compile(r"api-usage=(\d+)/(\d+)")
# Salesforce's custom field type (Tooling API Metadata `type`) for each product field type.
FIELD_TYPES: dict[CustomFieldType, dict[str, Any]] = {
    CustomFieldType.TEXT: {"type": "Text", "length": 255},
    CustomFieldType.INTEGER: {"type": "Number", "precision": 18, "scale": 0},
    CustomFieldType.DECIMAL: {"type": "Number", "precision": 18, "scale": 2},
    CustomFieldType.BOOLEAN: {"type": "Checkbox", "defaultValue": "false"},
}
CASE_FIELDS = (
    "Id, CaseNumber, Subject, Description, Status, IsClosed, Origin, OwnerId, ContactId, "
    "Contact.Name, Contact.Email, Contact.Phone, SuppliedName, SuppliedEmail, SuppliedPhone, "
    "CreatedDate, ClosedDate, SystemModstamp, "
    "(SELECT Id, CommentBody, CreatedById, CreatedDate, IsPublished FROM CaseComments), "
    "(SELECT Id, Body FROM LiveChatTranscripts), "
    "(SELECT Id, TextBody, FromAddress, Incoming, MessageDate, CreatedById FROM EmailMessages)"
)
# Case.Origin picklist values (lower case) and the QA channels (SPEC T5) they are filed under.
ORIGIN_CHANNELS = {
    "email": "email",
    "phone": "voice",
    "voice": "voice",
    "chat": "chat",
    "facebook": "facebook",
    "forum": "forum",
    "messaging": "in_app_messaging",
    "in-app messaging": "in_app_messaging",
    "slack": "slack",
    "sms": "sms",
    "whatsapp": "whatsapp",
    "telegram": "telegram",
    "viber": "viber",
    "apple messages for business": "apple_messages_for_business",
    "microsoft teams": "microsoft_teams",
}


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_string(value: str) -> str:
    """A quoted SOQL string literal: backslashes and quotes escaped as SOQL requires."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def field_api_name(spec: CustomFieldSpec) -> str:
    """The Case custom field for a product field: `call_duration` -> `Call_Duration__c`."""
    words = [word for word in re.split(r"[^A-Za-z0-9]+", spec.key) if word]
    return "_".join(word[:1].upper() + word[1:] for word in words) + "__c"


def _start(cursor: str | None, since: datetime) -> str:
    """Where an incremental query starts: the stored cursor (re-formatted, so only a datetime reaches the SOQL)."""
    try:
        parsed = _time(cursor) if cursor else None
    except ValueError:
        parsed = None
    return soql_datetime(parsed or since)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


class SalesforceClient(ConnectionClient):
    """Bearer auth with a token from the OAuth endpoint; data calls go to the token's `instance_url`.

    The password flow is used when the connection has a username, client credentials otherwise
    (crm-api-shapes.md §3.1); it sends the password with the security token (its own encrypted
    setting) appended, as Salesforce requires. A 401 INVALID_SESSION_ID logs in again and repeats
    the call once.
    """

    def __init__(self, settings: ConnectionSettings, rate_gate: RateGate | None) -> None:
        super().__init__(settings, rate_gate)
        self.settings = settings
        self.api_version = str(settings.config.get("api_version") or DEFAULT_API_VERSION)
        # The login endpoint takes no bearer token, so it has a client of its own (same error mapping).
        self._login_client = CrmHttpClient(settings.base_url, timeout=settings.timeout)
        self._access_token: str | None = None
        self.limit_retry_after = self._login_client.limit_retry_after = settings.limit_exceeded_retry_seconds

    def login(self) -> None:
        """Get an access token and the instance URL the data calls go to."""
        config, secrets = self.settings.config, self.settings.secrets
        form = {"client_id": str(config.get("client_id", "")), "client_secret": str(secrets.get("client_secret", ""))}
        if config.get("username"):
            form |= {"grant_type": "password", "username": str(config["username"])}
            # Salesforce wants the user's security token appended to the password, unless the login
            # comes from one of the org's trusted IP ranges (then the token is left blank).
            form["password"] = str(secrets.get("password", "")) + str(secrets.get("security_token", ""))
        else:
            form["grant_type"] = "client_credentials"
        try:
            body = self._login_client.request("POST", TOKEN_PATH, data=form)
        except CrmRequestError as exc:
            # 400 invalid_grant / invalid_client: the credentials are wrong, not the request.
            raise CrmAuthError(f"Salesforce login failed: {error_summary(exc.body)}", code="invalid_grant") from exc
        if not isinstance(body, dict) or not body.get("access_token") or not body.get("instance_url"):
            raise CrmAuthError("Salesforce login answered without access_token and instance_url")
        # The data calls carry the token to this URL, and it comes from the CRM's answer.
        if problem := base_url_problem(str(body["instance_url"]), allow_loopback=loopback_allowed()):
            raise CrmAuthError(f"Salesforce login answered an instance_url that is refused: {problem}")
        self._access_token = str(body["access_token"])
        self.base_url = str(body["instance_url"]).rstrip("/") + "/"

    def authorize(self, request: requests.PreparedRequest) -> None:
        request.headers["Authorization"] = f"Bearer {self._access_token}"

    def observe(self, response: requests.Response) -> None:
        # `api-usage=N/LIMIT`: close the shared gate while the org's 24 h allocation is nearly spent.
        match = LIMIT_INFO_RE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match is None or self.rate_gate is None:
            return
        used, limit = int(match.group(1)), int(match.group(2))
        if limit and limit - used <= limit * LIMIT_RESERVE_SHARE:
            self.rate_gate.close_for(self.base_url, self.limit_retry_after)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: bytes | dict[str, str] | None = None,
        files: Files | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        if self._access_token is None:
            self.login()
        arguments: dict[str, Any] = {"params": params, "json": json, "data": data, "files": files, "headers": headers}
        arguments["idempotent"] = idempotent
        try:
            return super().request(method, path, **arguments)
        except CrmAuthError as exc:
            if exc.code != INVALID_SESSION:
                raise
        self.login()
        return super().request(method, path, **arguments)

    def data_path(self, resource: str) -> str:
        return f"services/data/v{self.api_version}/{resource}"

    def composite(self, subrequests: list[dict[str, Any]]) -> list[Any]:
        """Several calls in one (`/composite`, all or none); each answer's body, or the first failure raised.

        A failed subrequest is mapped as integrations.http maps a single answer; the others report
        PROCESSING_HALTED, which says nothing of their own.
        """
        for subrequest in subrequests:
            subrequest["url"] = "/" + self.data_path(subrequest["url"])
        body = self.post(self.data_path("composite"), json={"allOrNone": True, "compositeRequest": subrequests})
        answers = body.get("compositeResponse") or []
        failures = [answer for answer in answers if int(answer.get("httpStatusCode") or 500) >= 400]
        if failures:
            real = [f for f in failures if _error_code(f.get("body")) != "PROCESSING_HALTED"] or failures
            raise _composite_error(real[0], self.limit_retry_after)
        return [answer.get("body") for answer in answers]

    def query_pages(self, soql: str) -> Iterator[dict[str, Any]]:
        """Each page of a SOQL query's answer, following `nextRecordsUrl` until `done`."""
        body = self.get(self.data_path("query"), params={"q": soql})
        yield body
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            body = self.get(body["nextRecordsUrl"])
            yield body


def _error_code(body: Any) -> str | None:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode") or "") or None
    return None


def _composite_error(answer: dict[str, Any], limit_retry_after: float) -> Exception:
    status, body = int(answer.get("httpStatusCode") or 500), answer.get("body")
    code = _error_code(body)
    message = f"composite {answer.get('referenceId')}: {status} {body}"
    if code in RATE_LIMIT_ERROR_CODES:
        return CrmRateLimited(message, retry_after=limit_retry_after)
    if status >= 500:
        return CrmTransientError(message)
    if status in (401, 403):
        return CrmAuthError(message, code=code)
    if status == 404:
        return CrmNotFound(message, status_code=status, body=body)
    return CrmRequestError(message, status_code=status, body=body)


class SalesforceProvider(CrmProvider, TicketImportSource):
    kind = "salesforce"
    # The case query's sub-queries bring comments, emails and transcripts: its pages can be read ahead.
    pages_read_ahead = True
    base_url_help = (
        "the login URL (https://login.salesforce.com, https://test.salesforce.com for a sandbox org, or "
        "your My Domain); data calls go to the instance URL the login answers"
    )
    settings_spec = (
        SettingSpec("client_id", "Consumer key", "The connected app's consumer key (client id)."),
        SettingSpec("client_secret", "Consumer secret", "The connected app's consumer secret.", secret=True),
        SettingSpec(
            "username",
            "Username",
            "The integration user's username, for the username-password flow. "
            "Blank: the client-credentials flow (the connected app's run-as user).",
            required=False,
        ),
        SettingSpec(
            "password",
            "Password",
            "The integration user's password, without the security token.",
            secret=True,
            required=False,
            required_with="username",
        ),
        SettingSpec(
            "security_token",
            "Security token",
            "The integration user's security token (Salesforce emails it; reset it under Settings > Reset My "
            "Security Token). Appended to the password at login, as Salesforce requires unless the login comes "
            "from one of the org's trusted IP ranges.",
            secret=True,
            required=False,
        ),
        SettingSpec(
            "case_external_id_field",
            "Case external-id field",
            f"Text, External ID, unique; the session id goes here. Blank: {DEFAULT_CASE_EXTERNAL_ID_FIELD}.",
            required=False,
        ),
    )
    # No tags on Case (R8 applies to the other CRMs), no user statuses over REST.
    capabilities = frozenset({Capability.RECORDS, Capability.CUSTOM_FIELDS, Capability.TICKET_IMPORT})
    # The default picklist's open values; any status whose IsClosed is false counts as open too.
    record_web_path = "{base}/lightning/r/Case/{id}/view"
    contact_web_path = "{base}/lightning/r/Contact/{id}/view"
    open_statuses: ClassVar[frozenset[str]] = frozenset({"New", "Working", "Escalated"})
    default_open_status = "New"
    resolved_status = "Closed"

    def __init__(self, settings: ConnectionSettings, *, rate_gate: RateGate | None = None) -> None:
        super().__init__(settings, rate_gate=rate_gate)
        self.client = SalesforceClient(self.settings, self.rate_gate)

    def test_connection(self) -> None:
        next(self.client.query_pages("SELECT Id FROM User LIMIT 1"))

    def find_agent(self, *, email: str) -> Agent | None:
        # Literals are escaped by soql_string; SOQL has no bind parameters over REST.
        soql = f"SELECT {USER_FIELDS} FROM User WHERE Email = {soql_string(email)} AND UserType = 'Standard'"  # noqa: S608
        for page in self.client.query_pages(soql):
            for user in page["records"]:
                name = " ".join(part for part in (user.get("FirstName"), user.get("LastName")) if part)
                return Agent(id=user["Id"], email=user["Email"], name=name)
        return None

    def session_type_tag(self, session_type_name: str) -> str:
        # Cases have no tags; the session type is kept as it is named, like Freshdesk (R8).
        return session_type_name

    # -- Records ------------------------------------------------------------------------------------

    @property
    def case_external_id_field(self) -> str:
        return str(self.settings.config.get("case_external_id_field") or DEFAULT_CASE_EXTERNAL_ID_FIELD)

    @property
    def contact_external_id_field(self) -> str:
        return str(self.settings.config.get("contact_external_id_field") or DEFAULT_CONTACT_EXTERNAL_ID_FIELD)

    def _query(self, soql: str) -> list[dict[str, Any]]:
        return [record for page in self.client.query_pages(soql) for record in page["records"]]

    def _contact(self, record: dict[str, Any]) -> Contact:
        return Contact(
            id=record["Id"],
            name=record.get("Name") or "",
            phone=record.get("Phone") or record.get("MobilePhone"),
            email=record.get("Email"),
            created_at=record.get("CreatedDate"),
            external_id=record.get(self.contact_external_id_field),
        )

    def find_contacts(
        self, *, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> list[Contact]:
        fields = f"{CONTACT_FIELDS}, {self.contact_external_id_field}"
        if external_id:
            where = f"{self.contact_external_id_field} = {soql_string(external_id)}"
            found = self._query(f"SELECT {fields} FROM Contact WHERE {where}")  # noqa: S608
        elif email:
            found = self._query(f"SELECT {fields} FROM Contact WHERE Email = {soql_string(email)}")  # noqa: S608
        elif phone:
            # SOSL matches phone fields whatever their format; the stored numbers are then compared in E.164.
            sosl = f"FIND {{{national_number(phone)}}} IN PHONE FIELDS RETURNING Contact({fields})"
            body = self.client.get(self.client.data_path("search"), params={"q": sosl})
            records = body.get("searchRecords") or [] if isinstance(body, dict) else body or []
            # Only the caller's number, exact ones first, newest first within each (one phone matcher).
            return rank_contacts(
                (best_match((item.get("Phone"), item.get("MobilePhone")), phone), self._contact(item))
                for item in records
            )
        else:
            return []
        contacts = [self._contact(record) for record in found]
        return sorted(contacts, key=lambda contact: contact.created_at or "", reverse=True)

    def create_contact(
        self, *, name: str, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> Contact:
        # LastName is Contact's one required name field.
        first, _, last = name.strip().rpartition(" ")
        contact: dict[str, Any] = {"LastName": last or name or "Unknown"}
        if first:
            contact["FirstName"] = first
        if phone:
            contact["Phone"] = phone
        if email:
            contact["Email"] = email
        if external_id:
            contact[self.contact_external_id_field] = external_id
        created = self.client.post(self.client.data_path("sobjects/Contact"), json=contact)
        return Contact(id=str(created["id"]), name=name, phone=phone, email=email, external_id=external_id)

    def _record(self, case: dict[str, Any]) -> Record:
        owner = case.get("OwnerId") or ""
        return Record(
            id=case["Id"],
            subject=case.get("Subject") or "",
            status=case.get("Status") or "",
            external_id=case.get(self.case_external_id_field),
            requester_id=case.get("ContactId"),
            assignee_id=owner if owner.startswith(USER_ID_PREFIX) else None,
            url=f"{self.client.base_url.rstrip('/')}/lightning/r/Case/{quote(case['Id'])}/view",
            created_at=case.get("CreatedDate"),
            updated_at=case.get("LastModifiedDate"),
            # When the case was closed (R2 counts from there, not from a later edit); None while open.
            closed_at=case.get("ClosedDate") if case.get("IsClosed") else None,
            custom_fields={key: value for key, value in case.items() if key.endswith("__c")},
            is_closed=bool(case.get("IsClosed")),
        )

    def _case_fields(self) -> str:
        return f"{RECORD_FIELDS}, {self.case_external_id_field}"

    def find_records_by_external_id(self, external_id: str) -> list[Record]:
        where = f"{self.case_external_id_field} = {soql_string(external_id)}"
        return [self._record(case) for case in self._query(f"SELECT {self._case_fields()} FROM Case WHERE {where}")]  # noqa: S608

    def list_contact_records(self, contact_id: str) -> list[Record]:
        soql = (
            f"SELECT {self._case_fields()} FROM Case WHERE ContactId = {soql_string(contact_id)} "  # noqa: S608
            "ORDER BY LastModifiedDate DESC"
        )
        return [self._record(case) for case in self._query(soql)]

    def create_record(self, record: NewRecord) -> Record:
        """Upsert the case by its external id (the session id), the first comment as its Description.

        One call: a retry after a lost answer updates the case it made instead of making another.
        """
        case: dict[str, Any] = {
            "Subject": record.subject[:255],
            "Description": record.first_comment.body,
            "ContactId": record.requester_id,
            "Status": record.status or self.default_open_status,
            "Origin": "Phone",
            **dict(record.custom_fields),
        }
        if record.assignee_id:
            case["OwnerId"] = record.assignee_id
        path = self.client.data_path(
            f"sobjects/Case/{self.case_external_id_field}/{quote(record.external_id, safe='')}"
        )
        saved = self.client.patch(path, json=case)
        if record.first_comment.attachments:
            self._add_files(str(saved["id"]), record.first_comment.attachments)
        return self.get_record(str(saved["id"]))

    def get_record(self, record_id: str) -> Record:
        return self._record(self.client.get(self.client.data_path(f"sobjects/Case/{quote(record_id, safe='')}")))

    def update_record(self, record_id: str, changes: RecordChanges) -> Record:
        """Fields, the comment and its files, and the read-back in one composite call."""
        fields: dict[str, Any] = {**dict(changes.extra), **dict(changes.custom_fields)}
        if changes.status:
            fields["Status"] = changes.status
        if changes.assignee_id:
            fields["OwnerId"] = changes.assignee_id
        case_url = f"sobjects/Case/{quote(record_id, safe='')}"
        subrequests: list[dict[str, Any]] = []
        if fields:
            subrequests.append({"method": "PATCH", "url": case_url, "referenceId": "case", "body": fields})
        if changes.comment:
            subrequests += self._comment_subrequests(record_id, changes.comment)
        subrequests.append({"method": "GET", "url": case_url, "referenceId": "read"})
        return self._record(self.client.composite(subrequests)[-1])

    def _comment_subrequests(self, record_id: str, comment: Comment) -> list[dict[str, Any]]:
        # IsPublished false: an internal entry, not shown to the customer in a portal.
        subrequests: list[dict[str, Any]] = [
            {
                "method": "POST",
                "url": "sobjects/CaseComment",
                "referenceId": "comment",
                "body": {"ParentId": record_id, "CommentBody": comment.body, "IsPublished": comment.public},
            }
        ]
        for number, attachment in enumerate(comment.attachments):
            subrequests.append(
                {
                    "method": "POST",
                    "url": "sobjects/ContentVersion",
                    "referenceId": f"file{number}",
                    "body": _file(record_id, attachment),
                }
            )
        return subrequests

    def _add_files(self, record_id: str, attachments: Sequence[Attachment]) -> None:
        for attachment in attachments:
            self.client.post(self.client.data_path("sobjects/ContentVersion"), json=_file(record_id, attachment))

    def add_comment(self, record_id: str, comment: Comment) -> Record:
        self.client.composite(self._comment_subrequests(record_id, comment))
        return self.get_record(record_id)

    def list_comments(self, record_id: str) -> list[Comment]:
        soql = (
            "SELECT Description, (SELECT CommentBody, IsPublished, CreatedDate FROM CaseComments "  # noqa: S608
            f"ORDER BY CreatedDate) FROM Case WHERE Id = {soql_string(record_id)}"
        )
        cases = self._query(soql)
        if not cases:
            raise CrmNotFound(f"Salesforce case {record_id} not found", status_code=404)
        comments = [Comment(body=cases[0]["Description"])] if cases[0].get("Description") else []
        comments += [
            Comment(body=item.get("CommentBody") or "", public=bool(item.get("IsPublished")))
            for item in _sub_records(cases[0].get("CaseComments"))
        ]
        return comments

    def is_open(self, record: Record) -> bool:
        # R1: any status whose IsClosed is false is open, whatever the org named it.
        return not record.is_closed if record.is_closed is not None else super().is_open(record)

    # -- Custom fields (F1, Tooling API) -------------------------------------------------------------

    def ensure_custom_fields(self, specs: Sequence[CustomFieldSpec]) -> dict[str, str]:
        existing = self.existing_custom_fields()
        ids: dict[str, str] = {}
        for spec in specs:
            name = field_api_name(spec)
            if name not in existing:
                metadata = {**FIELD_TYPES[spec.type], "description": f"CRM Bridge: {spec.key}"}
                self._create_field("Case", name, spec.title, metadata)
            ids[spec.key] = name
        # The External ID fields every record create upserts on, and app users are found by (S16).
        identity = {"type": "Text", "length": 255, "externalId": True, "unique": True, "caseSensitive": True}
        if self.case_external_id_field not in existing:
            self._create_field("Case", self.case_external_id_field, "CRM Bridge session id", identity)
        if self.contact_external_id_field not in self._custom_fields("Contact"):
            self._create_field("Contact", self.contact_external_id_field, "CRM Bridge user id", identity)
        return ids

    def _create_field(self, obj: str, api_name: str, label: str, metadata: dict[str, Any]) -> None:
        body = {"FullName": f"{obj}.{api_name}", "Metadata": {"label": label, **metadata}}
        self.client.post(self.client.data_path("tooling/sobjects/CustomField"), json=body)

    def _custom_fields(self, obj: str) -> frozenset[str]:
        described = self.client.get(self.client.data_path(f"sobjects/{obj}/describe"))
        return frozenset(str(field["name"]) for field in described.get("fields") or () if field.get("custom"))

    def existing_custom_fields(self) -> frozenset[str]:
        return self._custom_fields("Case")

    # -- Import (SOQL over User and Case, paged with nextRecordsUrl) ------------------------------
    #
    # The cursor is the SystemModstamp of the last record saved. The next run asks for `>=` it:
    # a record changed in that same second after the query ran is not missed, and the few read
    # twice are upserted to the same row.

    def iter_users(self, *, cursor: str | None, since: datetime) -> Iterator[ImportPage[ImportedUser]]:
        start = _start(cursor, since)
        soql = f"SELECT {USER_FIELDS} FROM User WHERE SystemModstamp >= {start} ORDER BY SystemModstamp, Id"  # noqa: S608
        for page in self.client.query_pages(soql):
            users = [_imported_user(user) for user in page["records"]]
            start = _last_modstamp(page["records"], start)
            yield ImportPage(items=users, cursor=start, total=page.get("totalSize"))

    def iter_tickets(self, *, cursor: str | None, since: datetime) -> Iterator[ImportPage[ImportedTicket]]:
        start = _start(cursor, since)
        soql = f"SELECT {CASE_FIELDS} FROM Case WHERE SystemModstamp >= {start} ORDER BY SystemModstamp, Id"  # noqa: S608
        for page in self.client.query_pages(soql):
            tickets = [self._imported_ticket(case) for case in page["records"]]
            start = _last_modstamp(page["records"], start)
            yield ImportPage(items=tickets, cursor=start, total=page.get("totalSize"))

    def load_comments(self, tickets: list[ImportedTicket]) -> list[ImportedTicket]:
        # The case query's sub-queries already brought the comments and transcripts.
        return tickets

    def _imported_ticket(self, case: dict[str, Any]) -> ImportedTicket:
        contact = case.get("Contact") or {}
        owner = case.get("OwnerId") or ""
        updated_at = _time(case.get("SystemModstamp")) or datetime.now(UTC)
        comments = [_imported_comment(comment) for comment in _sub_records(case.get("CaseComments"))]
        comments += [_imported_email(email, case) for email in _sub_records(case.get("EmailMessages"))]
        if len(comments) > 1:
            comments.sort(key=lambda comment: comment.created_at or updated_at)
        instance = self.client.base_url.rstrip("/")
        case_id = case["Id"]
        return ImportedTicket(
            crm_id=case_id,
            subject=case.get("Subject") or "",
            description=case.get("Description") or "",
            status=case.get("Status") or "",
            is_solved=bool(case.get("IsClosed")),
            channel=ORIGIN_CHANNELS.get((case.get("Origin") or "").lower(), OTHER_CHANNEL),
            assignee_id=owner if owner.startswith(USER_ID_PREFIX) else None,
            requester_id=case.get("ContactId"),
            requester_name=contact.get("Name") or case.get("SuppliedName") or "",
            requester_email=contact.get("Email") or case.get("SuppliedEmail"),
            requester_phone=contact.get("Phone") or case.get("SuppliedPhone"),
            tags=(),
            created_at=_time(case.get("CreatedDate")) or updated_at,
            updated_at=updated_at,
            solved_at=_time(case.get("ClosedDate")),
            # Record ids are letters and digits; quote() only for anything else (four times slower).
            web_url=f"{instance}/lightning/r/Case/{case_id if case_id.isalnum() else quote(case_id)}/view",
            comments=tuple(comments),
            transcripts=tuple(t["Body"] for t in _sub_records(case.get("LiveChatTranscripts")) if t.get("Body")),
        )


def _file(record_id: str, attachment: Attachment) -> dict[str, Any]:
    """A ContentVersion published to the case (its Files list); the bytes go base64-encoded."""
    return {
        "Title": attachment.filename,
        "PathOnClient": attachment.filename,
        "VersionData": base64.b64encode(attachment.content).decode(),
        "FirstPublishLocationId": record_id,
    }


def _sub_records(value: Any) -> list[dict[str, Any]]:
    """A relationship sub-query's records (`{totalSize, done, records}`, or null when there are none)."""
    return (value.get("records") or []) if isinstance(value, dict) else []


def _last_modstamp(records: list[dict[str, Any]], default: str) -> str:
    if not records:
        return default
    stamp = _time(records[-1].get("SystemModstamp"))
    return soql_datetime(stamp) if stamp else default


def _imported_user(user: dict[str, Any]) -> ImportedUser:
    return ImportedUser(
        crm_id=user["Id"],
        first_name=(user.get("FirstName") or "").strip(),
        last_name=(user.get("LastName") or "").strip(),
        email=user.get("Email") or None,
        is_active=bool(user.get("IsActive")),
        # Standard users hold Salesforce licences: the agents. Portal and guest users are customers.
        is_agent=user.get("UserType") == "Standard",
        updated_at=_time(user.get("SystemModstamp")),
    )


def _imported_email(email: dict[str, Any], case: dict[str, Any]) -> ImportedComment:
    """An email on the case: written by the case's contact when incoming, else by the user who sent it."""
    author = case.get("ContactId") if email.get("Incoming") else email.get("CreatedById")
    return ImportedComment(
        crm_id=email["Id"],
        author_id=author or None,
        body=email.get("TextBody") or "",
        public=True,
        created_at=_time(email.get("MessageDate")),
    )


def _imported_comment(comment: dict[str, Any]) -> ImportedComment:
    return ImportedComment(
        crm_id=comment["Id"],
        author_id=comment.get("CreatedById") or None,
        body=comment.get("CommentBody") or "",
        public=bool(comment.get("IsPublished")),
        created_at=_time(comment.get("CreatedDate")),
    )
