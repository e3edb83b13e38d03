"""`OPTIONS` on every page answers without a 500, anonymous or signed in (issue 15, item 8).

Anonymous `OPTIONS /api/docs/` used to be a 500: the Swagger page renders with a template, and
DRF's OPTIONS answer had none.
"""

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver


def _paths(patterns: list[URLPattern | URLResolver], prefix: str = "") -> Iterator[str]:
    """A concrete path for every route, with 1 for each converter (a row that may not exist)."""
    for pattern in patterns:
        route = str(pattern.pattern)
        # Regex patterns (the admin's) and typed routes both get a plausible value.
        route = route.lstrip("^").rstrip("$").replace("\\Z", "")
        for converter in ("<int:", "<path:", "<str:", "<slug:", "<uuid:", "<"):
            while converter in route:
                start = route.index(converter)
                end = route.index(">", start)
                route = route[:start] + "1" + route[end + 1 :]
        if "(?P" in route or "(" in route:
            continue
        if isinstance(pattern, URLResolver):
            yield from _paths(pattern.url_patterns, prefix + route)
        else:
            yield "/" + prefix + route


PATHS = sorted(set(_paths(get_resolver().url_patterns)))


def test_every_kind_of_page_is_covered() -> None:
    assert {"/api/docs/", "/api/schema/", "/api/v1/events", "/admin/"} <= set(PATHS)
    assert len(PATHS) > 40


@pytest.mark.django_db
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "staff"])
def test_options_never_answers_a_server_error(signed_in: bool) -> None:
    client = Client(raise_request_exception=False)
    if signed_in:
        client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    failures = {}
    for path in PATHS:
        status = client.options(path).status_code
        if status >= 500:
            failures[path] = status
    assert failures == {}
