from django.urls import path

from ticketsearch.api.views import TicketDetailApi, TicketEvaluationsApi, TicketSearchApi

urlpatterns = [
    path("tickets/search", TicketSearchApi.as_view(), name="tickets-search"),
    path("tickets/<int:ticket_id>", TicketDetailApi.as_view(), name="tickets-detail"),
    path("tickets/<int:ticket_id>/evaluations", TicketEvaluationsApi.as_view(), name="tickets-evaluations"),
]
