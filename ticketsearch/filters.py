"""The QA search parameters (T4) as a django-filter FilterSet: parsing and validation of each one.

The FilterSet only reads parameters into a typed TicketQuery (ticket_query); the search itself is
the backend's (ticketsearch.backends). Multi-valued parameters take comma-separated values
(`channel=voice,chat`). A value that does not parse is a 400 naming the parameter
(ticketsearch.api.views); so is a parameter the search does not know, so a typo never silently
widens a search.
"""

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import django_filters
from django import forms

from integrations.models import CrmKind
from ticketsearch.backends import TicketQuery
from ticketsearch.models import Channel, Ticket

PHONE_MIN_DIGITS = 4
PHONE_MAX_DIGITS = 15
MAX_Q_LENGTH = 500
MAX_LIST_ITEMS = 20


class CharInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    pass


class ChoiceInFilter(django_filters.BaseInFilter, django_filters.ChoiceFilter):
    pass


def phone_suffix(value: str) -> str | None:
    """The digits of a last-digits phone search, or None when there are too few or too many."""
    digits = re.sub(r"[\s\-().+]", "", value)
    if not digits.isdigit() or not PHONE_MIN_DIGITS <= len(digits) <= PHONE_MAX_DIGITS:
        return None
    return digits


class TicketFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(max_length=MAX_Q_LENGTH, label="Full text")
    crm = ChoiceInFilter(choices=CrmKind.choices, label="CRM kinds")
    connection = django_filters.NumberFilter(min_value=1, label="CRM connection id")
    channel = ChoiceInFilter(choices=Channel.choices, label="Channels (SPEC T5)")
    status = CharInFilter(label="CRM statuses")
    agent = django_filters.NumberFilter(min_value=1, label="Agent id")
    agent_email = django_filters.CharFilter(max_length=254, label="Agent email")
    requester = django_filters.CharFilter(max_length=254, label="Requester email")
    requester_phone = django_filters.CharFilter(max_length=30, label="Last digits of the requester's phone")
    created_from = django_filters.IsoDateTimeFilter()
    created_to = django_filters.IsoDateTimeFilter()
    tags = CharInFilter(label="Tags (all must be present)")
    reviewed = django_filters.BooleanFilter(label="Reviewed (has a QA evaluation)")

    class Meta:
        model = Ticket
        fields: list[str] = []

    # No filter here depends on the request, so the form class is the same for every search: built
    # once per process instead of per search (django-filter rebuilds it and each filter's form field
    # every time, 0.45 of the 0.9 ms a search's parameters took to parse, profiled at 1M tickets).
    _form_class: ClassVar[type[forms.Form] | None] = None

    def get_form_class(self) -> type[forms.Form]:
        cls = type(self)
        form_class = cls.__dict__.get("_form_class")
        if form_class is None:
            form_class = cls._form_class = super().get_form_class()
        return form_class

    def is_valid(self) -> bool:
        valid = bool(super().is_valid())
        phone = self.form.cleaned_data.get("requester_phone") if valid else None
        if phone and phone_suffix(phone) is None:
            message = f"Give {PHONE_MIN_DIGITS} to {PHONE_MAX_DIGITS} digits (the end of the phone number)."
            self.form.add_error("requester_phone", message)
            return False
        # The boolean widget reads anything it does not know as "no filter": say so instead.
        if valid and self.data.get("reviewed", "") not in ("", "true", "false"):
            self.form.add_error("reviewed", "Give true or false.")
            return False
        for key in ("crm", "channel", "status", "tags"):
            values: Any = self.form.cleaned_data.get(key) if valid else None
            if values and len(values) > MAX_LIST_ITEMS:
                self.form.add_error(key, f"At most {MAX_LIST_ITEMS} values.")
                return False
        return valid

    def to_query(self) -> TicketQuery:
        """The validated parameters as a TicketQuery; call after is_valid()."""
        data = self.form.cleaned_data

        def words(key: str) -> tuple[str, ...]:
            return tuple(value.strip() for value in data.get(key) or () if value.strip())

        def number(key: str) -> int | None:
            value = data.get(key)
            return None if value is None else int(value)

        def text(key: str) -> str | None:
            value = (data.get(key) or "").strip()
            return value or None

        phone = data.get("requester_phone")
        return TicketQuery(
            text=(data.get("q") or "").strip(),
            crm_kinds=words("crm"),
            connection_id=number("connection"),
            channels=words("channel"),
            statuses=words("status"),
            agent_id=number("agent"),
            agent_email=text("agent_email"),
            requester_email=text("requester"),
            phone_suffix=phone_suffix(phone) if phone else None,
            created_from=data.get("created_from"),
            created_to=data.get("created_to"),
            tags=words("tags"),
            reviewed=data.get("reviewed"),
        )


def ticket_query(params: Mapping[str, str]) -> tuple[TicketQuery | None, dict[str, list[str]]]:
    """The parameters as a TicketQuery, or None and the messages of each bad parameter."""
    filterset = TicketFilter(data=params, queryset=Ticket.objects.none())
    if not filterset.is_valid():
        return None, {name: [str(message) for message in messages] for name, messages in filterset.errors.items()}
    return filterset.to_query(), {}
