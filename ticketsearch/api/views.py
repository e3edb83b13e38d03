"""The QA API (T4, T6): ticket search, ticket detail, evaluations. Views parse input and call selectors/services."""

from typing import Any

from django.contrib.auth.models import User
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.exceptions import ApplicationError
from ticketsearch import selectors
from ticketsearch.api.auth import QaTokenAuthentication
from ticketsearch.api.permissions import IsQaReviewer
from ticketsearch.api.serializers import (
    EvaluationInputSerializer,
    EvaluationSerializer,
    TicketDetailSerializer,
    TicketSearchPageSerializer,
)
from ticketsearch.filters import MAX_LIST_ITEMS, TicketFilter
from ticketsearch.models import Channel, Ticket
from ticketsearch.services.evaluations import evaluation_create

# Largest id PostgreSQL's bigint holds: a larger one in a URL is simply not found.
MAX_ID = 2**63 - 1
LIST_PARAMS = frozenset({"crm", "channel", "status", "tags"})

_AUTH = [QaTokenAuthentication, SessionAuthentication]
_AUTH_RESPONSES = {
    401: OpenApiResponse(description="Not authenticated (Token or session)."),
    403: OpenApiResponse(description="Not a staff user with the QA permission."),
}


SEARCH_PARAMETERS = [
    OpenApiParameter(
        "q",
        str,
        description='Full text over subject, description, comments and transcript. Words are ANDed; "a phrase", '
        "`or`, and `-word` work as in web search.",
    ),
    OpenApiParameter("crm", str, description="CRM kinds, comma-separated: zendesk, salesforce, …"),
    OpenApiParameter("connection", int, description="CRM connection id"),
    OpenApiParameter(
        "channel", str, description=f"Channels, comma-separated: {', '.join(choice.value for choice in Channel)}"
    ),
    OpenApiParameter("status", str, description="CRM statuses, comma-separated (solved, closed, Closed, …)"),
    OpenApiParameter("agent", int, description="Agent id"),
    OpenApiParameter("agent_email", str, description="Agent email (case-insensitive)"),
    OpenApiParameter("requester", str, description="Requester email (case-insensitive)"),
    OpenApiParameter("requester_phone", str, description="The last 4 to 15 digits of the requester's phone"),
    OpenApiParameter("created_from", OpenApiTypes.DATETIME, description="Created at or after (ISO 8601)"),
    OpenApiParameter("created_to", OpenApiTypes.DATETIME, description="Created before (ISO 8601)"),
    OpenApiParameter("tags", str, description=f"Tags, comma-separated (at most {MAX_LIST_ITEMS}); all must be present"),
    OpenApiParameter(
        "reviewed", bool, description="true: only tickets with a QA evaluation; false: only those without"
    ),
    OpenApiParameter("cursor", str, description="`next_cursor` of the previous page"),
    OpenApiParameter(
        "page_size", int, description=f"1 to {selectors.MAX_PAGE_SIZE}, default {selectors.DEFAULT_PAGE_SIZE}"
    ),
]
assert {p.name for p in SEARCH_PARAMETERS} == set(TicketFilter.base_filters) | set(selectors.PAGING_PARAMS)


def _search_params(request: Request) -> dict[str, str]:
    """Query parameters as one string each: a list parameter may also be repeated (`tags=a&tags=b`)."""
    params: dict[str, str] = {}
    for name in request.query_params:
        values = request.query_params.getlist(name)
        if len(values) > 1 and name not in LIST_PARAMS:
            raise ApplicationError("Invalid search.", errors={name: ["Give this parameter once."]})
        params[name] = ",".join(values)
    return params


class TicketSearchApi(APIView):
    """QA reviewers search the imported solved tickets (SPEC T4)."""

    authentication_classes = _AUTH
    permission_classes = [IsQaReviewer]

    @extend_schema(
        operation_id="tickets_search",
        summary="Search imported tickets",
        description=(
            "Newest first, `page_size` per page, with keyset pagination (`next_cursor`). Every filter "
            "narrows the search; an invalid or unknown parameter is a 400 naming it."
        ),
        parameters=SEARCH_PARAMETERS,
        responses={
            200: TicketSearchPageSerializer,
            400: OpenApiResponse(description="A bad parameter."),
            **_AUTH_RESPONSES,
        },
    )
    def get(self, request: Request) -> Response:
        try:
            page = selectors.ticket_search(params=_search_params(request))
        except selectors.InvalidSearch as exc:
            raise ApplicationError("Invalid search.", errors=exc.errors) from None
        body = {"results": page.tickets, "next_cursor": page.next_cursor}
        return Response(TicketSearchPageSerializer(body).data)


def _ticket_or_404(ticket_id: int) -> Ticket:
    ticket = selectors.ticket_get(ticket_id=ticket_id) if ticket_id <= MAX_ID else None
    if ticket is None:
        raise ApplicationError("No such ticket (it may be older than the 90 days kept).", status_code=404)
    return ticket


class TicketDetailApi(APIView):
    """One imported ticket: transcript, recordings, comments, the link into its CRM, its evaluations."""

    authentication_classes = _AUTH
    permission_classes = [IsQaReviewer]

    @extend_schema(
        operation_id="tickets_detail",
        summary="An imported ticket",
        responses={200: TicketDetailSerializer, 404: OpenApiResponse(description="No such ticket."), **_AUTH_RESPONSES},
    )
    def get(self, request: Request, ticket_id: int) -> Response:
        ticket = _ticket_or_404(ticket_id)
        context: dict[str, Any] = {
            "agents": {ticket.agent_id: ticket.agent} if ticket.agent_id and ticket.agent else {},
            "authors": selectors.ticket_comment_authors(ticket),
            "evaluations": list(selectors.ticket_evaluations(ticket_id=ticket.id)),
        }
        return Response(TicketDetailSerializer(ticket, context=context).data)


class TicketEvaluationsApi(APIView):
    """Quality-management reviews of an imported ticket (SPEC T6)."""

    authentication_classes = _AUTH
    permission_classes = [IsQaReviewer]

    @extend_schema(
        operation_id="tickets_evaluations_list",
        summary="The ticket's evaluations",
        responses={
            200: EvaluationSerializer(many=True),
            404: OpenApiResponse(description="No such ticket."),
            **_AUTH_RESPONSES,
        },
    )
    def get(self, request: Request, ticket_id: int) -> Response:
        ticket = _ticket_or_404(ticket_id)
        return Response(EvaluationSerializer(selectors.ticket_evaluations(ticket_id=ticket.id), many=True).data)

    @extend_schema(
        operation_id="tickets_evaluations_create",
        summary="Record an evaluation",
        description="Needs the `evaluate_tickets` permission besides `search_tickets`.",
        request=EvaluationInputSerializer,
        responses={
            201: EvaluationSerializer,
            400: OpenApiResponse(description="A bad field, named."),
            404: OpenApiResponse(description="No such ticket."),
            **_AUTH_RESPONSES,
        },
    )
    def post(self, request: Request, ticket_id: int) -> Response:
        ticket = _ticket_or_404(ticket_id)
        serializer = EvaluationInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assert isinstance(request.user, User)  # IsQaReviewer let only an authenticated user through
        evaluation = evaluation_create(ticket=ticket, reviewer=request.user, **serializer.validated_data)
        return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_201_CREATED)
