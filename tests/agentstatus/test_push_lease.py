"""A push's attempt lease: on the database's clock, and only its holder records the outcome."""

from datetime import timedelta

import pytest

from agentstatus.models import Agent, CrmStatus, PlatformStatus, StatusPush
from agentstatus.services.push import attempt_lease_seconds, pushes_needing_work, status_push_claim, status_push_fail
from records.services.leases import db_now, db_now_plus

pytestmark = pytest.mark.django_db


@pytest.fixture
def push(platform_statuses: dict[str, PlatformStatus], mapping: dict[str, CrmStatus]) -> StatusPush:
    agent = Agent.objects.create(email="ana@example.com")
    return StatusPush.objects.create(
        agent=agent, platform_status=platform_statuses["Busy"], crm_status=mapping["st-busy"]
    )


def test_a_claimed_push_is_not_due_for_another_worker_until_its_lease_lapses(push: StatusPush) -> None:
    first, _ = status_push_claim(push_id=push.pk)
    assert first is not None
    assert first.next_attempt_at is not None
    assert 0 < (first.next_attempt_at - db_now()).total_seconds() <= attempt_lease_seconds()

    second, due_in = status_push_claim(push_id=push.pk)

    assert second is None
    assert due_in is not None
    assert 0 < due_in <= attempt_lease_seconds()


def test_a_worker_that_outlived_its_lease_cannot_record_over_the_new_holders_attempt(push: StatusPush) -> None:
    stalled, _ = status_push_claim(push_id=push.pk)
    assert stalled is not None
    StatusPush.objects.filter(pk=push.pk).update(next_attempt_at=db_now_plus(-1))
    assert pushes_needing_work(stale_after=timedelta(0)) == [push.pk]
    taker, _ = status_push_claim(push_id=push.pk)
    assert taker is not None
    assert taker.lease_owner != stalled.lease_owner

    status_push_fail(push=stalled, error="the stalled worker's late outcome")

    push.refresh_from_db()
    assert push.state == StatusPush.State.PENDING
    assert push.lease_owner == taker.lease_owner
    status_push_fail(push=taker, error="the holder's outcome")
    push.refresh_from_db()
    assert push.state == StatusPush.State.FAILED
    assert push.last_error == "the holder's outcome"
