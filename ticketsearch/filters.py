"""The QA search filters (T4) as a django-filter FilterSet: parsing and validation of each parameter.

Multi-valued parameters take comma-separated values (`channel=voice,chat`). A value that does not
parse is a 400 naming the parameter (ticketsearch.api.views); so is a parameter the search does not
know, so a typo never silently widens a search.
"""

import re
from typing import Any

import django_filters
from django.contrib.postgres.search import SearchQuery
from django.db.models import QuerySet
from django.db.models.functions import Lower

from integrations.models import CrmKind
from ticketsearch.models import Channel, Ticket

# The text-search configuration of the generated search_vector column (migration 0001).
SEARCH_CONFIG = "simple"
PHONE_MIN_DIGITS = 4
PHONE_MAX_DIGITS = 15
MAX_Q_LENGTH = 500
MAX_LIST_ITEMS = 20


class CharInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    pass


class ChoiceInFilter(django_filters.BaseInFilter, django_filters.ChoiceFilter):
    pass


def text_query(q: str) -> SearchQuery:
    """Web-search syntax: words are ANDed, "quoted phrases", `or`, and `-word` to exclude."""
    return SearchQuery(q, search_type="websearch", config=SEARCH_CONFIG)


def phone_suffix(value: str) -> str | None:
    """The digits of a last-digits phone search, or None when there are too few or too many."""
    digits = re.sub(r"[\s\-().+]", "", value)
    if not digits.isdigit() or not PHONE_MIN_DIGITS <= len(digits) <= PHONE_MAX_DIGITS:
        return None
    return digits


class TicketFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_q", max_length=MAX_Q_LENGTH, label="Full text")
    crm = ChoiceInFilter(field_name="crm_kind", choices=CrmKind.choices, label="CRM kinds")
    connection = django_filters.NumberFilter(field_name="connection_id", min_value=1, label="CRM connection id")
    channel = ChoiceInFilter(field_name="channel", choices=Channel.choices, label="Channels (SPEC T5)")
    status = CharInFilter(field_name="status", label="CRM statuses")
    agent = django_filters.NumberFilter(field_name="agent_id", min_value=1, label="Agent id")
    agent_email = django_filters.CharFilter(method="filter_agent_email", max_length=254, label="Agent email")
    requester = django_filters.CharFilter(method="filter_requester", max_length=254, label="Requester email")
    requester_phone = django_filters.CharFilter(
        method="filter_requester_phone", max_length=30, label="Last digits of the requester's phone"
    )
    created_from = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_to = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    tags = CharInFilter(method="filter_tags", label="Tags (all must be present)")

    class Meta:
        model = Ticket
        fields: list[str] = []

    def filter_q(self, queryset: QuerySet[Ticket], name: str, value: str) -> QuerySet[Ticket]:
        if not value.strip():
            return queryset
        return queryset.filter(search_vector=text_query(value))

    def filter_agent_email(self, queryset: QuerySet[Ticket], name: str, value: str) -> QuerySet[Ticket]:
        return queryset.filter(agent__email__iexact=value.strip())

    def filter_requester(self, queryset: QuerySet[Ticket], name: str, value: str) -> QuerySet[Ticket]:
        # lower() = lower(): the expression index ticketsearch_ticket_requester serves it.
        return queryset.alias(requester_ci=Lower("requester_email")).filter(requester_ci=value.strip().lower())

    def filter_requester_phone(self, queryset: QuerySet[Ticket], name: str, value: str) -> QuerySet[Ticket]:
        digits = phone_suffix(value)
        assert digits is not None  # checked in is_valid()
        # "Ends with" on the reversed digits is a prefix match, served by a text_pattern_ops index.
        return queryset.filter(requester_phone_rev__startswith=digits[::-1])

    def filter_tags(self, queryset: QuerySet[Ticket], name: str, value: list[str]) -> QuerySet[Ticket]:
        return queryset.filter(tags__contains=[tag.strip() for tag in value if tag.strip()])

    def is_valid(self) -> bool:
        valid = bool(super().is_valid())
        phone = self.form.cleaned_data.get("requester_phone") if valid else None
        if phone and phone_suffix(phone) is None:
            message = f"Give {PHONE_MIN_DIGITS} to {PHONE_MAX_DIGITS} digits (the end of the phone number)."
            self.form.add_error("requester_phone", message)
            return False
        for key in ("crm", "channel", "status", "tags"):
            values: Any = self.form.cleaned_data.get(key) if valid else None
            if values and len(values) > MAX_LIST_ITEMS:
                self.form.add_error(key, f"At most {MAX_LIST_ITEMS} values.")
                return False
        return valid
