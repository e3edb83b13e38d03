"""After a CRM outage: the admin sees it on the home page, replays the failed actions, and every
session ends complete with nothing created twice. Real worker, real HTTP, the sandbox read back."""

from collections import Counter
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from records.console import SessionState
from records.models import CrmAction, Replay, Session
from records.selectors import sessions_in_state
from tests.records.scenario import T0, Call
from tests.support import connection_retry_budget, sandbox_config, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

SESSIONS = 6


def post(live_server: Any, api_key: str, calls: list[Call]) -> None:
    events = [event for call in calls for event in call.events]
    response = requests.post(
        f"{live_server.url}/api/v1/events",
        json={"events": events},
        headers={"Authorization": f"Api-Key {api_key}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text


def test_outage_seen_on_home_replayed_from_the_admin_and_nothing_created_twice(
    live_server: Any,
    api_key: str,
    zendesk_connection: CrmConnection,
    zendesk_sandbox: SandboxServer,
    zendesk_api: requests.Session,
) -> None:
    # given: the CRM fails every request for longer than the connection's retry budget (3 s here)
    connection_retry_budget(zendesk_connection, 3)
    sandbox_config(zendesk_sandbox, fail_rate=1.0)
    calls = [
        Call(f"out-{n}", phone=f"+1415555{n:04d}", start=T0 + timedelta(minutes=n)).answered().ended()
        for n in range(SESSIONS)
    ]
    started = timezone.now() - timedelta(minutes=1)
    post(live_server, api_key, calls)

    def contact_lookups_failed() -> bool:
        return CrmAction.objects.filter(kind="ensure_contact", status=CrmAction.Status.FAILED).count() == SESSIONS

    wait_until(contact_lookups_failed, timeout=90, message="every contact lookup to give up during the outage")

    # when: the admin looks at the home page
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    home = admin.get("/admin/").content.decode()

    # then the outage is on it: failed actions, blocked sessions, faults
    assert f'?status__exact=failed">{SESSIONS}</a>' in home
    assert f'?state=blocked">{SESSIONS}</a>' in home
    assert "Faults (timeouts, connection errors, 5xx)" in home
    assert sessions_in_state(Session.objects.all(), SessionState.BLOCKED).count() == SESSIONS

    # when the CRM is back (still flaky: some writes are applied but answered 500) and the admin
    # replays, with the connection's full budget again
    connection_retry_budget(zendesk_connection, None)
    sandbox_config(zendesk_sandbox, fail_rate=0.1, lost_response_rate=0.2, seed=13)
    window = timezone.localtime(started), timezone.localtime() + timedelta(minutes=1)
    query = urlencode(
        {
            "connection": zendesk_connection.pk,
            "since_0": f"{window[0]:%Y-%m-%d}",
            "since_1": f"{window[0]:%H:%M:%S}",
            "until_0": f"{window[1]:%Y-%m-%d}",
            "until_1": f"{window[1]:%H:%M:%S}",
        }
    )
    preview = admin.get(f"/admin/records/crmaction/replay/?{query}").content.decode()
    assert f"{SESSIONS} failed actions in {SESSIONS} sessions" in preview
    admin.post(f"/admin/records/crmaction/replay/?{query}", {"_replay": "1"})
    replay = Replay.objects.get()

    def replay_finished() -> bool:
        page = admin.get(f"/admin/records/crmaction/replay/{replay.pk}/").content.decode()
        return 'data-finished="yes"' in page and not CrmAction.objects.filter(status="pending").exists()

    wait_until(replay_finished, timeout=120, message="the replay to finish")

    # then every session is complete, and the CRM holds one record per session and no repeated comment
    assert not CrmAction.objects.exclude(status__in=["succeeded", "skipped"]).exists()
    assert sessions_in_state(Session.objects.all(), SessionState.DONE).count() == SESSIONS
    sandbox_config(zendesk_sandbox, fail_rate=0, lost_response_rate=0)
    for call in calls:
        found = zendesk_api.get(
            f"{zendesk_sandbox.base_url}/api/v2/tickets.json", params={"external_id": call.session_id}
        ).json()
        assert found["count"] == 1, (call.session_id, found)
        ticket_id = found["tickets"][0]["id"]
        bodies = [
            comment["body"]
            for comment in zendesk_api.get(
                f"{zendesk_sandbox.base_url}/api/v2/tickets/{ticket_id}/comments.json"
            ).json()["comments"]
        ]
        assert [body for body, count in Counter(bodies).items() if count > 1] == [], call.session_id
        users = zendesk_api.get(
            f"{zendesk_sandbox.base_url}/api/v2/users/search.json", params={"query": f"phone:{call.phone}"}
        ).json()["users"]
        assert len(users) == 1, (call.session_id, users)
    progress = admin.get(f"/admin/records/crmaction/replay/{replay.pk}/").content.decode()
    assert f'id="replay-succeeded">{SESSIONS}<' in progress
