from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_api_key.models import AbstractAPIKey

from config.exceptions import ApplicationError
from records.api.auth import HasPlatformApiKey, PlatformApiKeyAuthentication
from records.api.serializers import (
    EventBatchSerializer,
    EventsAcceptedSerializer,
    EventSerializer,
    validate_events,
)
from records.services.ingest import events_ingest

EXAMPLE_EVENT = {
    "event_id": "a1",
    "session_id": "c-1",
    "type": "session.created",
    "occurred_at": "2026-11-20T09:00:00Z",
    "data": {
        "channel": "voice",
        "session_type": "voice_inbound_ivr",
        "language": "en",
        "queue": {"id": "q-billing", "name": "Billing", "path": ["Support", "Billing"]},
        "menu_path": "Support > Billing",
        "phone_number": "+14155550100",
    },
}


class EventsIngestApi(APIView):
    """The contact-center platform posts session events here (shared/EVENTS.md)."""

    authentication_classes = [PlatformApiKeyAuthentication]
    permission_classes = [HasPlatformApiKey]

    @extend_schema(
        operation_id="events_ingest",
        summary="Post one session event or a batch of up to 500",
        description=(
            'Body: one event object, or `{"events": [...]}`. Every event is validated first; if any '
            "is invalid the answer is 400 with per-event, per-field messages and nothing is stored. "
            "Otherwise all are stored before the 202. A repeated `event_id` is acknowledged as a "
            "duplicate and never applied twice. Events of one session may arrive out of order: "
            "`occurred_at` orders them. Keys beyond the contract are accepted and kept."
        ),
        request=PolymorphicProxySerializer(
            component_name="EventOrBatch",
            serializers=[EventSerializer, EventBatchSerializer],
            resource_type_field_name=None,
        ),
        responses={
            202: EventsAcceptedSerializer,
            400: OpenApiResponse(description="Malformed JSON, or invalid events (each named with its fields)."),
            401: OpenApiResponse(description="No or invalid Api-Key."),
            413: OpenApiResponse(description="The body is over API_MAX_BODY_BYTES."),
        },
        examples=[OpenApiExample("One event", value=EXAMPLE_EVENT, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        raw_events = _raw_events(request.data)
        events, errors = validate_events(raw_events)
        if errors:
            raise ApplicationError(
                f"{len(errors)} of {len(raw_events)} event(s) are invalid; nothing was stored.", errors=errors
            )
        result = events_ingest(events=events)
        return Response({"accepted": result.accepted, "duplicates": result.duplicates}, status=status.HTTP_202_ACCEPTED)


def _raw_events(body: Any) -> list[Any]:
    if isinstance(body, dict) and "events" in body:
        events = body["events"]
        if not isinstance(events, list):
            raise ApplicationError("Invalid batch.", errors={"events": ["Expected a list of events."]})
        if not events:
            raise ApplicationError("Invalid batch.", errors={"events": ["The batch is empty."]})
        if len(events) > settings.EVENTS_BATCH_MAX:
            raise ApplicationError(
                "Invalid batch.",
                errors={"events": [f"At most {settings.EVENTS_BATCH_MAX} events per batch; got {len(events)}."]},
            )
        return events
    if isinstance(body, dict):
        return [body]
    raise ApplicationError(
        'Expected one event object or {"events": [...]}.', errors={"body": ["Expected a JSON object."]}
    )


class PingApi(APIView):
    """Lets the platform check its key; also the benchmark's baseline of an authenticated DRF call."""

    authentication_classes = [PlatformApiKeyAuthentication]
    permission_classes = [HasPlatformApiKey]

    @extend_schema(
        operation_id="ping",
        summary="Check the platform API key",
        responses={200: OpenApiResponse(description='`{"ok": true, "key": "<key name>"}`'), 401: None},
    )
    def get(self, request: Request) -> Response:
        api_key = request.auth
        assert isinstance(api_key, AbstractAPIKey)
        return Response({"ok": True, "key": api_key.name})
