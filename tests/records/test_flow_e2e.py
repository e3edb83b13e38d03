"""The whole slice end to end: HTTP events in, a real Celery worker, the ticket read back from Zendesk's API."""

from dataclasses import dataclass
from typing import Any

import pytest
import requests

from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from records.models import CrmAction, Event, Session
from tests.support import EXAMPLE_CALL, sandbox_config, sandbox_stats, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@dataclass
class Flow:
    """The product behind real HTTP on one side and the sandbox Zendesk, read through its own API, on the other."""

    url: str
    api_key: str
    sandbox: SandboxServer
    zendesk: requests.Session

    def post_events(self, body: dict) -> dict:
        headers = {"Authorization": f"Api-Key {self.api_key}"}
        response = requests.post(f"{self.url}/api/v1/events", json=body, headers=headers, timeout=10)
        assert response.status_code == 202, response.text
        return response.json()

    def crm(self, path: str, **params: str) -> Any:
        return self.zendesk.get(f"{self.sandbox.base_url}{path}", params=params).json()

    def crm_writes(self) -> dict[str, int]:
        requests_by_path = sandbox_stats(self.sandbox)["requests"].items()
        return {path: count for path, count in requests_by_path if not path.startswith("GET")}


@pytest.fixture
def flow(
    live_server: Any,
    api_key: str,
    zendesk_connection: CrmConnection,
    zendesk_sandbox: SandboxServer,
    zendesk_api: requests.Session,
) -> Flow:
    return Flow(url=live_server.url, api_key=api_key, sandbox=zendesk_sandbox, zendesk=zendesk_api)


def all_events_applied() -> bool:
    return not Event.objects.filter(applied_at__isnull=True).exists()


def all_actions_settled() -> bool:
    actions = CrmAction.objects.all()
    return actions.exists() and not actions.filter(status=CrmAction.Status.PENDING).exists()


def read_ticket(flow: Flow, external_id: str = "c-1") -> tuple[dict, list]:
    found = flow.crm("/api/v2/tickets.json", external_id=external_id)
    assert found["count"] == 1, found
    [ticket] = found["tickets"]
    return ticket, flow.crm(f"/api/v2/tickets/{ticket['id']}/comments.json")["comments"]


def agent_id(flow: Flow, email: str) -> int:
    return flow.crm("/api/v2/users/search.json", query=f"email:{email}")["users"][0]["id"]


EXPECTED_COMMENTS = [
    "Call ID: c-1\nSession type: IVR Call\nLanguage: en\nMenu selection: Support > Billing\n"
    "Queue: Support > Billing\nPhone number: +14155550100",
    "call_finished\nCall ID: c-1\nCall duration: 5m 36s\nHold time: 30s\nWait time: 24s",
    "Call recording: https://recordings.example.com/c-1.mp3",
]


def assert_the_example_ticket(flow: Flow) -> None:
    ticket, comments = read_ticket(flow)
    assert ticket["subject"] == "IVR Call from +14155550100"
    assert ticket["tags"] == ["voice_inbound_ivr"]
    assert ticket["assignee_id"] == agent_id(flow, "ana@example.com")
    assert [comment["body"] for comment in comments] == EXPECTED_COMMENTS
    assert [comment["public"] for comment in comments] == [False, False, False]
    assert flow.crm(f"/api/v2/users/{ticket['requester_id']}.json")["user"]["phone"] == "+14155550100"
    assert flow.crm("/api/v2/users/search.json", query="phone:*14155550100")["count"] == 1


def test_ivr_call_makes_exactly_one_ticket_and_a_replay_changes_nothing(flow: Flow) -> None:
    # when
    assert flow.post_events(EXAMPLE_CALL) == {"accepted": 5, "duplicates": 0}
    wait_until(all_actions_settled, message="the session's CRM actions")

    # then
    assert set(CrmAction.objects.values_list("status", flat=True)) == {CrmAction.Status.SUCCEEDED}
    assert_the_example_ticket(flow)
    writes_before = flow.crm_writes()

    # and a replay of the same events is acknowledged and changes nothing in the CRM
    assert flow.post_events(EXAMPLE_CALL) == {"accepted": 0, "duplicates": 5}
    wait_until(all_actions_settled, message="settled after replay")
    assert flow.crm_writes() == writes_before
    # Five for the record, one for Zendesk's screen pop on the answering agent's screen (O4).
    assert CrmAction.objects.count() == 6
    assert_the_example_ticket(flow)


def test_ivr_call_events_out_of_order_and_one_by_one_make_the_same_ticket(flow: Flow) -> None:
    # session.assigned arrives first, the end before the creation: occurred_at still orders them.
    events = EXAMPLE_CALL["events"]
    for index in (1, 3, 0, 2, 4):
        flow.post_events(events[index])

    # Every event applied first: six actions may be settled while the last event's are still to be decided.
    wait_until(
        lambda: Event.objects.count() == 5 and all_events_applied() and all_actions_settled(),
        message="all five events applied and their actions settled",
    )

    assert CrmAction.objects.count() == 6
    assert_the_example_ticket(flow)


def test_ivr_call_with_a_crm_failing_a_third_of_requests_still_lands_exactly_once(flow: Flow) -> None:
    # given: a third of requests answered 429 or 5xx, and some writes applied but answered 500
    chaos = {"fail_rate": 0.2, "throttle_rate": 0.15, "retry_after_seconds": 1, "lost_response_rate": 0.2}
    sandbox_config(flow.sandbox, seed=7, **chaos)

    # when
    flow.post_events(EXAMPLE_CALL)
    wait_until(all_actions_settled, timeout=90, message="the actions through injected failures")

    # then
    stats = sandbox_stats(flow.sandbox)
    assert stats["injected_failures"] + stats["rate_limited"] + stats["lost_responses"] > 0, stats
    sandbox_config(flow.sandbox, fail_rate=0.0, throttle_rate=0.0, lost_response_rate=0.0)
    assert set(CrmAction.objects.values_list("status", flat=True)) == {CrmAction.Status.SUCCEEDED}
    assert_the_example_ticket(flow)
    # Each lost answer and each 5xx on a write ended one attempt and cost one retry; a 5xx on a read
    # was sent again in place (integrations.http) and cost none unless it kept failing; 429s spent no attempt.
    session = Session.objects.get(external_id="c-1")
    retries = sum(session.actions.values_list("attempts", flat=True)) - session.actions.count()
    assert stats["lost_responses"] <= retries <= stats["injected_failures"] + stats["lost_responses"], stats
