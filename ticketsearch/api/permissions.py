"""Who may use the QA API: staff users holding the QA permissions (DESIGN.md "Three APIs")."""

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

SEARCH_PERMISSION = "ticketsearch.search_tickets"
EVALUATE_PERMISSION = "ticketsearch.evaluate_tickets"


class IsQaReviewer(BasePermission):
    """Reads need `search_tickets`; recording an evaluation also needs `evaluate_tickets`."""

    message = "Only staff users with the QA permission may search imported tickets."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not user.is_authenticated or not user.is_staff:
            return False
        if not user.has_perm(SEARCH_PERMISSION):
            return False
        return request.method in SAFE_METHODS or user.has_perm(EVALUATE_PERMISSION)
