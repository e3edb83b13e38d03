"""Salesforce REST API (shapes: shared/crm-api-shapes.md §3): OAuth token, SOQL import of users and cases.

So far the provider serves ticket import for QA search (SPEC T1-T2) and the connection test. The
record-writing methods of CrmProvider that the Salesforce record flow does not use yet raise
CrmUnsupported before any request is sent, so a misconfigured flow fails visibly, not silently.
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from integrations.exceptions import CrmAuthError, CrmRequestError, CrmUnsupported
from integrations.http import CrmHttpClient, RateGate, error_summary
from integrations.providers.base import (
    Agent,
    Comment,
    ConnectionSettings,
    Contact,
    CrmProvider,
    CustomFieldSpec,
    NewRecord,
    Record,
    RecordChanges,
)
from integrations.providers.importing import (
    OTHER_CHANNEL,
    ImportedComment,
    ImportedTicket,
    ImportedUser,
    ImportPage,
    TicketImportSource,
)
from integrations.urlguard import base_url_problem, loopback_allowed

DEFAULT_API_VERSION = "60.0"
TOKEN_PATH = "services/oauth2/token"
# The access token expired or was revoked (401): log in again, once.
INVALID_SESSION = "INVALID_SESSION_ID"
# Salesforce user ids start with 005; a case owned by anything else (00G: a queue) has no agent.
USER_ID_PREFIX = "005"

USER_FIELDS = "Id, FirstName, LastName, Email, IsActive, UserType, SystemModstamp"
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


def _start(cursor: str | None, since: datetime) -> str:
    """Where an incremental query starts: the stored cursor (re-formatted, so only a datetime reaches the SOQL)."""
    try:
        parsed = _time(cursor) if cursor else None
    except ValueError:
        parsed = None
    return soql_datetime(parsed or since)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


class SalesforceClient(CrmHttpClient):
    """Bearer auth with a token from the OAuth endpoint; data calls go to the token's `instance_url`.

    The password flow is used when the connection has a username, client credentials otherwise
    (crm-api-shapes.md §3.1); it sends the password with the security token (its own encrypted
    setting) appended, as Salesforce requires. A 401 INVALID_SESSION_ID logs in again and repeats
    the call once.
    """

    def __init__(self, settings: ConnectionSettings, rate_gate: RateGate | None) -> None:
        super().__init__(
            settings.base_url,
            timeout=settings.timeout,
            rate_gate=rate_gate,
            rate_limit_per_minute=settings.rate_limit_per_minute,
            work_class=settings.work_class,
        )
        self.settings = settings
        self.api_version = str(settings.config.get("api_version") or DEFAULT_API_VERSION)
        # The login endpoint takes no bearer token, so it has a client of its own (same error mapping).
        self._login_client = CrmHttpClient(settings.base_url, timeout=settings.timeout)
        self._access_token: str | None = None

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

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: bytes | dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        if self._access_token is None:
            self.login()
        arguments: dict[str, Any] = {"params": params, "json": json, "data": data, "files": files, "headers": headers}
        try:
            return super().request(method, path, **arguments)
        except CrmAuthError as exc:
            if exc.code != INVALID_SESSION:
                raise
        self.login()
        return super().request(method, path, **arguments)

    def data_path(self, resource: str) -> str:
        return f"services/data/v{self.api_version}/{resource}"

    def query_pages(self, soql: str) -> Iterator[dict[str, Any]]:
        """Each page of a SOQL query's answer, following `nextRecordsUrl` until `done`."""
        body = self.get(self.data_path("query"), params={"q": soql})
        yield body
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            body = self.get(body["nextRecordsUrl"])
            yield body


class SalesforceProvider(CrmProvider, TicketImportSource):
    kind = "salesforce"
    record_web_path = "{base}/lightning/r/Case/{id}/view"
    contact_web_path = "{base}/lightning/r/Contact/{id}/view"
    open_statuses: ClassVar[frozenset[str]] = frozenset({"New", "Working", "Escalated"})
    default_open_status = "New"

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

    def _not_yet(self, operation: str) -> CrmUnsupported:
        return CrmUnsupported(f"Salesforce: {operation} is not supported by this provider yet")

    def find_contacts(
        self, *, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> list[Contact]:
        raise self._not_yet("find_contacts")

    def create_contact(
        self, *, name: str, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> Contact:
        raise self._not_yet("create_contact")

    def list_contact_records(self, contact_id: str) -> list[Record]:
        raise self._not_yet("list_contact_records")

    def ensure_custom_fields(self, specs: Sequence[CustomFieldSpec]) -> dict[str, str]:
        raise self._not_yet("ensure_custom_fields")

    def existing_custom_fields(self) -> frozenset[str]:
        raise self._not_yet("existing_custom_fields")

    def find_records_by_external_id(self, external_id: str) -> list[Record]:
        raise self._not_yet("find_records_by_external_id")

    def create_record(self, record: NewRecord) -> Record:
        raise self._not_yet("create_record")

    def get_record(self, record_id: str) -> Record:
        raise self._not_yet("get_record")

    def update_record(self, record_id: str, changes: RecordChanges) -> Record:
        raise self._not_yet("update_record")

    def list_comments(self, record_id: str) -> list[Comment]:
        raise self._not_yet("list_comments")

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
        comments = sorted(
            [
                *(_imported_comment(comment) for comment in _sub_records(case.get("CaseComments"))),
                *(_imported_email(email, case) for email in _sub_records(case.get("EmailMessages"))),
            ],
            key=lambda comment: comment.created_at or updated_at,
        )
        instance = self.client.base_url.rstrip("/")
        return ImportedTicket(
            crm_id=case["Id"],
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
            web_url=f"{instance}/lightning/r/Case/{quote(case['Id'])}/view",
            comments=tuple(comments),
            transcripts=tuple(t["Body"] for t in _sub_records(case.get("LiveChatTranscripts")) if t.get("Body")),
        )


def _sub_records(value: Any) -> list[dict[str, Any]]:
    """A relationship sub-query's records (`{totalSize, done, records}`, or null when there are none)."""
    return list(value.get("records") or ()) if isinstance(value, dict) else []


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
