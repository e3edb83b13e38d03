"""O4 end to end: the answering agent's long poll gets the record; Zendesk's display API is called once per pop."""

import threading
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone

from records.models import CrmAction, ScreenPop, Session
from tests.adapter.support import PHONE, AdapterProduct
from tests.records.scenario import Call

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def displays(product: AdapterProduct) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = requests.get(f"{product.sandbox.base_url}/__sandbox/displays", timeout=5).json()[
        "displays"
    ]
    return found


class LongPoll(threading.Thread):
    """An adapter waiting on the screen-pop endpoint while the call happens."""

    def __init__(self, product: AdapterProduct, agent: str, wait: int = 30) -> None:
        super().__init__(daemon=True)
        self.product, self.agent, self.wait = product, agent, wait
        self.token = product.token(agent)
        self.response: requests.Response | None = None

    def run(self) -> None:
        headers = {"Authorization": f"Agent-Token {self.token}"}
        url = f"{self.product.url}/api/v1/adapter/screen-pop?wait={self.wait}"
        self.response = requests.get(url, headers=headers, timeout=self.wait + 10)

    def result(self) -> requests.Response:
        self.join(timeout=self.wait + 15)
        assert self.response is not None
        return self.response


def test_inbound_call_pops_on_the_answering_agents_adapter(product: AdapterProduct) -> None:
    waiting = LongPoll(product, "ana@example.com")
    waiting.start()

    product.post_events(Call("c-1").answered("ana@example.com").events)

    response = waiting.result()
    assert response.status_code == 200, response.text
    record = product.crm.record_for("c-1")
    pop = response.json()
    assert pop["session_id"] == "c-1"
    assert pop["record_id"] == record["id"]
    assert pop["channel"] == "voice"
    assert pop["contact_id"] == record["requester_id"]
    if product.kind == "zendesk":
        assert pop["record_url"] == f"{product.sandbox.base_url}/agent/tickets/{record['id']}"
    else:
        assert (
            pop["record_url"]
            == f"{product.sandbox.base_url}/app/customers/{record['requester_id']}/event/{record['id']}"
        )
    # The next poll, after this pop, waits and finds nothing; without `after` the current pop answers again.
    assert product.pop("ana@example.com", wait=1, after=pop["pop_id"]).status_code == 204
    assert product.pop("ana@example.com", wait=0).json() == pop


def test_zendesk_display_api_opens_the_ticket_for_the_answering_agent_once(product: AdapterProduct) -> None:
    product.post_events(Call("c-1").answered("ana@example.com").ended().events)
    product.settle()

    record = product.crm.record_for("c-1")
    if product.kind == "zendesk":
        shown = [(item["agent_id"], item["ticket_id"]) for item in displays(product)]
        assert shown == [(int(product.crm.agent_id("ana@example.com")), int(record["id"]))]
        stats = product.sandbox.stats()["requests"]
        assert stats["POST /api/v2/channels/voice/agents/{agent_id}/tickets/{ticket_id}/display.json"] == 1
        action = CrmAction.objects.get(kind="display_record")
        assert action.status == "succeeded"
        assert action.rule == "O4"
    else:
        # Kustomer has no screen-pop API: the adapter opens the record's URL.
        assert not CrmAction.objects.filter(kind="display_record").exists()
    assert ScreenPop.objects.get().agent_email == "ana@example.com"


def test_an_agent_assigned_but_never_answering_gets_no_pop(product: AdapterProduct) -> None:
    call = Call("c-1").created().assigned("ana@example.com").connected("ben@example.com")
    product.post_events(call.events)
    product.settle()

    assert list(ScreenPop.objects.values_list("agent_email", flat=True)) == ["ben@example.com"]
    assert product.pop("ana@example.com", wait=0).status_code == 204
    assert product.pop("ben@example.com", wait=0).json()["session_id"] == "c-1"


def test_transfer_pops_the_record_on_the_receiving_agents_adapter(product: AdapterProduct) -> None:
    call = Call("c-1").answered("ana@example.com")
    product.post_events(call.events)
    product.settle()
    assert product.pop("ana@example.com", wait=0).status_code == 200
    assert product.pop("carla@example.com", wait=0).status_code == 204
    waiting = LongPoll(product, "carla@example.com")
    waiting.start()

    product.post_events([call.add("session.transferred", to_agent={"email": "carla@example.com"}).events[-1]])

    response = waiting.result()
    assert response.status_code == 200, response.text
    assert response.json()["record_id"] == product.crm.record_for("c-1")["id"]
    product.settle()
    if product.kind == "zendesk":
        assert [item["agent_id"] for item in displays(product)] == [
            int(product.crm.agent_id("ana@example.com")),
            int(product.crm.agent_id("carla@example.com")),
        ]


def test_chat_pops_when_assigned(product: AdapterProduct) -> None:
    waiting = LongPoll(product, "ana@example.com")
    waiting.start()

    chat = Call("chat-1", session_type="chat_inbound_web").created(customer={"email": "kim@example.net", "name": "Kim"})
    product.post_events(chat.assigned("ana@example.com").events)

    response = waiting.result()
    assert response.status_code == 200, response.text
    assert response.json()["channel"] == "chat"
    assert response.json()["session_id"] == "chat-1"


def test_outbound_new_record_is_delivered_by_the_screen_pop(product: AdapterProduct) -> None:
    product.configure(outbound_prompt_record_choice=True, outbound_allow_create_new=True)
    contact = product.contact("Ann Lee")
    waiting = LongPoll(product, "ben@example.com")
    waiting.start()

    started = product.start(session_id="out-1", phone_number=PHONE, contact_id=contact, record_choice="new")
    assert started.status_code == 201
    assert started.json()["pending"] is True

    response = waiting.result()
    assert response.status_code == 200, response.text
    assert response.json()["record_id"] == product.crm.record_for("out-1")["id"]


def test_another_agents_pop_is_not_delivered_to_this_agent(product: AdapterProduct) -> None:
    product.post_events(Call("c-1").answered("ana@example.com").events)
    product.settle()

    assert product.pop("ben@example.com", wait=1).status_code == 204
    assert product.pop("ana@example.com", wait=0).status_code == 200


def test_a_bad_wait_is_a_400_naming_it(product: AdapterProduct) -> None:
    for query, field in (("wait=soon", "wait"), ("wait=-1", "wait"), ("wait=3600", "wait"), ("after=x", "after")):
        response = product.call("GET", f"screen-pop?{query}")
        assert response.status_code == 400
        assert field in response.json()["errors"]


def test_the_pop_waits_only_as_long_as_asked(product: AdapterProduct) -> None:
    response = product.pop("ana@example.com", wait=1)

    assert response.status_code == 204
    assert response.content == b""


def test_a_session_that_ended_long_ago_does_not_pop(product: AdapterProduct) -> None:
    # The platform's times are from another clock (the example call's are in the past): the pop's own counts.
    product.post_events(Call("c-0").answered("ana@example.com").ended().events)
    product.settle()
    assert product.pop("ana@example.com", wait=0).json()["session_id"] == "c-0"

    product.post_events(Call("c-1").answered("ana@example.com").ended().events)
    product.settle()
    ten_minutes_ago = timezone.now() - timedelta(minutes=10)
    ScreenPop.objects.update(created_at=ten_minutes_ago)
    Session.objects.filter(external_id="c-1").update(ended_at=ten_minutes_ago)

    assert product.pop("ana@example.com", wait=0).status_code == 204


def test_a_poll_left_waiting_by_a_closed_tab_does_not_take_the_pop_from_the_new_one(product: AdapterProduct) -> None:
    stale = LongPoll(product, "ana@example.com", wait=15)
    stale.start()
    fresh = LongPoll(product, "ana@example.com", wait=15)
    fresh.start()

    product.post_events(Call("c-1").answered("ana@example.com").events)

    assert fresh.result().json()["session_id"] == "c-1"
    assert stale.result().json()["session_id"] == "c-1"
