"""The adapter API beyond status (ADAPTER.md): outbound prepare and start, screen pop, sessions. Thin views."""

from dataclasses import asdict, fields
from typing import Any

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from adapter.api.serializers import (
    PrepareInputSerializer,
    PrepareOutputSerializer,
    ScreenPopSerializer,
    SessionSerializer,
    StartInputSerializer,
    StartOutputSerializer,
)
from agentstatus.api.auth import AgentTokenAuthentication, HasAgentToken
from agentstatus.models import AgentToken
from config.exceptions import ApplicationError
from integrations.exceptions import (
    CrmAuthError,
    CrmConfigurationError,
    CrmError,
    CrmRateLimited,
    CrmTransientError,
    CrmUnsupported,
)
from records.selectors import adapter_session_get
from records.services.outbound import (
    AdapterAgent,
    CrmUnavailable,
    OutboundRefused,
    PrepareRequest,
    StartRequest,
    outbound_prepare,
    outbound_start,
)
from records.services.screen_pop import MAX_WAIT_SECONDS, screen_pop_wait

UNAUTHENTICATED = OpenApiResponse(description="No or invalid Agent-Token.")
REFUSED = OpenApiResponse(
    description=(
        "A choice the settings or the CRM data do not allow: "
        '`{"code": ..., "message": ..., "errors": {field: [...]}}`; '
        "codes: record_closed, incompatible_with_ticket_id_mode, not_allowed, ticket_id_required, "
        "record_not_found, contact_not_found, other_contact."
    )
)
CRM_DOWN = OpenApiResponse(
    description=(
        "The CRM could not be read (down, rate limited, or refusing the product's credentials): try again "
        "after Retry-After. 502 when the CRM refused the request, 501 when the active CRM's provider cannot "
        "do it yet (Salesforce contacts)."
    )
)


def _agent(request: Request) -> AdapterAgent:
    token = request.auth
    assert isinstance(token, AgentToken)
    agent = token.agent
    return AdapterAgent(email=agent.email, team=agent.team)


def _refused(exc: OutboundRefused) -> Response:
    body = {"code": exc.code, "message": exc.message, "errors": {exc.field: [exc.message]}}
    return Response(body, status=exc.status)


def _crm_down(exc: CrmError) -> Response:
    retry_after = exc.retry_after if isinstance(exc, CrmRateLimited) else 5
    body = {"code": "crm_unavailable", "message": f"The CRM did not answer: {exc}. Try again shortly."}
    return Response(
        body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(int(retry_after) + 1)}
    )


def _whole_number(request: Request, name: str, *, default: int | None, maximum: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw) if raw.isdigit() else -1
    if value < 0 or (maximum is not None and value > maximum):
        limit = f" from 0 to {maximum}" if maximum is not None else ""
        raise ApplicationError("Invalid input.", errors={name: [f"{name} must be a whole number{limit}."]})
    return value


class AdapterApi(APIView):
    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [HasAgentToken]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, OutboundRefused):
            return _refused(exc)
        if isinstance(exc, CrmTransientError | CrmRateLimited):
            return _crm_down(exc)
        if isinstance(exc, CrmUnavailable):
            return Response({"code": "no_crm", "message": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        if isinstance(exc, CrmUnsupported):
            body = {"code": "crm_unsupported", "message": f"The active CRM cannot do this yet: {exc}"}
            return Response(body, status=status.HTTP_501_NOT_IMPLEMENTED)
        if isinstance(exc, CrmAuthError):
            body = {
                "code": "crm_credentials",
                "message": "The CRM refused the product's credentials: an admin must fix them.",
            }
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        if isinstance(exc, CrmConfigurationError):
            body = {"code": "crm_configuration", "message": f"The CRM connection cannot be used: {exc}"}
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        if isinstance(exc, CrmError):
            return Response(
                {"code": "crm_error", "message": f"The CRM refused: {exc}"}, status=status.HTTP_502_BAD_GATEWAY
            )
        return super().handle_exception(exc)


class OutboundPrepareApi(AdapterApi):
    """O2: what the agent must choose before dialing."""

    @extend_schema(
        operation_id="adapter_outbound_prepare",
        summary="Prepare an outbound call: the contacts, open records and options for this agent",
        description=(
            "Exactly one origin (`phone_number`, `contact_id`, `record_id`, `ticket_id`), plus `entered_number` "
            "and `origin`. Reads the CRM; stores nothing."
        ),
        request=PrepareInputSerializer,
        responses={
            200: PrepareOutputSerializer,
            400: OpenApiResponse(description="A bad field, or a ticket id your team requires (named in `errors`)."),
            401: UNAUTHENTICATED,
            422: REFUSED,
            501: CRM_DOWN,
            502: CRM_DOWN,
            503: CRM_DOWN,
        },
        examples=[
            OpenApiExample("Dialpad", value={"phone_number": "+14155550100", "origin": "dialpad"}, request_only=True),
            OpenApiExample("Ticket id", value={"ticket_id": "812"}, request_only=True),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = PrepareInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        prepared = outbound_prepare(agent=_agent(request), request=PrepareRequest(**serializer.validated_data))
        return Response(PrepareOutputSerializer(asdict(prepared)).data)


class OutboundStartApi(AdapterApi):
    """O2: the agent pressed Call."""

    @extend_schema(
        operation_id="adapter_outbound_start",
        summary="Start an outbound call: the record it is logged on",
        description=(
            "Stores the call's start as the platform's `session.created` and `outbound.started` would: the "
            "platform's own `outbound.started` for the same `session_id` agrees with it and is applied once. "
            "`existing` answers the record at once; `new` answers `pending: true` and the screen pop delivers "
            "the record."
        ),
        request=StartInputSerializer,
        responses={
            201: StartOutputSerializer,
            400: OpenApiResponse(description="A bad field (named in `errors`)."),
            401: UNAUTHENTICATED,
            409: OpenApiResponse(description="The session is another agent's."),
            422: REFUSED,
            501: CRM_DOWN,
            502: CRM_DOWN,
            503: CRM_DOWN,
        },
    )
    def post(self, request: Request) -> Response:
        serializer = StartInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        started = outbound_start(agent=_agent(request), request=StartRequest(**serializer.validated_data))
        return Response(StartOutputSerializer(asdict(started)).data, status=status.HTTP_201_CREATED)


class ScreenPopApi(AdapterApi):
    """O4: long poll for the record of the agent's current session."""

    @extend_schema(
        operation_id="adapter_screen_pop",
        summary="Wait for the record to open (long poll)",
        description=(
            "Answers as soon as the agent's current session (inbound, chat, outbound, or one transferred to "
            "the agent) has its record. After `wait` seconds without one: 204. Poll again with `after`."
        ),
        parameters=[
            OpenApiParameter(
                "wait", OpenApiTypes.INT, description=f"Seconds to wait, 0-{MAX_WAIT_SECONDS} (default 25)."
            ),
            OpenApiParameter(
                "after",
                OpenApiTypes.INT,
                description=(
                    "The `pop_id` last received: answer only a newer pop. Without it the current pop answers "
                    "at once, or the poll waits for the next one."
                ),
            ),
        ],
        responses={200: ScreenPopSerializer, 204: OpenApiResponse(description="No record yet."), 401: UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        wait = _whole_number(request, "wait", default=25, maximum=MAX_WAIT_SECONDS)
        assert wait is not None
        after = _whole_number(request, "after", default=None, maximum=None)
        pop = screen_pop_wait(agent_email=_agent(request).email, wait_seconds=wait, after=after)
        if pop is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ScreenPopSerializer(pop).data)


class AdapterSessionApi(AdapterApi):
    """A session as the adapter sees it."""

    @extend_schema(
        operation_id="adapter_session",
        summary="A session of this agent: its record, contact and CRM actions",
        responses={
            200: SessionSerializer,
            401: UNAUTHENTICATED,
            404: OpenApiResponse(description="No such session among this agent's."),
        },
    )
    def get(self, request: Request, session_id: str) -> Response:
        found = adapter_session_get(session_id=session_id, agent_email=_agent(request).email)
        if found is None:
            raise Http404
        # Not asdict(): that would deep-copy the action rows.
        data: dict[str, Any] = {field.name: getattr(found, field.name) for field in fields(found)}
        return Response(SessionSerializer(data).data)
