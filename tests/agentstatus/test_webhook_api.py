"""The Kustomer status webhook end to end in-process: signed deliveries in, platform status and audit out."""

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from agentstatus.models import (
    Agent,
    AgentToken,
    PlatformStatus,
    Priority,
    ProcessedWebhookEvent,
    Source,
    StatusChange,
    StatusSyncSettings,
)
from agentstatus.services.changes import agent_status_set
from agentstatus.services.inbound import webhook_event_apply_pending
from integrations.circuit import CircuitBreaker
from integrations.webhooks import kustomer_signature
from tests.agentstatus.support import WEBHOOK_PATH, WEBHOOK_SECRET, Deliver, signed_headers, work_session_event

pytestmark = pytest.mark.django_db


def status_of(agent: Agent) -> str | None:
    agent.refresh_from_db()
    return agent.platform_status.name if agent.platform_status else None


def sign_in(deliver: Deliver, session_id: str = "ws-1", status: str = "st-busy", **kwargs: object) -> None:
    answer = deliver(
        work_session_event(name="kustomer.work-session.create", session_id=session_id, status=status, **kwargs)  # type: ignore[arg-type]
    )
    assert answer.status_code == 200, answer.body


def test_A2_a_mapped_kustomer_change_becomes_the_platform_status_at_once(ana: Agent, deliver: Deliver) -> None:
    sign_in(deliver)

    answer = deliver(work_session_event(status="st-lunch"))

    assert answer.status_code == 200
    assert answer.body == {
        "outcome": "applied",
        "reason": "Lunch → Away",
        "agent": "ana@example.com",
        "platform_status": "Away",
    }
    assert status_of(ana) == "Away"
    assert ana.status_source == Source.CRM
    change = StatusChange.objects.filter(agent=ana, applied=True).get()
    assert (change.source, change.to_status.name if change.to_status else None, change.mapping) == (
        "crm",
        "Away",
        "Lunch → Away",
    )
    assert change.crm_status is not None
    assert change.crm_status.name == "Lunch"


def test_A1_many_to_one_two_kustomer_statuses_give_the_same_platform_status(ana: Agent, deliver: Deliver) -> None:
    sign_in(deliver)

    first = deliver(work_session_event(status="st-email"))
    second = deliver(work_session_event(status="st-lunch"))

    assert (first.body["outcome"], first.body["reason"]) == ("applied", "Email work → Away")
    assert (second.body["outcome"], second.body["reason"]) == ("unchanged", "Lunch → Away: already the platform status")
    assert status_of(ana) == "Away"
    assert list(StatusChange.objects.filter(agent=ana, source="crm").values_list("mapping", flat=True)) == [
        "Lunch → Away",
        "Email work → Away",
        "",
    ]


def test_A1_an_unmapped_kustomer_status_is_recorded_and_ignored(ana: Agent, deliver: Deliver) -> None:
    sign_in(deliver)
    deliver(work_session_event(status="st-available"))

    answer = deliver(work_session_event(status="st-meeting"))
    unknown = deliver(work_session_event(status="st-brand-new"))

    assert (answer.status_code, answer.body["outcome"]) == (200, "ignored")
    assert answer.body["reason"] == "CRM status 'Meeting' is not mapped to a platform status"
    assert "unknown CRM status 'st-brand-new'" in unknown.body["reason"]
    assert status_of(ana) == "Available"
    ignored = StatusChange.objects.filter(agent=ana, applied=False).exclude(reason__contains="login")
    assert {(c.crm_status_ref, c.reason.split(":")[0]) for c in ignored} == {
        ("st-meeting", "CRM status 'Meeting' is not mapped to a platform status"),
        ("st-brand-new", "unknown CRM status 'st-brand-new'"),
    }


def test_A3_no_status_is_applied_at_login(ana: Agent, deliver: Deliver) -> None:
    answer = deliver(work_session_event(name="kustomer.work-session.create", status="st-lunch"))

    assert answer.body["outcome"] == "ignored"
    assert "no status is applied at login" in answer.body["reason"]
    assert status_of(ana) is None
    assert ana.work_sessions == {"ws-1": "st-lunch"}


@pytest.mark.parametrize(
    ("priority", "late_crm_outcome", "status_after_late_crm"),
    [(Priority.LATEST_CHANGE_WINS, "ignored", "Busy"), (Priority.CRM_OVERRIDES, "applied", "Away")],
)
def test_A2_priority_under_interleaved_crm_and_adapter_changes(
    ana: Agent,
    deliver: Deliver,
    sync_settings: StatusSyncSettings,
    platform_statuses: dict[str, PlatformStatus],
    priority: str,
    late_crm_outcome: str,
    status_after_late_crm: str,
) -> None:
    # given: the CRM set Available, then the agent picked Busy in the adapter
    sync_settings.priority = priority
    sync_settings.save()
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    sign_in(deliver, updated_at=t0)
    assert deliver(work_session_event(status="st-available", updated_at=t0 + timedelta(seconds=1))).body["outcome"] == (
        "applied"
    )
    agent_status_set(agent=ana, platform_status=platform_statuses["Busy"], source=Source.ADAPTER)
    assert status_of(ana) == "Busy"

    # when: a CRM change made before the adapter's arrives after it (a delayed delivery)
    late = deliver(work_session_event(status="st-lunch", updated_at=t0 + timedelta(seconds=10)))

    # then: latest change wins keeps the adapter's Busy; CRM always overrides applies Away
    assert late.body["outcome"] == late_crm_outcome
    assert status_of(ana) == status_after_late_crm
    if priority == Priority.LATEST_CHANGE_WINS:
        assert "the latest change wins" in late.body["reason"]

    # when: the agent changes status in Kustomer afterwards, it applies under both options
    later = deliver(work_session_event(status="st-offline", updated_at=datetime.now(UTC) + timedelta(seconds=1)))

    assert later.body["outcome"] == "applied"
    assert status_of(ana) == "Offline"
    sources = list(StatusChange.objects.filter(agent=ana, applied=True).order_by("id").values_list("source", flat=True))
    assert sources == (
        ["crm", "adapter", "crm"] if priority == Priority.LATEST_CHANGE_WINS else ["crm", "adapter", "crm", "crm"]
    )


def test_A2_an_out_of_order_kustomer_change_does_not_undo_a_later_one(ana: Agent, deliver: Deliver) -> None:
    now = datetime.now(UTC)
    sign_in(deliver, updated_at=now - timedelta(seconds=20))
    deliver(work_session_event(status="st-available", updated_at=now))

    late = deliver(work_session_event(status="st-lunch", updated_at=now - timedelta(seconds=5)))

    assert late.body["outcome"] == "ignored"
    assert "out of order" in late.body["reason"]
    assert status_of(ana) == "Available"


def test_A3_several_instances_stop_the_sync_and_one_remaining_resumes_it(
    ana: Agent, deliver: Deliver, client: Client
) -> None:
    # given: one instance, whose change applies
    sign_in(deliver, "ws-1")
    assert deliver(work_session_event(session_id="ws-1", status="st-available")).body["outcome"] == "applied"

    # when: a second tab signs in
    sign_in(deliver, "ws-2")

    # then: sync stops, visibly, and changes from either instance are not applied
    ana.refresh_from_db()
    assert ana.sync_stopped is True
    stopped = StatusChange.objects.filter(agent=ana, source=Source.SYSTEM).get()
    assert stopped.reason.startswith("sync stopped: Signed in to Kustomer in 2 places at once (ws-1, ws-2)")
    ignored = deliver(work_session_event(session_id="ws-2", status="st-lunch"))
    assert ignored.body["outcome"] == "ignored"
    assert "active in 2 CRM instances" in ignored.body["reason"]
    assert status_of(ana) == "Available"
    token = AgentToken.objects.create_key(name="t", agent=ana)[1]
    answer = client.get("/api/v1/adapter/status", HTTP_AUTHORIZATION=f"Agent-Token {token}").json()
    assert answer["sync_stopped"] is True
    assert "2 places at once" in answer["sync_stopped_reason"]

    # when: the second tab signs out
    signed_out = deliver(work_session_event(session_id="ws-2", status="st-lunch", active=False))

    # then: sync resumes without applying anything, and the next change applies
    assert signed_out.body["outcome"] == "ignored"
    ana.refresh_from_db()
    assert (ana.sync_stopped, ana.work_sessions, status_of(ana)) == (False, {"ws-1": "st-available"}, "Available")
    assert StatusChange.objects.filter(agent=ana, source=Source.SYSTEM, reason__startswith="sync resumed").exists()
    assert deliver(work_session_event(session_id="ws-1", status="st-busy")).body["outcome"] == "applied"
    assert status_of(ana) == "Busy"


def test_A3_a_lookup_waits_out_an_open_circuit_without_spending_a_lookup_or_budget(
    ana: Agent, deliver: Deliver, sync_settings: StatusSyncSettings, circuit_at_one_failure: CircuitBreaker
) -> None:
    # given: the connection's circuit opened by a run of failures (as the workers feed it)
    connection = sync_settings.connection
    assert connection is not None
    circuit_at_one_failure.record_failure(connection.base_url)
    Agent.objects.filter(pk=ana.pk).update(crm_user_id="")
    deliver(work_session_event(user_id="u-zed", status="st-busy", event_id="evt-zed"))

    retry_in = webhook_event_apply_pending(event_id="evt-zed")

    # then: back after the pause, no lookup counted, the pause kept out of its budget
    assert retry_in is not None
    assert 29.0 <= retry_in <= 31.0
    stored = ProcessedWebhookEvent.objects.get(event_id="evt-zed")
    assert stored.lookup_attempts == 0
    assert stored.lookup_paused_seconds == pytest.approx(30.0, abs=1)
    assert stored.pending_body


@pytest.mark.usefixtures("circuit_at_one_failure")
def test_A3_a_lookup_the_crm_cannot_answer_feeds_the_connections_circuit(ana: Agent, deliver: Deliver) -> None:
    # given: a circuit that opens at the first failure; the connection points at a closed port
    Agent.objects.filter(pk=ana.pk).update(crm_user_id="")
    deliver(work_session_event(user_id="u-zed", status="st-busy", event_id="evt-zed"))

    # when: the lookup fails, as any of the connection's work would
    assert webhook_event_apply_pending(event_id="evt-zed") is not None
    # then: the circuit is open, and the next try waits out its pause without a lookup
    retry_in = webhook_event_apply_pending(event_id="evt-zed")

    assert retry_in is not None
    assert 29.0 <= retry_in <= 31.0
    assert ProcessedWebhookEvent.objects.get(event_id="evt-zed").lookup_attempts == 1


def test_A1_inheritance_off_records_and_ignores(
    ana: Agent, deliver: Deliver, sync_settings: StatusSyncSettings
) -> None:
    sync_settings.inheritance_enabled = False
    sync_settings.save()

    answer = deliver(work_session_event(status="st-busy"))

    assert (answer.body["outcome"], answer.body["reason"]) == ("ignored", "status inheritance is off")
    assert status_of(ana) is None


def test_A3_an_unknown_user_is_looked_up_after_the_answer_not_before_it(
    ana: Agent, deliver: Deliver, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    # given: the test connection points at a closed port, so any CRM call would fail
    Agent.objects.filter(pk=ana.pk).update(crm_user_id="")

    # when: a delivery names a user id not known yet
    with django_capture_on_commit_callbacks() as enqueued:
        answer = deliver(work_session_event(user_id="u-zed", status="st-busy", event_id="evt-zed"))

    # then: it is acknowledged at once without asking the CRM, stored, and its lookup queued
    assert answer.status_code == 202
    assert answer.body["outcome"] == "queued"
    assert "CRM user u-zed is not known yet" in answer.body["reason"]
    assert len(enqueued) == 1
    stored = ProcessedWebhookEvent.objects.get(event_id="evt-zed")
    assert json.loads(stored.pending_body)["data"]["relationships"]["user"]["data"]["id"] == "u-zed"
    assert not StatusChange.objects.exists()

    # when: the lookup runs and the CRM cannot answer, it is tried again later, with backoff
    retry_in = webhook_event_apply_pending(event_id="evt-zed")
    assert retry_in is not None
    assert retry_in > 0
    assert ProcessedWebhookEvent.objects.get(event_id="evt-zed").lookup_attempts == 1
    assert not StatusChange.objects.exists()

    # then: once the CRM has failed it for longer than the retry budget (a day) it gives up
    # visibly, and a second copy of the task does nothing
    ProcessedWebhookEvent.objects.filter(event_id="evt-zed").update(
        received_at=datetime.now(UTC) - timedelta(days=1, seconds=1)
    )
    assert webhook_event_apply_pending(event_id="evt-zed") is None
    gave_up = StatusChange.objects.get()
    assert (gave_up.crm_user_id, gave_up.applied) == ("u-zed", False)
    assert "gave up after 2 lookups: Could not look up CRM user u-zed" in gave_up.reason
    assert gave_up.reason.endswith("(the CRM kept failing for 1 day)")
    assert ProcessedWebhookEvent.objects.get(event_id="evt-zed").pending_body == ""
    assert webhook_event_apply_pending(event_id="evt-zed") is None
    assert StatusChange.objects.count() == 1


def test_A3_a_redelivery_while_the_lookup_waits_is_acknowledged_once(ana: Agent, deliver: Deliver) -> None:
    Agent.objects.filter(pk=ana.pk).update(crm_user_id="")
    envelope = work_session_event(user_id="u-zed", status="st-busy", event_id="evt-wait")

    first, again = deliver(envelope), deliver(envelope)

    assert (first.status_code, first.body["outcome"]) == (202, "queued")
    assert (again.status_code, again.body["outcome"]) == (200, "duplicate")
    assert ProcessedWebhookEvent.objects.filter(event_id="evt-wait").count() == 1


# -- Refused deliveries: 4xx, and nothing changed -------------------------------------------------


def nothing_changed(agent: Agent) -> bool:
    agent.refresh_from_db()
    return agent.platform_status is None and not StatusChange.objects.exists() and agent.work_sessions == {}


@pytest.mark.parametrize(
    "headers_for",
    [
        lambda body: signed_headers(body, secret="a-guess"),
        lambda body: {},
        lambda body: signed_headers(body + b"tampered"),
        # What the receiver used to demand: a timestamp signed with the body. Kustomer never sends it.
        lambda body: {
            "X-Kustomer-Webhook-Timestamp": "1800000000",
            "X-Kustomer-Webhook-Signature": kustomer_signature(WEBHOOK_SECRET, b"1800000000." + body),
        },
    ],
)
def test_forged_or_unsigned_webhooks_are_401_and_change_nothing(
    ana: Agent, deliver: Deliver, headers_for: object
) -> None:
    envelope = work_session_event(status="st-busy")
    body = json.dumps(envelope).encode()

    answer = deliver(envelope, raw=body, headers=headers_for(body))  # type: ignore[operator]

    assert answer.status_code == 401
    assert "X-Kustomer-Webhook-Signature" in answer.body["errors"]
    assert nothing_changed(ana)
    assert not ProcessedWebhookEvent.objects.exists()


def test_a_delivery_is_never_refused_for_its_age_and_a_timestamp_header_is_ignored(
    ana: Agent, deliver: Deliver
) -> None:
    sign_in(deliver, updated_at=datetime.now(UTC) - timedelta(hours=1))
    # Kustomer retries for about an hour: a change made 50 minutes ago, delivered now, applies.
    envelope = work_session_event(status="st-lunch", updated_at=datetime.now(UTC) - timedelta(minutes=50))
    body = json.dumps(envelope).encode()
    headers = {**signed_headers(body), "X-Kustomer-Webhook-Timestamp": str(int(time.time()) - 86400)}

    answer = deliver(envelope, raw=body, headers=headers)

    assert (answer.status_code, answer.body["outcome"]) == (200, "applied"), answer.body
    assert status_of(ana) == "Away"


def test_a_redelivery_of_an_applied_event_answers_200_and_changes_nothing(ana: Agent, deliver: Deliver) -> None:
    sign_in(deliver)
    envelope = work_session_event(status="st-lunch", event_id="evt-once")
    body = json.dumps(envelope).encode()
    assert deliver(envelope, raw=body).body["outcome"] == "applied"
    # Something else changed the status meanwhile: a redelivery must not put Away back.
    Agent.objects.filter(pk=ana.pk).update(platform_status=None)
    changes = StatusChange.objects.count()

    redelivery = deliver(envelope, raw=body)

    assert redelivery.status_code == 200
    assert redelivery.body["outcome"] == "duplicate"
    assert redelivery.body["reason"] == "event evt-once was already received: nothing changed"
    assert status_of(ana) is None
    assert StatusChange.objects.count() == changes


def test_an_older_delivery_arriving_after_a_newer_one_does_not_override_it(ana: Agent, deliver: Deliver) -> None:
    now = datetime.now(UTC)
    sign_in(deliver, updated_at=now - timedelta(hours=2))
    newer = deliver(work_session_event(status="st-available", updated_at=now - timedelta(minutes=1)))
    assert newer.body["outcome"] == "applied"

    # Kustomer's retry of a change made an hour earlier arrives only now.
    older = deliver(work_session_event(status="st-lunch", updated_at=now - timedelta(hours=1)))

    assert (older.status_code, older.body["outcome"]) == (200, "ignored")
    assert "out of order" in older.body["reason"]
    assert status_of(ana) == "Available"


@pytest.mark.parametrize(
    "raw",
    [b'"status": "st-\\u0000busy"', b'"status": "st-\\ud83dbusy"'],
    ids=["nul", "lone-surrogate"],
)
def test_unstorable_text_in_a_signed_webhook_is_a_400_naming_the_field_never_a_500(
    ana: Agent, deliver: Deliver, raw: bytes
) -> None:
    sign_in(deliver)
    before = StatusChange.objects.count()
    body = json.dumps(work_session_event(status="st-busy")).encode().replace(b'"status": "st-busy"', raw)

    answer = deliver({}, raw=body)

    assert answer.status_code == 400
    assert list(answer.body["errors"]) == ["data.attributes.status"]
    assert "are not allowed" in answer.body["message"]
    assert StatusChange.objects.count() == before
    assert ProcessedWebhookEvent.objects.count() == 1  # the sign-in only


def test_a_nul_in_the_event_id_of_an_unknown_user_is_refused_before_anything_is_stored(
    ana: Agent, deliver: Deliver
) -> None:
    envelope = work_session_event(user_id="u-zed", event_id="evt-1")
    body = json.dumps(envelope).encode().replace(b'"evt-1"', b'"evt\\u0000"')

    answer = deliver({}, raw=body)

    assert (answer.status_code, list(answer.body["errors"])) == (400, ["id"])
    assert not ProcessedWebhookEvent.objects.exists()


def test_a_malformed_event_is_refused_naming_the_field(ana: Agent, deliver: Deliver) -> None:
    envelope = work_session_event()
    del envelope["data"]["attributes"]["status"]

    answer = deliver(envelope)

    assert answer.status_code == 400
    assert list(answer.body["errors"]) == ["data.attributes.status"]
    assert nothing_changed(ana)


def test_without_a_configured_secret_every_delivery_is_refused(
    ana: Agent, deliver: Deliver, sync_settings: StatusSyncSettings
) -> None:
    sync_settings.set_webhook_secret("")
    sync_settings.save()

    answer = deliver(work_session_event(status="st-busy"))

    assert answer.status_code == 403
    assert "No status webhook secret is configured" in answer.body["message"]
    assert nothing_changed(ana)


def test_a_non_json_body_is_a_400_not_a_500(ana: Agent, deliver: Deliver) -> None:
    answer = deliver({}, raw=b"\xff\xfe not json")

    assert (answer.status_code, list(answer.body["errors"])) == (400, ["body"])


def test_other_kustomer_events_are_acknowledged_and_ignored(ana: Agent, client: Client) -> None:
    body = json.dumps({"id": "evt-conv", "name": "kustomer.conversation.update", "data": {}}).encode()

    response = client.post(WEBHOOK_PATH, data=body, content_type="application/json", headers=signed_headers(body))

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert nothing_changed(ana)
