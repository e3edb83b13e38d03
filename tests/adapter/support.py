"""The adapter end to end: its REST API over real HTTP, a real worker, the CRM read through its own API."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from agentstatus.models import Agent, AgentToken
from tests.records.scenario import KustomerView, ZendeskView
from tests.records.test_record_rules_e2e import Product

PHONE = "+14155550100"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass
class AdapterProduct(Product):
    """The product behind real HTTP, the agents' adapter tokens, and the CRM it writes to."""

    crm: ZendeskView | KustomerView
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.crm.kind

    def token(self, email: str = "ben@example.com") -> str:
        """The adapter token of this agent (made on first use; the agent too, unless a test made it)."""
        if email not in self.tokens:
            agent, _ = Agent.objects.get_or_create(email=email)
            _, key = AgentToken.objects.create_key(name=f"adapter {email}", agent=agent)
            self.tokens[email] = key
        return self.tokens[email]

    def call(self, method: str, path: str, *, agent: str = "ben@example.com", **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Agent-Token {self.token(agent)}"}
        return requests.request(method, f"{self.url}/api/v1/adapter/{path}", headers=headers, timeout=40, **kwargs)

    def prepare(self, agent: str = "ben@example.com", **body: Any) -> requests.Response:
        return self.call("POST", "outbound/prepare", agent=agent, json=body)

    def start(self, agent: str = "ben@example.com", **body: Any) -> requests.Response:
        return self.call("POST", "outbound/start", agent=agent, json=body)

    def pop(self, agent: str = "ben@example.com", wait: int = 20, after: int | None = None) -> requests.Response:
        query = f"wait={wait}" + (f"&after={after}" if after is not None else "")
        return self.call("GET", f"screen-pop?{query}", agent=agent)

    def post_events(self, events: list[dict[str, Any]]) -> None:
        headers = {"Authorization": f"Api-Key {self.api_key}"}
        response = requests.post(f"{self.url}/api/v1/events", json={"events": events}, headers=headers, timeout=30)
        assert response.status_code == 202, response.text

    # -- CRM set-up through the CRM's own API -----------------------------------------------------

    def contact(self, name: str, phone: str | None = PHONE, **custom: Any) -> str:
        """A contact (Zendesk end user, Kustomer customer), with custom fields if given."""
        base = self.sandbox.base_url
        if self.kind == "zendesk":
            user: dict[str, Any] = {"name": name, "role": "end-user", "user_fields": custom}
            if phone:
                user |= {"phone": phone, "shared_phone_number": True}
            response = self.crm.api.post(f"{base}/api/v2/users.json", json={"user": user}, timeout=10)
            response.raise_for_status()
            return str(response.json()["user"]["id"])
        customer: dict[str, Any] = {"name": name, "custom": custom}
        if phone:
            customer["phones"] = [{"type": "mobile", "phone": phone}]
        response = self.crm.api.post(f"{base}/v1/customers", json=customer, timeout=10)
        response.raise_for_status()
        customer_id = str(response.json()["data"]["id"])
        if isinstance(self.crm, KustomerView):
            self.crm.known_customers.add(customer_id)
        return customer_id

    def record(self, contact_id: str, subject: str, status: str = "open", minutes_ago: int = 0) -> str:
        """A record of the contact; `minutes_ago` orders records by when they were last updated."""
        base = self.sandbox.base_url
        if self.kind == "zendesk":
            # Zendesk's times have whole seconds: the seed control sets them so "newest" is never a tie.
            updated = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
            ticket = {"subject": subject, "status": status, "requester_id": int(contact_id), "updated_at": updated}
            response = requests.post(f"{base}/__sandbox/seed", json={"tickets": [ticket]}, timeout=10)
            response.raise_for_status()
            return str(response.json()["tickets"][0])
        body = {"name": subject, "status": status}
        api = self.crm.api
        response = api.post(f"{base}/v1/customers/{contact_id}/conversations", json=body, timeout=10)
        response.raise_for_status()
        return str(response.json()["data"]["id"])

    def contact_phone(self, contact_id: str) -> str | None:
        if self.kind == "zendesk":
            phone: str | None = self.crm.get(f"/api/v2/users/{contact_id}.json")["user"]["phone"]
            return phone
        phones = self.crm.get(f"/v1/customers/{contact_id}")["data"]["attributes"]["phones"]
        return ", ".join(item["phone"] for item in phones) or None

    def record_bodies(self, record_id: str) -> list[str]:
        return [comment["body"] for comment in self.crm.comments(record_id)]


def outbound_events(session_id: str, **data: Any) -> list[dict[str, Any]]:
    """The platform's own events for an outbound call the adapter started."""
    return [
        {
            "event_id": f"{session_id}-platform-created",
            "session_id": session_id,
            "type": "session.created",
            "occurred_at": T0.isoformat(),
            "data": {"channel": "voice", "session_type": "voice_outbound", "phone_number": PHONE},
        },
        {
            "event_id": f"{session_id}-platform-started",
            "session_id": session_id,
            "type": "outbound.started",
            "occurred_at": (T0 + timedelta(seconds=1)).isoformat(),
            "data": {"agent": {"email": "ben@example.com"}, "phone_number": PHONE, **data},
        },
    ]
