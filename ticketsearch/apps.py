from django.apps import AppConfig


class TicketsearchConfig(AppConfig):
    name = "ticketsearch"
    verbose_name = "Ticket search (QA)"
