"""Leases on the database's clock, with an owner token: only the holder renews or releases its own."""

import uuid
from datetime import datetime, timedelta

import pytest
from django.db.models.functions import Now
from django.utils import timezone

from records.models import Session
from records.services.execution import session_run_actions
from records.services.leases import (
    SESSION_LEASE_SECONDS,
    SessionLease,
    db_now,
    db_now_plus,
    session_lease_claim,
    session_lease_release,
    session_lease_remaining,
    session_lease_renew,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def session() -> Session:
    return Session.objects.create(external_id="s-lease")


@pytest.fixture
def host_clock_an_hour_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """This host's clock is an hour off: nothing about a lease may depend on it."""
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(hours=1))


def test_one_claimer_at_a_time_and_a_second_one_cannot_renew_or_release_the_first_ones(session: Session) -> None:
    first = session_lease_claim(session.pk)
    assert first is not None

    assert session_lease_claim(session.pk) is None
    # A worker whose own claim has since been taken over still holds its old token.
    stale = SessionLease(session.pk, owner=uuid.uuid4())
    assert session_lease_renew(stale) is False
    assert session_lease_release(stale) is False
    session.refresh_from_db()
    assert session.actions_lease_owner == first.owner
    assert session.actions_lease_until is not None

    assert session_lease_renew(first) is True
    assert session_lease_release(first) is True
    session.refresh_from_db()
    assert (session.actions_lease_until, session.actions_lease_owner) == (None, None)


def test_an_expired_lease_is_taken_over_and_its_old_holder_can_no_longer_touch_it(session: Session) -> None:
    dead = session_lease_claim(session.pk)
    assert dead is not None
    Session.objects.filter(pk=session.pk).update(actions_lease_until=db_now_plus(-1))

    taker = session_lease_claim(session.pk)

    assert taker is not None
    assert taker.owner != dead.owner
    assert session_lease_renew(dead) is False
    assert session_lease_release(dead) is False
    assert session_lease_remaining(session.pk) == pytest.approx(SESSION_LEASE_SECONDS, abs=5)


def test_the_lease_is_short_and_on_the_database_clock(session: Session, host_clock_an_hour_ahead: None) -> None:
    lease = session_lease_claim(session.pk)
    assert lease is not None
    session.refresh_from_db()
    assert session.actions_lease_until is not None
    left = (session.actions_lease_until - db_now()).total_seconds()
    assert 0 < left <= SESSION_LEASE_SECONDS
    # Another host an hour ahead does not see the live lease as expired.
    assert session_lease_claim(session.pk) is None


def test_a_task_meeting_a_live_lease_comes_back_just_after_it_expires(session: Session) -> None:
    holder = session_lease_claim(session.pk)
    assert holder is not None

    result = session_run_actions(session_id=session.pk)

    assert result.executed == 0
    assert result.retry_in is not None
    assert SESSION_LEASE_SECONDS - 5 < result.retry_in <= SESSION_LEASE_SECONDS + 2
    session.refresh_from_db()
    assert session.actions_lease_owner == holder.owner


def test_a_clean_run_releases_the_lease(session: Session) -> None:
    session_run_actions(session_id=session.pk)

    session.refresh_from_db()
    assert (session.actions_lease_until, session.actions_lease_owner) == (None, None)


def test_db_now_is_the_database_clock_not_the_hosts(host_clock_an_hour_ahead: None) -> None:
    database = Session.objects.annotate(at=Now()).values_list("at", flat=True)
    Session.objects.create(external_id="s-clock")
    [at] = list(database)
    assert isinstance(at, datetime)
    assert abs((db_now() - at).total_seconds()) < 60
    assert (timezone.now() - db_now()).total_seconds() > 3000
