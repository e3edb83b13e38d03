"""O1-O3 end to end: the adapter's prepare and start over HTTP, a real worker, the CRM read back through its API.

Each case of the seed (004 "flexible outbound", "team-based outbound ticket entry"; 002 click-to-call)
runs on Zendesk and Kustomer unless the CRM itself makes it impossible (said where so).
"""

from typing import Any

import pytest
import requests

from agentstatus.models import Agent
from records.models import Event, Queue, Session, Team
from tests.adapter.support import PHONE, AdapterProduct, outbound_events
from tests.records.scenario import Call

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

PROMPT_ALL = {
    "outbound_prompt_record_choice": True,
    "outbound_allow_create_new": True,
    "outbound_allow_no_record": True,
    "outbound_allow_entered_number": True,
}


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def team_agent(product: AdapterProduct, *, required: bool, number: str = "+18005550199") -> None:
    """Ben's team enters ticket IDs (O3); its queue has a default outbound number."""
    team = Team.objects.create(name="Escalations", enable_ticket_id=True, ticket_id_required=required)
    queue = Queue.objects.create(platform_id="q-esc", name="Escalations", default_outbound_number=number)
    queue.teams.add(team)
    Agent.objects.create(email="ben@example.com", team=team)


# -- From a contact's number, the dialpad, a record's Call button -------------------------------


def test_dialpad_number_of_no_contact_creates_the_contact_and_a_new_record(product: AdapterProduct) -> None:
    prepared = ok(product.prepare(phone_number="+14155550177", origin="dialpad"))

    assert prepared["contacts"] == []
    assert prepared["contact_id"] is None
    assert prepared["open_records"] == []
    assert prepared["record_id"] is None
    assert prepared["must_choose"] == []
    assert prepared["warnings"] == ["No contact has this number: the call creates one."]

    started = ok(product.start(session_id="out-1", phone_number="+14155550177", record_choice="new"), 201)
    assert started == {
        "session_id": "out-1",
        "record_id": None,
        "record_url": None,
        "contact_id": None,
        "pending": True,
    }
    product.settle()

    record = product.crm.record_for("out-1")
    assert record["subject"] == "Outbound Call from +14155550177"
    assert product.contact_phone(record["requester_id"]) == "+14155550177"


def test_click_to_call_one_contact_no_open_record_makes_a_new_record_on_that_contact(product: AdapterProduct) -> None:
    contact = product.contact("Ann Lee")
    product.record(contact, "Old", status=product.crm.solved)

    prepared = ok(product.prepare(phone_number=PHONE, origin="contact"))

    assert [item["id"] for item in prepared["contacts"]] == [contact]
    assert prepared["contacts"][0]["name"] == "Ann Lee"
    assert prepared["contact_id"] == contact
    assert prepared["open_records"] == []
    assert prepared["record_id"] is None
    assert prepared["must_choose"] == []

    ok(product.start(session_id="out-1", phone_number=PHONE, contact_id=contact, record_choice="new"), 201)
    product.settle()
    record = product.crm.record_for("out-1")
    assert record["requester_id"] == contact
    assert Session.objects.get(external_id="out-1").actions.get(kind="create_record").reason.endswith("new record")


def test_prompt_off_the_most_recent_open_record_is_used(product: AdapterProduct) -> None:
    contact = product.contact("Ann Lee")
    older = product.record(contact, "Older", minutes_ago=30)
    newest = product.record(contact, "Newest", minutes_ago=1)

    prepared = ok(product.prepare(phone_number=PHONE))

    assert prepared["record_id"] == newest
    assert [record["id"] for record in prepared["open_records"]] == [newest, older]
    assert prepared["must_choose"] == []
    assert prepared["options"] == {
        "choose_record": False,
        "create_new": False,
        "no_record": False,
        "use_entered_number": False,
        "ticket_id": "off",
    }
    started = ok(
        product.start(
            session_id="out-1", phone_number=PHONE, contact_id=contact, record_choice="existing", record_id=newest
        ),
        201,
    )
    assert started["record_id"] == newest
    assert started["pending"] is False
    assert started["record_url"] == prepared["open_records"][0]["url"]
    product.settle()
    assert any(body.startswith("Session out-1 added to this record.") for body in product.record_bodies(newest))
    assert Session.objects.get(external_id="out-1").crm_record_id == newest


def test_prompt_on_several_open_records_the_agent_picks_an_older_one(product: AdapterProduct) -> None:
    product.configure(outbound_prompt_record_choice=True)
    contact = product.contact("Ann Lee")
    older = product.record(contact, "Older", minutes_ago=30)
    newest = product.record(contact, "Newest", minutes_ago=1)

    prepared = ok(product.prepare(phone_number=PHONE))

    assert prepared["must_choose"] == ["record"]
    assert prepared["record_id"] == newest
    assert prepared["options"]["choose_record"] is True
    assert prepared["options"]["create_new"] is False

    ok(
        product.start(
            session_id="out-1", phone_number=PHONE, contact_id=contact, record_choice="existing", record_id=older
        ),
        201,
    )
    product.settle()
    assert any(body.startswith("Session out-1 added to this record.") for body in product.record_bodies(older))
    assert not any("out-1" in body for body in product.record_bodies(newest))


def test_prompt_on_one_open_record_create_new_is_offered_and_taken(product: AdapterProduct) -> None:
    product.configure(outbound_prompt_record_choice=True, outbound_allow_create_new=True)
    contact = product.contact("Ann Lee")
    only = product.record(contact, "Only one")

    prepared = ok(product.prepare(phone_number=PHONE))
    assert prepared["must_choose"] == ["record"]
    assert prepared["record_id"] == only
    assert prepared["options"]["create_new"] is True

    ok(product.start(session_id="out-1", phone_number=PHONE, contact_id=contact, record_choice="new"), 201)
    product.settle()
    record = product.crm.record_for("out-1")
    assert record["id"] != only
    assert record["requester_id"] == contact


# Kustomer's number lookup (GET /v1/customers/phone=...) answers one customer: "several" is Zendesk's case.
@pytest.mark.parametrize("product", ["zendesk"], indirect=True)
def test_several_contacts_share_the_number_the_agent_picks_one(product: AdapterProduct) -> None:
    first = product.contact("Ann Lee")
    second = product.contact("Bob Lee")
    record = product.record(second, "Bob's open ticket")

    prepared = ok(product.prepare(phone_number=PHONE, origin="dialpad"))
    assert sorted(item["id"] for item in prepared["contacts"]) == sorted([first, second])
    assert prepared["contact_id"] is None
    assert prepared["must_choose"] == ["contact"]
    assert prepared["open_records"] == []

    picked = ok(product.prepare(contact_id=second, origin="contact"))
    assert picked["contact_id"] == second
    assert picked["record_id"] == record
    assert picked["phone_number"] == PHONE

    ok(
        product.start(
            session_id="out-1", phone_number=PHONE, contact_id=second, record_choice="existing", record_id=record
        ),
        201,
    )
    product.settle()
    assert Session.objects.get(external_id="out-1").crm_contact_id == second
    assert any(body.startswith("Session out-1 added to this record.") for body in product.record_bodies(record))


@pytest.mark.parametrize("product", ["kustomer"], indirect=True)
def test_kustomer_keeps_one_customer_per_number_so_the_agent_never_picks_among_several(product: AdapterProduct) -> None:
    ann = product.contact("Ann Lee")
    with pytest.raises(requests.HTTPError, match="409"):
        product.contact("Bob Lee")

    prepared = ok(product.prepare(phone_number=PHONE, origin="contact"))

    assert [item["id"] for item in prepared["contacts"]] == [ann]
    assert prepared["must_choose"] == []


def test_call_button_on_a_record_logs_the_call_there(product: AdapterProduct) -> None:
    contact = product.contact("Ann Lee")
    product.record(contact, "Newest", minutes_ago=1)
    clicked = product.record(contact, "The one clicked", minutes_ago=20)

    prepared = ok(product.prepare(record_id=clicked, origin="record"))

    assert prepared["contact_id"] == contact
    assert prepared["record_id"] == clicked
    assert prepared["phone_number"] == PHONE
    assert prepared["must_choose"] == []
    ok(
        product.start(
            session_id="out-1", phone_number=PHONE, contact_id=contact, record_choice="existing", record_id=clicked
        ),
        201,
    )
    product.settle()
    assert any(body.startswith("Session out-1 added to this record.") for body in product.record_bodies(clicked))


def test_use_the_entered_number_dials_it_comments_it_and_leaves_the_contact_alone(product: AdapterProduct) -> None:
    product.configure(outbound_allow_entered_number=True)
    contact = product.contact("Ann Lee")
    record = product.record(contact, "Site visit")

    prepared = ok(product.prepare(record_id=record, entered_number="+442071838799", origin="record"))
    assert prepared["phone_number"] == "+442071838799"
    assert prepared["contact_id"] == contact
    assert prepared["record_id"] == record
    assert prepared["options"]["use_entered_number"] is True

    body: dict[str, Any] = {
        "contact_id": contact,
        "record_choice": "existing",
        "record_id": record,
        "entered_number": True,
    }
    ok(product.start(session_id="out-1", phone_number="+442071838799", **body), 201)
    product.settle()
    assert "Dialed number: +442071838799" in product.record_bodies(record)
    assert product.contact_phone(contact) == PHONE


def test_do_not_create_a_record_when_allowed(product: AdapterProduct) -> None:
    product.configure(outbound_allow_no_record=True)
    contact = product.contact("Ann Lee")
    open_one = product.record(contact, "Open")

    prepared = ok(product.prepare(phone_number=PHONE))
    assert prepared["options"]["no_record"] is True

    started = ok(product.start(session_id="out-1", phone_number=PHONE, contact_id=contact, record_choice="none"), 201)
    assert started["record_id"] is None
    assert started["pending"] is False
    product.settle()
    assert Session.objects.get(external_id="out-1").crm_record_id == ""
    assert not any("out-1" in body for body in product.record_bodies(open_one))


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"record_choice": "none"}, "record_choice", "not_allowed"),
        ({"record_choice": "new"}, "record_choice", "not_allowed"),
        ({"record_choice": "existing", "entered_number": True}, "entered_number", "not_allowed"),
    ],
)
def test_choices_the_settings_do_not_allow_are_refused(
    product: AdapterProduct, body: dict[str, Any], field: str, code: str
) -> None:
    contact = product.contact("Ann Lee")
    record = product.record(contact, "Open")

    response = product.start(session_id="out-1", phone_number=PHONE, contact_id=contact, record_id=record, **body)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert field in response.json()["errors"]
    assert not Session.objects.filter(external_id="out-1").exists()


def test_entered_number_refused_at_prepare_when_not_allowed(product: AdapterProduct) -> None:
    contact = product.contact("Ann Lee")

    response = product.prepare(contact_id=contact, entered_number="+442071838799")

    assert response.status_code == 422
    assert response.json()["code"] == "not_allowed"
    assert "entered_number" in response.json()["errors"]


# -- Team ticket-ID entry (O3) -------------------------------------------------------------------


def test_ticket_id_optional_looks_up_the_requesters_phone_and_logs_on_the_ticket(product: AdapterProduct) -> None:
    team_agent(product, required=False)
    product.configure(**PROMPT_ALL)
    contact = product.contact("Ann Lee")
    ticket = product.record(contact, "Escalated", status="open")

    prepared = ok(product.prepare(ticket_id=ticket))

    assert prepared["phone_number"] == PHONE
    assert prepared["contact_id"] == contact
    assert prepared["record_id"] == ticket
    assert prepared["options"]["ticket_id"] == "optional"
    # "Enter a new number" is incompatible with ticket-ID entry, whatever the setting says.
    assert prepared["options"]["use_entered_number"] is False
    assert prepared["outbound_number"] == "+18005550199"
    body = {"contact_id": contact, "record_choice": "existing", "record_id": ticket}
    ok(product.start(session_id="out-1", phone_number=PHONE, **body), 201)
    product.settle()
    assert any(body.startswith("Session out-1 added to this record.") for body in product.record_bodies(ticket))
    # The queue's outbound number is the call's "from" (F2's from phone number, the dialed_number).
    assert Session.objects.get(external_id="out-1").state["dialed_number"] == "+18005550199"


def test_ticket_id_optional_the_dialpad_still_works(product: AdapterProduct) -> None:
    team_agent(product, required=False)

    prepared = ok(product.prepare(phone_number="+14155550177", origin="dialpad"))

    assert prepared["options"]["ticket_id"] == "optional"
    assert prepared["contacts"] == []


def test_ticket_id_reads_the_number_from_the_configured_contact_field(product: AdapterProduct) -> None:
    team_agent(product, required=True)
    field = "site_phone" if product.kind == "zendesk" else "sitePhoneStr"
    product.configure(outbound_ticket_phone_field=field)
    contact = product.contact("Ann Lee", **{field: "+442071838750"})
    ticket = product.record(contact, "Site")

    prepared = ok(product.prepare(ticket_id=ticket))

    assert prepared["phone_number"] == "+442071838750"
    assert prepared["record_id"] == ticket


def test_ticket_id_required_a_dialpad_call_without_one_is_a_400_naming_ticket_id(product: AdapterProduct) -> None:
    team_agent(product, required=True)

    response = product.prepare(phone_number=PHONE, origin="dialpad")

    assert response.status_code == 400
    assert "ticket_id" in response.json()["errors"]


def test_ticket_id_required_start_must_use_the_ticket(product: AdapterProduct) -> None:
    team_agent(product, required=True)
    product.configure(**PROMPT_ALL)
    contact = product.contact("Ann Lee")

    response = product.start(session_id="out-1", phone_number=PHONE, contact_id=contact, record_choice="new")

    assert response.status_code == 422
    assert response.json()["code"] == "ticket_id_required"


@pytest.mark.parametrize("mode_required", [False, True])
def test_a_solved_or_closed_ticket_is_refused(product: AdapterProduct, mode_required: bool) -> None:
    team_agent(product, required=mode_required)
    contact = product.contact("Ann Lee")
    solved = product.record(contact, "Done", status=product.crm.solved)

    response = product.prepare(ticket_id=solved)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "record_closed"
    assert "ticket_id" in response.json()["errors"]


# Zendesk's closed status (Kustomer's conversations are open, snoozed or done).
@pytest.mark.parametrize("product", ["zendesk"], indirect=True)
def test_a_closed_zendesk_ticket_is_refused_from_the_call_button_too(product: AdapterProduct) -> None:
    contact = product.contact("Ann Lee")
    closed = product.record(contact, "Closed", status="closed")

    response = product.prepare(record_id=closed, origin="record")

    assert response.status_code == 422
    assert response.json()["code"] == "record_closed"


@pytest.mark.parametrize(
    "body",
    [
        {"phone_number": PHONE, "origin": "contact"},
        {"contact_id": "CONTACT"},
        {"record_id": "RECORD", "entered_number": "+442071838799", "origin": "record"},
    ],
    ids=["click-to-call-from-contact", "contact-card", "enter-a-new-number"],
)
def test_ticket_id_mode_refuses_click_to_call_from_a_contact_and_a_new_number(
    product: AdapterProduct, body: dict[str, Any]
) -> None:
    team_agent(product, required=False)
    product.configure(outbound_allow_entered_number=True)
    contact = product.contact("Ann Lee")
    record = product.record(contact, "Open")
    body = {key: {"CONTACT": contact, "RECORD": record}.get(value, value) for key, value in body.items()}

    response = product.prepare(**body)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "incompatible_with_ticket_id_mode"


@pytest.mark.parametrize("product", ["zendesk"], indirect=True)
def test_ticket_id_optional_a_contact_picked_among_a_dialed_numbers_is_no_click_to_call(
    product: AdapterProduct,
) -> None:
    team_agent(product, required=False)
    product.contact("Ann Lee")
    bob = product.contact("Bob Lee")
    assert ok(product.prepare(phone_number=PHONE, origin="dialpad"))["must_choose"] == ["contact"]

    picked = ok(product.prepare(contact_id=bob, origin="dialpad"))

    assert picked["contact_id"] == bob
    assert picked["must_choose"] == []


def test_ticket_id_mode_the_call_button_fills_the_ticket_id(product: AdapterProduct) -> None:
    team_agent(product, required=True)
    contact = product.contact("Ann Lee")
    record = product.record(contact, "Open")

    prepared = ok(product.prepare(record_id=record, origin="record"))

    assert prepared["record_id"] == record
    assert prepared["phone_number"] == PHONE


# -- start and the platform's outbound.started agree ---------------------------------------------


def test_start_and_the_platforms_outbound_started_apply_once(product: AdapterProduct) -> None:
    contact = product.contact("Ann Lee")
    record = product.record(contact, "Open")
    body = {"contact_id": contact, "record_choice": "existing", "record_id": record}
    ok(product.start(session_id="out-1", phone_number=PHONE, **body), 201)
    product.settle()

    product.post_events(outbound_events("out-1", contact_id=contact, record_id=record, choice="existing"))
    product.settle()

    session = Session.objects.get(external_id="out-1")
    assert session.crm_record_id == record
    assert session.actions.filter(kind="create_record").count() == 1
    added = [body for body in product.record_bodies(record) if body.startswith("Session out-1 added")]
    assert len(added) == 1
    platform = Event.objects.get(event_id="out-1-platform-started")
    assert "already requested (the adapter's start): applied once" in platform.outcome
    # Starting again (the adapter retried) stores nothing new.
    ok(product.start(session_id="out-1", phone_number=PHONE, **body), 201)
    assert session.events.count() == 4


# -- Bad input, other agents ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("outbound/prepare", {}, "phone_number"),
        ("outbound/prepare", {"phone_number": "4155550100"}, "phone_number"),
        ("outbound/prepare", {"phone_number": PHONE, "contact_id": "1"}, "contact_id"),
        ("outbound/prepare", {"phone_number": PHONE, "origin": "fax"}, "origin"),
        ("outbound/start", {"phone_number": PHONE, "record_choice": "new"}, "session_id"),
        ("outbound/start", {"session_id": "s", "phone_number": PHONE, "record_choice": "maybe"}, "record_choice"),
        ("outbound/start", {"session_id": "s", "phone_number": PHONE, "record_choice": "existing"}, "record_id"),
        ("outbound/start", {"session_id": "s", "phone_number": "+1", "record_choice": "new"}, "phone_number"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(product: AdapterProduct, path: str, body: Any, field: str) -> None:
    response = product.call("POST", path, json=body)

    assert response.status_code == 400, response.text
    assert field in response.json()["errors"]
    assert not Session.objects.exists()


def test_no_or_a_wrong_token_is_refused(product: AdapterProduct) -> None:
    for headers in ({}, {"Authorization": "Agent-Token nope.nope"}):
        response = requests.post(
            f"{product.url}/api/v1/adapter/outbound/prepare", json={"phone_number": PHONE}, headers=headers, timeout=10
        )
        assert response.status_code == 401


def test_another_agents_token_cannot_act_for_this_agents_call(product: AdapterProduct) -> None:
    contact = product.contact("Ann Lee")
    ok(product.start(session_id="out-1", phone_number=PHONE, contact_id=contact, record_choice="new"), 201)
    product.settle()

    taken = product.start(agent="carla@example.com", session_id="out-1", phone_number=PHONE, record_choice="new")
    assert taken.status_code == 409
    assert taken.json()["code"] == "session_taken"
    assert product.call("GET", "sessions/out-1", agent="carla@example.com").status_code == 404

    mine = ok(product.call("GET", "sessions/out-1"))
    assert mine["record_id"] == product.crm.record_for("out-1")["id"]
    assert mine["contact_id"] == contact
    assert mine["answering_agent"] == "ben@example.com"
    assert {action["kind"] for action in mine["actions"]} >= {"ensure_contact", "create_record"}
    assert all(action["status"] == "succeeded" for action in mine["actions"])

    # An inbound call Ana answered is not Ben's to start either.
    product.post_events(Call("c-9").answered("ana@example.com").events)
    product.settle()
    inbound = product.start(session_id="c-9", phone_number=PHONE, record_choice="new")
    assert inbound.status_code == 409
    assert inbound.json()["code"] == "session_taken"
