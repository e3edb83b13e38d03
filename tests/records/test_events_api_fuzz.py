"""No input to the event API produces a 500, and a refused call stores nothing (property tests)."""

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from records.models import Event, Session
from tests.support import EXAMPLE_CALL

URL = "/api/v1/events"

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
ENVELOPE_KEYS = ["event_id", "session_id", "type", "occurred_at", "data"]
DATA_KEYS = ["channel", "session_type", "phone_number", "queue", "customer", "agent", "url", "call_duration", "rating"]


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid example event with one envelope or data value replaced by arbitrary JSON."""
    event = copy.deepcopy(draw(st.sampled_from(EXAMPLE_CALL["events"])))
    event["event_id"] = draw(st.text(min_size=1, max_size=20))
    if draw(st.booleans()):
        event[draw(st.sampled_from(ENVELOPE_KEYS))] = draw(json_values)
    else:
        event["data"][draw(st.sampled_from(DATA_KEYS))] = draw(json_values)
    return event


fuzz = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_answered_without_500(client: APIClient, body: Any) -> None:
    events_before, sessions_before = Event.objects.count(), Session.objects.count()

    response = client.post(URL, body, format="json")

    assert response.status_code in (202, 400), response.content
    assert "message" in response.json() or response.status_code == 202
    if response.status_code == 400:
        assert (Event.objects.count(), Session.objects.count()) == (events_before, sessions_before)


@pytest.mark.django_db
@fuzz
@given(body=json_values)
def test_events_api_any_json_body_is_answered_without_500(platform_client: APIClient, body: Any) -> None:
    assert_answered_without_500(platform_client, body)


@pytest.mark.django_db
@fuzz
@given(events=st.lists(mutated_events(), min_size=1, max_size=5))
def test_events_api_mutated_events_are_answered_without_500(platform_client: APIClient, events: list) -> None:
    assert_answered_without_500(platform_client, {"events": events})
