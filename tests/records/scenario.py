"""Building session events and reading the CRM back, for the end-to-end record-rule tests.

`Call` writes the platform's events for one session; `ZendeskView` reads what landed through
Zendesk's own API, in a CRM-neutral shape the assertions compare.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import requests

from integrations.providers.phones import national_number
from integrations.sandbox import SandboxServer

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass
class Call:
    """The events of one session, in the order they happen (one second apart unless told)."""

    session_id: str
    session_type: str = "voice_inbound_ivr"
    phone: str = "+14155550100"
    queue: tuple[str, ...] = ("Support", "Billing")
    menu_path: str = "Support > Billing"
    start: datetime = T0
    events: list[dict[str, Any]] = field(default_factory=list)
    _clock: int = 0
    # Counts every event ever added, so ids stay unique after `events` is cleared between posts.
    _count: int = 0

    @property
    def channel(self) -> str:
        return "chat" if self.session_type.startswith("chat") else "voice"

    def add(self, type_: str, after: int = 1, **data: Any) -> "Call":
        self._clock += after
        self._count += 1
        self.events.append(
            {
                "event_id": f"{self.session_id}-{self._count}",
                "session_id": self.session_id,
                "type": type_,
                "occurred_at": (self.start + timedelta(seconds=self._clock)).isoformat(),
                "data": data,
            }
        )
        return self

    def created(self, **extra: Any) -> "Call":
        data: dict[str, Any] = {
            "channel": self.channel,
            "session_type": self.session_type,
            "language": "en",
            "menu_path": self.menu_path,
            "queue": {"id": "q-" + "-".join(self.queue).lower(), "name": self.queue[-1], "path": list(self.queue)},
        }
        if self.phone:
            data["phone_number"] = self.phone
        return self.add("session.created", after=0, **(data | extra))

    def assigned(self, agent: str = "ana@example.com") -> "Call":
        return self.add("session.assigned", agent={"email": agent})

    def connected(self, agent: str = "ana@example.com") -> "Call":
        return self.add("session.connected", agent={"email": agent})

    def ended(self, duration: int = 120, hold: int = 10, wait: int = 15) -> "Call":
        return self.add("session.ended", after=duration, call_duration=duration, hold_time=hold, wait_time=wait)

    def answered(self, agent: str = "ana@example.com") -> "Call":
        return self.created().assigned(agent).connected(agent)


def _days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


class CrmView(Protocol):
    kind: str
    # The CRM's words for an open record and a resolved one.
    open: str
    solved: str

    def download(self, url: str) -> bytes: ...

    def records(self) -> list[dict[str, Any]]: ...

    def record_for(self, session_id: str) -> dict[str, Any]: ...

    def comments(self, record_id: str) -> list[dict[str, Any]]: ...

    def set_status(self, record_id: str, status: str) -> None: ...

    def backdate(self, record_id: str, *, closed_days_ago: float, updated_days_ago: float) -> None: ...

    def contacts_with_phone(self, phone: str) -> list[dict[str, Any]]: ...

    def create_contact(self, name: str, phone: str) -> str: ...

    def agent_id(self, email: str) -> str: ...

    def snapshot(self) -> list[dict[str, Any]]: ...


def records_snapshot(view: CrmView) -> list[dict[str, Any]]:
    """The CRM's records and their comments, without the ids and times that differ between runs."""
    records = []
    for record in sorted(view.records(), key=lambda item: item["external_id"] or ""):
        records.append(
            {
                "subject": record["subject"],
                "status": record["status"],
                "tags": sorted(record["tags"]),
                "external_id": record["external_id"],
                "assigned": record["assignee_id"] is not None,
                "comments": sorted(comment["body"] for comment in view.comments(record["id"])),
            }
        )
    return records


@dataclass
class ZendeskView:
    """Zendesk as an integration engineer reads it, through the sandbox's Support API."""

    sandbox: SandboxServer
    api: requests.Session
    kind: str = "zendesk"
    solved: str = "solved"
    open: str = "open"

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(f"{self.sandbox.base_url}{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def records(self) -> list[dict[str, Any]]:
        return [self._record(ticket) for ticket in self.get("/api/v2/tickets.json")["tickets"]]

    def _record(self, ticket: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(ticket["id"]),
            "subject": ticket["subject"],
            "status": ticket["status"],
            "tags": ticket["tags"],
            "assignee_id": str(ticket["assignee_id"]) if ticket.get("assignee_id") else None,
            "requester_id": str(ticket["requester_id"]),
            "external_id": ticket.get("external_id"),
            "custom_fields": {str(item["id"]): item["value"] for item in ticket.get("custom_fields") or ()},
        }

    def record_for(self, session_id: str) -> dict[str, Any]:
        found = self.get("/api/v2/tickets.json", external_id=session_id)["tickets"]
        assert len(found) == 1, found
        return self._record(found[0])

    def comments(self, record_id: str) -> list[dict[str, Any]]:
        comments = self.get(f"/api/v2/tickets/{record_id}/comments.json")["comments"]
        return [
            {
                "body": comment["body"],
                "public": comment["public"],
                "attachments": [item["file_name"] for item in comment.get("attachments") or ()],
                "attachment_urls": [item["content_url"] for item in comment.get("attachments") or ()],
            }
            for comment in comments
        ]

    def download(self, url: str) -> bytes:
        response = self.api.get(url, timeout=10)
        response.raise_for_status()
        return response.content

    def set_status(self, record_id: str, status: str) -> None:
        url = f"{self.sandbox.base_url}/api/v2/tickets/{record_id}.json"
        self.api.put(url, json={"ticket": {"status": status}}, timeout=10).raise_for_status()

    def backdate(self, record_id: str, *, closed_days_ago: float, updated_days_ago: float) -> None:
        """The days a real account lets pass: solved then, touched by an automation later (sandbox control)."""
        times = {"solved_at": _days_ago(closed_days_ago), "updated_at": _days_ago(updated_days_ago)}
        url = f"{self.sandbox.base_url}/__sandbox/backdate"
        requests.post(url, json={"ticket": int(record_id), **times}, timeout=10).raise_for_status()

    def merge(self, source_id: str, target_id: str) -> None:
        url = f"{self.sandbox.base_url}/api/v2/tickets/{target_id}/merge.json"
        self.api.post(url, json={"ids": [int(source_id)]}, timeout=10).raise_for_status()

    def contacts_with_phone(self, phone: str) -> list[dict[str, Any]]:
        digits = phone.lstrip("+")
        users = self.get("/api/v2/users/search.json", query=f"role:end-user phone:*{digits}")["users"]
        return [{"id": str(user["id"]), "name": user["name"], "external_id": user.get("external_id")} for user in users]

    def create_contact(self, name: str, phone: str) -> str:
        url = f"{self.sandbox.base_url}/api/v2/users.json"
        # A shared number: Zendesk lets several users have it only when it is marked shared.
        body = {"user": {"name": name, "phone": phone, "role": "end-user", "shared_phone_number": True}}
        response = self.api.post(url, json=body, timeout=10)
        response.raise_for_status()
        return str(response.json()["user"]["id"])

    def agent_id(self, email: str) -> str:
        return str(self.get("/api/v2/users/search.json", query=f"email:{email}")["users"][0]["id"])

    def snapshot(self) -> list[dict[str, Any]]:
        """What a clean run leaves, without the ids and times that differ between runs."""
        records = records_snapshot(self)
        users = self.get("/api/v2/users.json", **{"page[size]": 100})["users"]
        contacts = sorted((user["name"], user.get("phone") or "") for user in users if user["role"] == "end-user")
        return [{"records": records, "contacts": contacts}]


@dataclass
class KustomerView:
    """Kustomer as an integration engineer reads it, through the sandbox's REST v1 API.

    Kustomer has no "list every conversation" call for an API key; conversations are read per
    customer, for the customers the product linked (and any the test made).
    """

    sandbox: SandboxServer
    api: requests.Session
    kind: str = "kustomer"
    solved: str = "done"
    open: str = "open"
    known_customers: set[str] = field(default_factory=set)

    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(f"{self.sandbox.base_url}{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def _customers(self) -> set[str]:
        from records.models import Session

        linked = set(Session.objects.exclude(crm_contact_id="").values_list("crm_contact_id", flat=True))
        return linked | self.known_customers

    def records(self) -> list[dict[str, Any]]:
        records = []
        for customer_id in sorted(self._customers()):
            records += [self._record(item) for item in self.get(f"/v1/customers/{customer_id}/conversations")["data"]]
        return records

    def _record(self, conversation: dict[str, Any]) -> dict[str, Any]:
        attributes = conversation["attributes"]
        assigned = attributes.get("assignedUsers") or []
        return {
            "id": conversation["id"],
            "subject": attributes.get("name"),
            "status": attributes.get("status"),
            "tags": attributes.get("tags") or [],
            "assignee_id": assigned[0] if assigned else None,
            "requester_id": conversation["relationships"]["customer"]["data"]["id"],
            "external_id": attributes.get("externalId"),
            "custom_fields": dict(attributes.get("custom") or {}),
        }

    def record_for(self, session_id: str) -> dict[str, Any]:
        return self._record(self.get(f"/v1/conversations/externalId={session_id}")["data"])

    def comments(self, record_id: str) -> list[dict[str, Any]]:
        notes = self.get(f"/v1/conversations/{record_id}/notes")["data"]
        comments = []
        for note in notes:
            attachments = note["attributes"].get("attachments") or []
            urls = [
                self.get(f"/v1/attachments/{item['_id']}")["data"]["links"].get("related", "") for item in attachments
            ]
            comments.append(
                {
                    "body": note["attributes"]["body"],
                    "public": False,
                    "attachments": [item["name"] for item in attachments],
                    "attachment_urls": urls,
                }
            )
        return comments

    def download(self, url: str) -> bytes:
        response = self.api.get(url, timeout=10)
        response.raise_for_status()
        return response.content

    def set_status(self, record_id: str, status: str) -> None:
        url = f"{self.sandbox.base_url}/v1/conversations/{record_id}"
        self.api.patch(url, json={"status": status}, timeout=10).raise_for_status()

    def backdate(self, record_id: str, *, closed_days_ago: float, updated_days_ago: float) -> None:
        """The days a real org lets pass: done then, touched by a rule later (sandbox control)."""
        times = {"lastDoneAt": _days_ago(closed_days_ago), "updatedAt": _days_ago(updated_days_ago)}
        url = f"{self.sandbox.base_url}/__sandbox/backdate"
        requests.post(url, json={"conversation": record_id, **times}, timeout=10).raise_for_status()

    def contacts_with_phone(self, phone: str) -> list[dict[str, Any]]:
        response = self.api.get(f"{self.sandbox.base_url}/v1/customers/phone={phone}", timeout=10)
        if response.status_code == 404:
            return []
        response.raise_for_status()
        customer = response.json()["data"]
        return [{"id": customer["id"], "name": customer["attributes"]["name"]}]

    def create_contact(self, name: str, phone: str) -> str:
        body = {"name": name, "phones": [{"type": "mobile", "phone": phone}]}
        response = self.api.post(f"{self.sandbox.base_url}/v1/customers", json=body, timeout=10)
        response.raise_for_status()
        customer_id = str(response.json()["data"]["id"])
        self.known_customers.add(customer_id)
        return customer_id

    def agent_id(self, email: str) -> str:
        users = self.get("/v1/users", pageSize=100)["data"]
        return next(user["id"] for user in users if user["attributes"].get("email") == email)

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"records": records_snapshot(self)}]


@dataclass
class SalesforceView:
    """Salesforce as an integration engineer reads it: SOQL and sObject reads with an OAuth token.

    A case's first entry is its Description, later ones its CaseComments; the files published to
    it (ContentVersion) are listed as entries of their own, as the case's Files list shows them.
    """

    sandbox: SandboxServer
    kind: str = "salesforce"
    solved: str = "Closed"
    open: str = "New"
    api: requests.Session = field(default_factory=requests.Session)
    external_id_field: str = "CRM_Bridge_Session_Id__c"

    def _login(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": "view", "client_secret": "view"}
        token = requests.post(f"{self.sandbox.base_url}/services/oauth2/token", data=form, timeout=10).json()
        self.api.headers["Authorization"] = f"Bearer {token['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.sandbox.base_url}{path}"
        response = self.api.request(method, url, timeout=10, **kwargs)
        if response.status_code == 401:
            # The sandbox forgets its tokens on reset, as an org does on a password change.
            self._login()
            response = self.api.request(method, url, timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def query(self, soql: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.call("GET", "/services/data/v60.0/query", params={"q": soql}).json()[
            "records"
        ]
        return records

    def records(self) -> list[dict[str, Any]]:
        return [self._record(case) for case in self.query("SELECT Id FROM Case ORDER BY CreatedDate")]

    def _record(self, case: dict[str, Any]) -> dict[str, Any]:
        full = self.call("GET", f"/services/data/v60.0/sobjects/Case/{case['Id']}").json()
        owner = full.get("OwnerId") or ""
        return {
            "id": full["Id"],
            "subject": full["Subject"],
            "status": full["Status"],
            # Cases have no tags (R8 does not apply).
            "tags": [],
            # A case owned by a queue (00G) has no agent yet.
            "assignee_id": owner if owner.startswith("005") else None,
            "requester_id": full.get("ContactId"),
            "external_id": full.get(self.external_id_field),
            "custom_fields": {key: value for key, value in full.items() if key.endswith("__c")},
        }

    def record_for(self, session_id: str) -> dict[str, Any]:
        found = self.query(f"SELECT Id FROM Case WHERE {self.external_id_field} = '{session_id}'")
        assert len(found) == 1, found
        return self._record(found[0])

    def comments(self, record_id: str) -> list[dict[str, Any]]:
        case = self.call("GET", f"/services/data/v60.0/sobjects/Case/{record_id}").json()
        entries = [{"body": case["Description"], "public": False, "attachments": [], "attachment_urls": []}]
        soql = f"SELECT CommentBody, IsPublished FROM CaseComment WHERE ParentId = '{record_id}' ORDER BY CreatedDate"
        entries += [
            {"body": item["CommentBody"], "public": item["IsPublished"], "attachments": [], "attachment_urls": []}
            for item in self.query(soql)
        ]
        files = f"SELECT Title, VersionData FROM ContentVersion WHERE FirstPublishLocationId = '{record_id}'"
        entries += [
            {"body": "", "public": False, "attachments": [item["Title"]], "attachment_urls": [item["VersionData"]]}
            for item in self.query(files)
        ]
        return entries

    def download(self, url: str) -> bytes:
        return self.call("GET", url).content

    def set_status(self, record_id: str, status: str) -> None:
        self.call("PATCH", f"/services/data/v60.0/sobjects/Case/{record_id}", json={"Status": status})

    def backdate(self, record_id: str, *, closed_days_ago: float, updated_days_ago: float) -> None:
        """The days a real org lets pass: closed then, edited by a flow later (sandbox control)."""
        times = {"ClosedDate": _days_ago(closed_days_ago), "LastModifiedDate": _days_ago(updated_days_ago)}
        url = f"{self.sandbox.base_url}/__sandbox/backdate"
        requests.post(url, json={"case": record_id, **times}, timeout=10).raise_for_status()

    def contacts_with_phone(self, phone: str) -> list[dict[str, Any]]:
        sosl = f"FIND {{{national_number(phone)}}} IN PHONE FIELDS RETURNING Contact(Id, Name)"
        found = self.call("GET", "/services/data/v60.0/search", params={"q": sosl}).json()["searchRecords"]
        return [{"id": item["Id"], "name": item["Name"]} for item in found]

    def create_contact(self, name: str, phone: str) -> str:
        body = {"LastName": name, "Phone": phone}
        return str(self.call("POST", "/services/data/v60.0/sobjects/Contact", json=body).json()["id"])

    def agent_id(self, email: str) -> str:
        return str(self.query(f"SELECT Id FROM User WHERE Email = '{email}'")[0]["Id"])

    def snapshot(self) -> list[dict[str, Any]]:
        contacts = sorted((item["Name"], item["Phone"] or "") for item in self.query("SELECT Name, Phone FROM Contact"))
        return [{"records": records_snapshot(self), "contacts": contacts}]


@dataclass
class FreshdeskView:
    """Freshdesk as an integration engineer reads it, through the sandbox's API v2 (Basic API key:X).

    A ticket's first entry is its description, the others its conversations (private notes).
    """

    sandbox: SandboxServer
    api: requests.Session
    kind: str = "freshdesk"
    solved: str = "resolved"
    open: str = "open"
    session_field: str = "cf_crm_bridge_session_id"

    STATUS_NAMES = {2: "open", 3: "pending", 4: "resolved", 5: "closed"}

    def get(self, path: str, **params: Any) -> Any:
        url = path if path.startswith("http") else f"{self.sandbox.base_url}{path}"
        response = self.api.get(url, params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def records(self) -> list[dict[str, Any]]:
        return [self._record(ticket) for ticket in self.get("/api/v2/tickets", per_page=100, order_type="asc")]

    def _record(self, ticket: dict[str, Any]) -> dict[str, Any]:
        custom = dict(ticket.get("custom_fields") or {})
        return {
            "id": str(ticket["id"]),
            "subject": ticket["subject"],
            "status": self.STATUS_NAMES.get(ticket["status"], str(ticket["status"])),
            "tags": ticket["tags"],
            "assignee_id": str(ticket["responder_id"]) if ticket.get("responder_id") else None,
            "requester_id": str(ticket["requester_id"]),
            "external_id": custom.get(self.session_field),
            "custom_fields": custom,
        }

    def record_for(self, session_id: str) -> dict[str, Any]:
        found = self.get("/api/v2/search/tickets", query=f"\"{self.session_field}:'{session_id}'\"")["results"]
        assert len(found) == 1, found
        return self._record(found[0])

    def comments(self, record_id: str) -> list[dict[str, Any]]:
        ticket = self.get(f"/api/v2/tickets/{record_id}")
        entries = [{"body": ticket["description_text"], "public": False, "attachments": [], "attachment_urls": []}]
        for note in self.get(f"/api/v2/tickets/{record_id}/conversations", per_page=100):
            entries.append(
                {
                    "body": note["body_text"],
                    "public": not note["private"],
                    "attachments": [item["name"] for item in note["attachments"]],
                    "attachment_urls": [item["attachment_url"] for item in note["attachments"]],
                }
            )
        return entries

    def download(self, url: str) -> bytes:
        response = self.api.get(url, timeout=10)
        response.raise_for_status()
        return response.content

    def set_status(self, record_id: str, status: str) -> None:
        number = {name: number for number, name in self.STATUS_NAMES.items()}[status]
        url = f"{self.sandbox.base_url}/api/v2/tickets/{record_id}"
        self.api.put(url, json={"status": number}, timeout=10).raise_for_status()

    def backdate(self, record_id: str, *, closed_days_ago: float, updated_days_ago: float) -> None:
        """The days a real helpdesk lets pass: resolved then, touched by an automation later (sandbox control)."""
        times = {"resolved_at": _days_ago(closed_days_ago), "updated_at": _days_ago(updated_days_ago)}
        url = f"{self.sandbox.base_url}/__sandbox/backdate"
        requests.post(url, json={"ticket": int(record_id), **times}, timeout=10).raise_for_status()

    def contacts_with_phone(self, phone: str) -> list[dict[str, Any]]:
        return [{"id": str(c["id"]), "name": c["name"]} for c in self.get("/api/v2/contacts", phone=phone)]

    def create_contact(self, name: str, phone: str) -> str:
        response = self.api.post(
            f"{self.sandbox.base_url}/api/v2/contacts", json={"name": name, "phone": phone}, timeout=10
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def agent_id(self, email: str) -> str:
        return str(self.get("/api/v2/agents", email=email)[0]["id"])

    def snapshot(self) -> list[dict[str, Any]]:
        contacts = sorted((c["name"], c.get("phone") or "") for c in self.get("/api/v2/contacts"))
        return [{"records": records_snapshot(self), "contacts": contacts}]
