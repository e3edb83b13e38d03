"""The one HTTP layer every CRM provider uses: timeouts, auth hook, and the error mapping.

Retries are not done here: Celery owns them (backoff, Retry-After, attempt counts are visible in
the action log). A 429 also closes a gate shared through Redis, so every worker waits it out
instead of each spending a request to learn the same thing.
"""

import email.utils
import logging
import time
from typing import Any, Protocol
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from integrations.exceptions import CrmAuthError, CrmNotFound, CrmRateLimited, CrmRequestError, CrmTransientError

logger = logging.getLogger(__name__)

USER_AGENT = "CRM-Bridge/1.0"
# When a CRM answers 429 without Retry-After, wait this long before the next call.
DEFAULT_RETRY_AFTER_SECONDS = 10.0
# Salesforce signals its (rolling 24 h) request limit with 403 REQUEST_LIMIT_EXCEEDED and no
# Retry-After: wait this long before trying again (crm-api-shapes.md §3.3).
LIMIT_EXCEEDED_RETRY_AFTER_SECONDS = 60.0
# Error codes in a Salesforce-style error array that mean "rate limited", whatever the status.
RATE_LIMIT_ERROR_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED"})


# Multipart files: by field name, or (field name, file) pairs when a name repeats (`attachments[]`).
Files = dict[str, tuple[str, bytes, str]] | list[tuple[str, tuple[str, bytes, str]]]


class RateGate(Protocol):
    """Where a 429's Retry-After is remembered so all workers honour it (see integrations.ratelimit)."""

    def acquire(self, key: str, per_minute: int) -> float: ...

    def seconds_until_open(self, key: str) -> float: ...

    def close_for(self, key: str, seconds: float) -> None: ...


def parse_retry_after(value: str | None, *, now: float) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return DEFAULT_RETRY_AFTER_SECONDS
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    return max(0.0, when.timestamp() - now)


def error_code(body: Any) -> str | None:
    """The CRM's error code: Salesforce's `[{"errorCode": ...}]` or Zendesk's `{"error": "..."}`."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        code = body[0].get("errorCode") or body[0].get("statusCode")
        return str(code) if code else None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


class CrmHttpClient:
    """A requests.Session bound to one CRM instance, mapping every failure to integrations.exceptions."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        rate_gate: RateGate | None = None,
        rate_limit_per_minute: int | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.rate_gate = rate_gate
        self.rate_limit_per_minute = rate_limit_per_minute
        self.session = session or requests.Session()
        # urllib3 retries stay off: a silent retry of a POST could create a second record.
        self.session.mount("http://", HTTPAdapter(max_retries=0))
        self.session.mount("https://", HTTPAdapter(max_retries=0))
        self.session.headers["User-Agent"] = USER_AGENT
        # How long a rate-limit error code without Retry-After (Salesforce's 403) closes the gate.
        self.limit_retry_after = LIMIT_EXCEEDED_RETRY_AFTER_SECONDS

    def build_url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/"))

    def authorize(self, request: requests.PreparedRequest) -> None:
        """Hook for subclasses: add credentials to the outgoing request."""

    def observe(self, response: requests.Response) -> None:
        """Hook for subclasses: read a CRM's usage headers off every answer (to close the rate gate early)."""

    def retry_after(self, response: requests.Response) -> float:
        """Hook for subclasses: seconds a 429 asks to wait (here: Retry-After, seconds or an HTTP date)."""
        return parse_retry_after(response.headers.get("Retry-After"), now=time.time())

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: bytes | dict[str, str] | None = None,
        files: Files | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON body (None for an empty body).

        Raises CrmTransientError (timeout, connection, 5xx), CrmRateLimited (429, or a rate-limit
        error code such as Salesforce's 403 REQUEST_LIMIT_EXCEEDED), CrmAuthError (401/403, with the
        CRM's error code), CrmNotFound (404) or CrmRequestError (other 4xx).
        """
        if self.rate_gate is not None:
            wait = self.rate_gate.seconds_until_open(self.base_url)
            if wait > 0:
                raise CrmRateLimited(f"rate limited by {self.base_url} for {wait:.1f}s more", retry_after=wait)
            if self.rate_limit_per_minute:
                wait = self.rate_gate.acquire(self.base_url, self.rate_limit_per_minute)
                if wait > 0:
                    raise CrmRateLimited(
                        f"own limit of {self.rate_limit_per_minute} requests/min to {self.base_url} reached",
                        retry_after=wait,
                    )

        prepared = self.session.prepare_request(
            requests.Request(
                method, self.build_url(path), params=params, json=json, data=data, files=files, headers=headers
            )
        )
        self.authorize(prepared)
        try:
            response = self.session.send(prepared, timeout=self.timeout)
        except requests.Timeout as exc:
            raise CrmTransientError(f"{method} {path}: timed out after {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise CrmTransientError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc

        self.observe(response)
        status = response.status_code
        if status < 400:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                # A login page or proxy answer: the base URL is wrong, and retrying will not fix it.
                raise CrmRequestError(
                    f"{method} {path}: {status} with a body that is not JSON (is the base URL right?)",
                    status_code=status,
                    body=response.text[:500],
                ) from None
        body = _body(response)
        code = error_code(body)
        logger.info("crm.http.error %s %s -> %s %s", method, path, status, code, extra={"status": status})
        if status == 429 or code in RATE_LIMIT_ERROR_CODES:
            retry_after = self.retry_after(response) if status == 429 else self.limit_retry_after
            if self.rate_gate is not None:
                self.rate_gate.close_for(self.base_url, retry_after)
            raise CrmRateLimited(
                f"{method} {path}: {status} {code or ''}, retry after {retry_after:.0f}s", retry_after=retry_after
            )
        if status >= 500:
            raise CrmTransientError(f"{method} {path}: {status} {body}")
        if status in (401, 403):
            raise CrmAuthError(f"{method} {path}: {status} {body}", code=code)
        if status == 404:
            raise CrmNotFound(f"{method} {path}: 404 {body}", status_code=status, body=body)
        raise CrmRequestError(f"{method} {path}: {status} {body}", status_code=status, body=body)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def patch(self, path: str, json: Any = None) -> Any:
        return self.request("PATCH", path, json=json)
