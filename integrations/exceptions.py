"""Failures of a CRM call, mapped once in integrations.http and acted on by the callers."""


class CrmError(Exception):
    """Base class: a CRM call did not do what was asked."""


class CrmTransientError(CrmError):
    """Timeout, connection failure or 5xx: the same call may succeed later."""


class CrmRateLimited(CrmTransientError):
    """429 (or the CRM's equivalent): wait `retry_after` seconds before the next call."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CrmOwnLimitReached(CrmRateLimited):
    """Our own per-minute budget for the CRM is spent: nothing was sent, and the CRM said nothing.

    Kept apart from the CRM's 429 so a caller does not put it in place of the error the last real
    request got (a failing lookup that burns the budget must still show why it failed).
    """


class CrmAuthError(CrmError):
    """401/403: the credentials are wrong or lack a permission; retrying will not help.

    `code` is the CRM's error code when it sent one (Salesforce INVALID_SESSION_ID: the access
    token expired, and a provider that can log in again may do so once).
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class CrmRequestError(CrmError):
    """Any other 4xx: the request itself is wrong for this CRM; never retried."""

    def __init__(self, message: str, status_code: int, body: object = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class CrmNotFound(CrmRequestError):
    """404: the record or user does not exist (deleted or merged away in the CRM)."""


class CrmUnsupported(CrmError):
    """The CRM (or this provider) has no API for what was asked; the caller must not retry."""
