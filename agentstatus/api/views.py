from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentstatus.api.auth import AgentTokenAuthentication, HasAgentToken
from agentstatus.api.serializers import AgentStatusInputSerializer, AgentStatusOutputSerializer
from agentstatus.models import AgentToken, Source
from agentstatus.selectors import agent_status_view
from agentstatus.services.changes import agent_status_set
from agentstatus.services.inbound import status_webhook_receive
from integrations.webhooks import KUSTOMER_SIGNATURE_HEADER, WebhookRefused

WebhookResultSerializer = inline_serializer(
    name="StatusWebhookResult",
    fields={
        "outcome": serializers.ChoiceField(
            choices=["applied", "unchanged", "ignored", "echo", "unmatched", "duplicate", "queued"]
        ),
        "reason": serializers.CharField(),
        "agent": serializers.EmailField(allow_blank=True),
        "platform_status": serializers.CharField(allow_null=True),
    },
)


class KustomerStatusWebhookApi(APIView):
    """Kustomer delivers work-session events here: the agents' user-status changes (A2, A3)."""

    # The HMAC signature over the raw body is the authentication, checked in the service.
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="kustomer_status_webhook",
        summary="Kustomer work-session webhook (user status changes)",
        description=(
            "Signed by Kustomer: `X-Kustomer-Webhook-Signature` = lowercase hex HMAC-SHA256(token, raw body). "
            "No timestamp is sent or needed: a delivery is never refused for its age; events are ordered by "
            "their own `data.attributes.updatedAt`, so a late one never overrides a newer status. A wrong or "
            "missing signature is refused and changes nothing. A redelivery of an event already received "
            "answers 200 with outcome `duplicate` and changes nothing. An event for a known agent is applied "
            "before the answer (200); one for a Kustomer user not known yet is accepted (202, outcome "
            "`queued`) and applied after the user has been looked up in Kustomer."
        ),
        request=inline_serializer(name="KustomerEventEnvelope", fields={"id": serializers.CharField()}),
        responses={
            200: WebhookResultSerializer,
            202: WebhookResultSerializer,
            400: OpenApiResponse(description="Malformed body, or text that cannot be stored (NUL), named in `errors`."),
            401: OpenApiResponse(description="Missing or wrong signature."),
            403: OpenApiResponse(description="No webhook secret is configured."),
        },
    )
    def post(self, request: Request) -> Response:
        try:
            result = status_webhook_receive(body=request.body, signature=request.headers.get(KUSTOMER_SIGNATURE_HEADER))
        except WebhookRefused as exc:
            return Response({"message": exc.message, "errors": {exc.field: [exc.message]}}, status=exc.status_code)
        return Response(
            {
                "outcome": result.outcome,
                "reason": result.reason,
                "agent": result.agent_email,
                "platform_status": result.platform_status,
            },
            status=status.HTTP_202_ACCEPTED if result.queued else status.HTTP_200_OK,
        )


class AdapterStatusApi(APIView):
    """The agent's platform status, read and set from the adapter inside the CRM (A5)."""

    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [HasAgentToken]

    @extend_schema(
        operation_id="adapter_status_get",
        summary="The agent's platform status, and whether the CRM currently overrides it",
        responses={200: AgentStatusOutputSerializer, 401: OpenApiResponse(description="No or invalid Agent-Token.")},
    )
    def get(self, request: Request) -> Response:
        token = _token(request)
        return Response(AgentStatusOutputSerializer(agent_status_view(token.agent)).data)

    @extend_schema(
        operation_id="adapter_status_set",
        summary="Set the agent's platform status",
        description=(
            "Applies at once and is audited with source `adapter`. With two-way sync it is pushed to "
            'Kustomer for agents of the team linked to the external queue. Under "CRM always '
            "overrides\" (`crm_overrides: true`) Kustomer's next status change replaces it."
        ),
        request=AgentStatusInputSerializer,
        responses={
            200: AgentStatusOutputSerializer,
            400: OpenApiResponse(description="`status` missing or not a platform status (named in `errors`)."),
            401: OpenApiResponse(description="No or invalid Agent-Token."),
        },
        examples=[OpenApiExample("By name", value={"status": "Lunch"}, request_only=True)],
    )
    def put(self, request: Request) -> Response:
        token = _token(request)
        serializer = AgentStatusInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent_status_set(agent=token.agent, platform_status=serializer.validated_data["status"], source=Source.ADAPTER)
        return Response(AgentStatusOutputSerializer(agent_status_view(token.agent)).data)


def _token(request: Request) -> AgentToken:
    token = request.auth
    assert isinstance(token, AgentToken)
    return token
