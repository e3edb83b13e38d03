"""Admin pieces every app shares (no app knowledge here)."""

from typing import Any

from django.http import HttpRequest


class ViewOnlyAdminMixin:
    """Rows made by the product, not typed in: their admin pages are "View" pages, with no add or change.

    Put it before ModelAdmin (or an inline) in the bases. Deleting stays as the admin class decides.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
