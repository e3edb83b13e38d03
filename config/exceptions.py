"""The project's API error body: `{"message": str, "errors": ...}` for every 4xx (and the 503).

Shared by every app's API, so it sits with the root URLconf rather than inside one app. The
database briefly gone (a restart, a failover, its connections terminated) is a 503 with
Retry-After, never a 500: nothing was stored, and the platform's retry of the same batch is safe.
"""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


class ApplicationError(exceptions.APIException):
    """A 400 a service raises on purpose, with a message and structured details."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, message: str, errors: Any = None, status_code: int = 400) -> None:
        super().__init__(detail=message)
        self.message = message
        self.errors = errors
        self.status_code = status_code


# What a 503 asks the caller to wait before retrying, in seconds.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, OperationalError | InterfaceError):
        # The connection, not the request: PostgreSQL unreachable or the connection cut mid-request.
        logger.warning("api.database-unavailable %s", exc.__class__.__name__, exc_info=exc)
        return Response(
            {"message": "The database is briefly unavailable; nothing was stored. Retry the same request."},
            status=503,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, ApplicationError):
        body: dict[str, Any] = {"message": exc.message}
        if exc.errors is not None:
            body["errors"] = exc.errors
        return Response(body, status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response({"message": f"The body is larger than {limit} bytes; send fewer events per call."}, status=413)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"message": "Invalid input.", "errors": response.data}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"message": str(response.data["detail"])}
    return response
