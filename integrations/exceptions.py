"""Everything that keeps a CRM from doing what was asked: one tree, rooted at CrmError.

Failures of a CRM call are mapped once in integrations.http; configuration errors (no provider for
the connection's kind, credentials that cannot be read) are raised before any call is made. A caller
that only needs "the CRM did not do it" catches CrmError and nothing else.
"""


class CrmError(Exception):
    """Base class: the CRM did not (or could not be asked to) do what was asked."""


class CrmConfigurationError(CrmError):
    """The connection cannot be used as configured: no request was sent, and retrying will not help."""


class UnknownCrmKind(CrmConfigurationError):
    """No provider is registered for the connection's kind of CRM (was `UnsupportedCrm`).

    Not to be confused with CrmUnsupported: that CRM has a provider, but no API for one thing.
    """


class CredentialsUnreadable(CrmConfigurationError):
    """The stored credentials token was made with a key that is no longer configured."""


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
    """The CRM (or this provider) has no API for what was asked; the caller must not retry.

    The provider exists (compare UnknownCrmKind, where there is none).
    """
