"""One QA-import data set, seeded into each sandbox CRM in that CRM's own shapes (SPEC T1-T2).

Every CRM gets the same people and tickets, so each import rule is tested on all four:

- agents: Zoe Quality (importable), Mononym (one name), "zed@example.com Smith" (an email as a
  name) and, where the CRM allows one, an agent without email; a customer, Dana Whitfield;
- tickets: `refund` (solved, voice, a customer message, Zoe's reply and an entry no user wrote,
  where the CRM can hold one), `open` (not solved), `unimportable` (solved, its agent skipped by
  T1), `unassigned`, `old` (created 100 days ago) and `chat` (closed, Zoe's answer).

Each scenario also changes tickets the way an agent would, through the CRM's own API: solving,
reopening and renaming them.
"""

import abc
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests

from integrations.sandbox import SandboxServer
from tests.ticketsearch.support import DANA_PHONE, seed, seed_zendesk

TICKET_KEYS = ("refund", "open", "unimportable", "unassigned", "old", "chat")
SUBJECTS = {
    "refund": "Refund for a broken router",
    "open": "Still open",
    "unimportable": "Agent not importable",
    "unassigned": "Nobody assigned",
    "old": "Too old",
    "chat": "Password reset over chat",
}
CUSTOMER_MESSAGE = "My router arrived broken, I want a refund"
AGENT_REPLY = "Refund issued to the card on file"
SYSTEM_ENTRY = "Ticket merged by a trigger"
CHAT_ANSWER = "Chat: visitor cannot log in; password reset sent"


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


class Scenario(abc.ABC):
    kind: ClassVar[str]
    # Whether the CRM can hold an agent without an email address (Zendesk can; the others invite
    # agents by email and cannot).
    agent_without_email: ClassVar[bool] = False
    # Whether the CRM can hold a ticket entry no user wrote (a trigger's or a workflow's).
    entry_without_user: ClassVar[bool] = True
    # The CRM's status word for each imported ticket.
    status_words: ClassVar[dict[str, str]]

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self.ids: dict[str, str] = {}
        self.zoe = ""

    @abc.abstractmethod
    def seed(self) -> None:
        """Store the data set in the sandbox; fill `ids` (ticket key -> CRM id) and `zoe`."""

    @abc.abstractmethod
    def set_solved(self, key: str, solved: bool) -> None:
        """Solve (or reopen) the ticket as an agent would, through the CRM's API."""

    @abc.abstractmethod
    def rename(self, key: str, subject: str) -> None:
        """Change the ticket's subject through the CRM's API."""

    @abc.abstractmethod
    def web_url_suffix(self, key: str) -> str:
        """How the ticket's link into the CRM's agent interface ends."""

    def crm_id(self, key: str) -> str:
        return self.ids[key]


class ZendeskScenario(Scenario):
    kind = "zendesk"
    agent_without_email = True
    status_words: ClassVar[dict[str, str]] = {"refund": "solved", "chat": "closed"}
    # support.zendesk_tickets(): ticket ids by key (ticket 3's agent has no email).
    ZENDESK_IDS: ClassVar[dict[str, str]] = {key: str(n) for n, key in enumerate(TICKET_KEYS, 1)}

    def seed(self) -> None:
        seed_zendesk(self.sandbox)
        self.ids = dict(self.ZENDESK_IDS)
        self.zoe = "901"

    def _api(self) -> requests.Session:
        session = requests.Session()
        session.auth = ("admin@example.com/token", "sandbox-token")
        return session

    def _put(self, key: str, ticket: dict[str, Any]) -> None:
        url = f"{self.sandbox.base_url}/api/v2/tickets/{self.ids[key]}.json"
        self._api().put(url, json={"ticket": ticket}, timeout=10).raise_for_status()

    def set_solved(self, key: str, solved: bool) -> None:
        self._put(key, {"status": "solved" if solved else "open"})

    def rename(self, key: str, subject: str) -> None:
        self._put(key, {"subject": subject})

    def web_url_suffix(self, key: str) -> str:
        return f"/agent/tickets/{self.ids[key]}"


def sf_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class SalesforceScenario(Scenario):
    kind = "salesforce"
    # Every Salesforce record has a creating user (CreatedById), automated processes included.
    entry_without_user = False
    status_words: ClassVar[dict[str, str]] = {"refund": "Closed", "chat": "Closed"}

    def seed(self) -> None:
        people = seed(
            self.sandbox,
            {
                "users": [
                    {"FirstName": "Zoe", "LastName": "Quality", "Email": "zoe@example.com"},
                    # LastName is Salesforce's only required name field.
                    {"FirstName": None, "LastName": "Mononym", "Email": "mono@example.com"},
                    {"FirstName": "zed@example.com", "LastName": "Smith", "Email": "zed@example.com"},
                ],
                "contacts": [
                    {"FirstName": "Dana", "LastName": "Whitfield", "Email": "dana@example.net", "Phone": DANA_PHONE}
                ],
            },
        )
        zoe, mono, _ = people["users"]
        (dana,) = people["contacts"]
        self.zoe = zoe

        def case(key: str, status: str, owner: str | None, created: float, updated: float, **more: Any) -> Any:
            return {
                "Subject": SUBJECTS[key],
                "Status": status,
                "OwnerId": owner or "00G000000000001AAA",
                "ContactId": dana,
                "CreatedDate": sf_time(days_ago(created)),
                "SystemModstamp": sf_time(days_ago(updated)),
                "ClosedDate": sf_time(days_ago(updated)) if status == "Closed" else None,
                **more,
            }

        cases = seed(
            self.sandbox,
            {
                "cases": [
                    case(
                        "refund", "Closed", zoe, 5, 4, Origin="Phone", Description=CUSTOMER_MESSAGE,
                        EmailMessages=[{"TextBody": CUSTOMER_MESSAGE, "Incoming": True,
                                        "MessageDate": sf_time(days_ago(5))}],
                        CaseComments=[{"CommentBody": AGENT_REPLY, "CreatedById": zoe,
                                       "CreatedDate": sf_time(days_ago(4.5))}],
                    ),
                    case("open", "Working", zoe, 3, 3),
                    case("unimportable", "Closed", mono, 3, 3),
                    case("unassigned", "Closed", None, 3, 3),
                    case("old", "Closed", zoe, 100, 2),
                    case(
                        "chat", "Closed", zoe, 2, 1, Origin="Chat",
                        CaseComments=[{"CommentBody": CHAT_ANSWER, "CreatedById": zoe}],
                    ),
                ]
            },
        )  # fmt: skip
        self.ids = dict(zip(TICKET_KEYS, cases["cases"], strict=True))

    def _api(self) -> requests.Session:
        token = requests.post(
            f"{self.sandbox.base_url}/services/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "sandbox-secret"},
            timeout=10,
        )
        token.raise_for_status()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        return session

    def _patch(self, key: str, fields: dict[str, Any]) -> None:
        url = f"{self.sandbox.base_url}/services/data/v60.0/sobjects/Case/{self.ids[key]}"
        self._api().patch(url, json=fields, timeout=10).raise_for_status()

    def set_solved(self, key: str, solved: bool) -> None:
        self._patch(key, {"Status": "Closed" if solved else "Working"})

    def rename(self, key: str, subject: str) -> None:
        self._patch(key, {"Subject": subject})

    def web_url_suffix(self, key: str) -> str:
        return f"/lightning/r/Case/{self.ids[key]}/view"


def kustomer_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class KustomerScenario(Scenario):
    kind = "kustomer"
    # An API key's machine user may have no email; the sandbox keeps an agent without one to test T1.
    agent_without_email = True
    status_words: ClassVar[dict[str, str]] = {"refund": "done", "chat": "done"}
    ZOE, NOMAIL, MONONYM, ZED = (f"5f0a9{n:019d}" for n in range(1, 5))

    def seed(self) -> None:
        users = [
            {"id": self.ZOE, "name": "Zoe Quality", "email": "zoe@example.com"},
            {"id": self.NOMAIL, "name": "Nomail Agent", "email": None},
            {"id": self.MONONYM, "name": "Mononym", "email": "mono@example.com"},
            {"id": self.ZED, "name": "zed@example.com Smith", "email": "zed@example.com"},
        ]
        people = seed(
            self.sandbox,
            {
                "users": users,
                "customers": [{"name": "Dana Whitfield", "emails": ["dana@example.net"], "phones": [DANA_PHONE]}],
            },
        )
        (dana,) = people["customers"]
        self.zoe = self.ZOE

        def conversation(key: str, status: str, agent: str | None, created: float, updated: float, **more: Any) -> Any:
            return {
                "customer": dana,
                "name": SUBJECTS[key],
                "status": status,
                "assignedUsers": [agent] if agent else [],
                "createdAt": kustomer_time(days_ago(created)),
                "updatedAt": kustomer_time(days_ago(updated)),
                **more,
            }

        created = seed(
            self.sandbox,
            {
                "conversations": [
                    conversation(
                        "refund", "done", self.ZOE, 5, 4, channels=["voice"], tags=["vip", "billing"],
                        messages=[
                            {"direction": "in", "body": CUSTOMER_MESSAGE, "createdAt": kustomer_time(days_ago(5))},
                            # A workflow's automatic acknowledgement: no user wrote it.
                            {"direction": "out", "auto": True, "body": SYSTEM_ENTRY,
                             "createdAt": kustomer_time(days_ago(4.9))},
                        ],
                        notes=[{"body": AGENT_REPLY, "createdBy": self.ZOE, "createdAt": kustomer_time(days_ago(4.5))}],
                    ),
                    conversation("open", "open", self.ZOE, 3, 3),
                    conversation("unimportable", "done", self.NOMAIL, 3, 3),
                    conversation("unassigned", "done", None, 3, 3),
                    conversation("old", "done", self.ZOE, 100, 2),
                    conversation(
                        "chat", "done", self.ZOE, 2, 1, channels=["chat"], tags=["technical"],
                        messages=[{"direction": "out", "body": CHAT_ANSWER, "createdBy": self.ZOE}],
                    ),
                ]
            },
        )  # fmt: skip
        self.ids = dict(zip(TICKET_KEYS, created["conversations"], strict=True))
        self.customer = dana

    def _patch(self, key: str, fields: dict[str, Any]) -> None:
        response = requests.patch(
            f"{self.sandbox.base_url}/v1/conversations/{self.ids[key]}",
            json=fields,
            headers={"Authorization": "Bearer sandbox-api-key"},
            timeout=10,
        )
        response.raise_for_status()

    def set_solved(self, key: str, solved: bool) -> None:
        self._patch(key, {"status": "done" if solved else "open"})

    def rename(self, key: str, subject: str) -> None:
        self._patch(key, {"name": subject})

    def web_url_suffix(self, key: str) -> str:
        return f"/app/customers/{self.customer}/event/{self.ids[key]}"


def freshdesk_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FreshdeskScenario(Scenario):
    kind = "freshdesk"
    status_words: ClassVar[dict[str, str]] = {"refund": "resolved", "chat": "closed"}

    def seed(self) -> None:
        people = seed(
            self.sandbox,
            {
                "agents": [
                    {"name": "Zoe Quality", "email": "zoe@example.com"},
                    {"name": "Mononym", "email": "mono@example.com"},
                    {"name": "zed@example.com Smith", "email": "zed@example.com"},
                ],
                "contacts": [{"name": "Dana Whitfield", "email": "dana@example.net", "phone": DANA_PHONE}],
            },
        )
        zoe, mono, _ = people["agents"]
        (dana,) = people["contacts"]
        self.zoe = str(zoe)

        def ticket(key: str, status: int, agent: int | None, created: float, updated: float, **more: Any) -> Any:
            return {
                "subject": SUBJECTS[key],
                "requester_id": dana,
                "responder_id": agent,
                "status": status,
                "created_at": freshdesk_time(days_ago(created)),
                "updated_at": freshdesk_time(days_ago(updated)),
                **more,
            }

        created = seed(
            self.sandbox,
            {
                "tickets": [
                    ticket(
                        "refund", 4, zoe, 5, 4, source=3, tags=["vip", "billing"], description=CUSTOMER_MESSAGE,
                        conversations=[
                            {"body": CUSTOMER_MESSAGE, "user_id": dana, "incoming": True,
                             "created_at": freshdesk_time(days_ago(5))},
                            {"body": AGENT_REPLY, "user_id": zoe, "created_at": freshdesk_time(days_ago(4.5))},
                            # An automation's note: no user behind it.
                            {"body": SYSTEM_ENTRY, "user_id": None, "private": True,
                             "created_at": freshdesk_time(days_ago(4.4))},
                        ],
                    ),
                    ticket("open", 2, zoe, 3, 3),
                    ticket("unimportable", 5, mono, 3, 3),
                    ticket("unassigned", 4, None, 3, 3),
                    ticket("old", 5, zoe, 100, 2),
                    ticket(
                        "chat", 5, zoe, 2, 1, source=7, tags=["technical"],
                        conversations=[{"body": CHAT_ANSWER, "user_id": zoe}],
                    ),
                ]
            },
        )  # fmt: skip
        self.ids = {key: str(value) for key, value in zip(TICKET_KEYS, created["tickets"], strict=True)}

    def _put(self, key: str, fields: dict[str, Any]) -> None:
        response = requests.put(
            f"{self.sandbox.base_url}/api/v2/tickets/{self.ids[key]}",
            json=fields,
            auth=("sandbox-api-key", "X"),
            timeout=10,
        )
        response.raise_for_status()

    def set_solved(self, key: str, solved: bool) -> None:
        self._put(key, {"status": 4 if solved else 2})

    def rename(self, key: str, subject: str) -> None:
        self._put(key, {"subject": subject})

    def web_url_suffix(self, key: str) -> str:
        return f"/a/tickets/{self.ids[key]}"


SCENARIOS: dict[str, type[Scenario]] = {
    scenario.kind: scenario for scenario in (ZendeskScenario, SalesforceScenario, KustomerScenario, FreshdeskScenario)
}
