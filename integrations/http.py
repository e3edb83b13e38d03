"""The one HTTP layer every CRM provider uses: timeouts, auth hook, and the error mapping.

Retries of a failed action or task are Celery's (backoff, Retry-After, attempt counts are visible
in the action log). Only an idempotent read is retried here, in place, a couple of times with a
short backoff (integrations.failures.read_retry_delay): every provider's GETs and searches get it
from this one place, and a write is never repeated by it. A 429 also closes a gate shared through
Redis, so every worker waits it out instead of each spending a request to learn the same thing.
"""

import email.utils
import logging
import time
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests

from integrations.exceptions import (
    CrmAuthError,
    CrmError,
    CrmNotFound,
    CrmOwnLimitReached,
    CrmRateLimited,
    CrmRequestError,
    CrmTransientError,
)
from integrations.failures import READ_RETRIES, read_retry_delay
from integrations.ratelimit import Usage, WindowReading, WorkClass, headroom_pause, window_limit, window_pace
from integrations.urlguard import BlockedAddress, GuardedAdapter

logger = logging.getLogger(__name__)

USER_AGENT = "CRM-Bridge/1.0"
# When a CRM answers 429 without Retry-After, wait this long before the next call.
DEFAULT_RETRY_AFTER_SECONDS = 10.0
# Salesforce signals its (rolling 24 h) request limit with 403 REQUEST_LIMIT_EXCEEDED and no
# Retry-After: wait this long before trying again (crm-api-shapes.md §3.3).
LIMIT_EXCEEDED_RETRY_AFTER_SECONDS = 60.0
# Methods that never change what the CRM holds.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Error codes in a Salesforce-style error array that mean "rate limited", whatever the status.
RATE_LIMIT_ERROR_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED"})


# Methods that read without changing anything: retried in place after a transient failure.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Multipart files: by field name, or (field name, file) pairs when a name repeats (`attachments[]`).
Files = dict[str, tuple[str, bytes, str]] | list[tuple[str, tuple[str, bytes, str]]]


class RateGate(Protocol):
    """Where a 429's Retry-After is remembered so all workers honour it (see integrations.ratelimit)."""

    def acquire(self, key: str, per_minute: int, *, first: bool = False) -> float: ...

    def seconds_until_open(self, key: str) -> float: ...

    def hold(self, key: str, *, first: bool = False) -> float: ...

    def close_for(self, key: str, seconds: float, *, pace: float = 0.0) -> None: ...

    def record_usage(self, key: str, *outcomes: str) -> None:
        """Count one request's outcomes (Usage) in the current minute's bucket, for the health chart."""
        ...


def usage_key(base_url: str) -> str:
    """The key a CRM's request counts are kept under (integrations.ratelimit.RedisRateGate.usage)."""
    return base_url.rstrip("/") + "/"


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


# The fields in which the CRMs put their error message (Zendesk, Kustomer, Salesforce, Freshdesk).
_MESSAGE_FIELDS = ("error", "error_description", "description", "message", "title", "detail", "errorCode", "code")
ERROR_SUMMARY_CHARS = 300


def _messages(value: Any, depth: int = 0) -> list[str]:
    """The CRM's error fields found in an error body, a few levels deep (Zendesk's `details`, Kustomer's `errors`)."""
    if depth > 3:
        return []
    if isinstance(value, list):
        return [m for item in value[:5] for m in _messages(item, depth + 1)]
    if not isinstance(value, dict):
        return []
    found = [str(value[f]) for f in _MESSAGE_FIELDS if isinstance(value.get(f), str | int) and value[f] != ""]
    return found + [m for v in list(value.values())[:10] if isinstance(v, dict | list) for m in _messages(v, depth + 1)]


def error_summary(body: Any) -> str:
    """What an error answer says, for messages that reach the admin: never the answer itself.

    Only the CRM's own error fields are kept, shortened; a body that is not a CRM error (an HTML
    page, a proxy's answer, whatever an address that is not a CRM returns) is described, not shown.
    """
    if parts := _messages(body):
        summary = " ".join(dict.fromkeys(parts))
        return summary if len(summary) <= ERROR_SUMMARY_CHARS else summary[: ERROR_SUMMARY_CHARS - 1] + "…"
    if isinstance(body, str):
        return f"(a {len(body)}-character answer that is not a CRM error; not shown)" if body else "(empty answer)"
    return "(an answer without an error message; not shown)"


class CrmHttpClient:
    """A requests.Session bound to one CRM instance, mapping every failure to integrations.exceptions."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        rate_gate: RateGate | None = None,
        rate_limit_per_minute: int | None = None,
        work_class: WorkClass = WorkClass.LIVE,
        session: requests.Session | None = None,
        read_retries: int = READ_RETRIES,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        # Requests are counted under the configured URL, even where a login moves base_url to
        # another host (Salesforce's instance_url): the health page looks them up by connection.
        self.usage_key = usage_key(base_url)
        self.timeout = timeout
        self.rate_gate = rate_gate
        self.rate_limit_per_minute = rate_limit_per_minute
        self.work_class = work_class
        self.read_retries = read_retries
        self.session = session or requests.Session()
        # urllib3 retries stay off (a silent retry of a POST could create a second record), and the
        # guard refuses any peer outside the public internet (integrations.urlguard).
        self.session.mount("http://", GuardedAdapter())
        self.session.mount("https://", GuardedAdapter())
        self.session.headers["User-Agent"] = USER_AGENT
        # How long a rate-limit error code without Retry-After (Salesforce's 403) closes the gate.
        self.limit_retry_after = LIMIT_EXCEEDED_RETRY_AFTER_SECONDS
        # Writes sent that the CRM did not refuse (applied, or their answer a 5xx or lost): an
        # outbox whose attempt failed with none of them knows the CRM is as it was before.
        self.writes_maybe_applied = 0

    def build_url(self, path: str) -> str:
        url = urljoin(self.base_url, path.lstrip("/"))
        # A path from a CRM's answer (a next-page link) must not take the credentials to another host.
        if urlsplit(url)[:2] != urlsplit(self.base_url)[:2]:
            raise CrmRequestError(f"refused a link to another host than {self.base_url}", status_code=0)
        return url

    def authorize(self, request: requests.PreparedRequest) -> None:
        """Hook for subclasses: add credentials to the outgoing request."""

    def observe(self, response: requests.Response) -> None:
        """Read the CRM's rate-limit headers off every answer: where its window (or an endpoint's own)
        is down to its headroom, every worker holds that traffic until it frees, so the CRM rarely
        has to answer 429."""
        if self.rate_gate is None:
            return
        for endpoint_class, reading in self.window_readings(response):
            if (pause := headroom_pause(reading)) > 0:
                self.rate_gate.close_for(self._gate_key(endpoint_class), pause, pace=window_pace(reading))

    def window_readings(self, response: requests.Response) -> Iterable[tuple[str | None, WindowReading]]:
        """Hook for subclasses: what the answer's rate-limit headers say, per window (None: the
        account's; otherwise an endpoint class of `endpoint_class`)."""
        return ()

    def endpoint_class(self, method: str, path: str) -> str | None:
        """Hook for subclasses: the CRM's own limit class of a request (Zendesk's ticket updates), or None."""
        return None

    def _gate_key(self, endpoint_class: str | None) -> str:
        return self.base_url if endpoint_class is None else f"{self.base_url}#{endpoint_class}"

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
        idempotent: bool | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON body (None for an empty body).

        A read (`idempotent`; by default a GET, HEAD or OPTIONS) that fails transiently is sent
        again in place, as `read_retry_delay` says; a write is sent once. Raises
        CrmTransientError (timeout, connection, 5xx), CrmRateLimited (429, or a rate-limit error
        code such as Salesforce's 403 REQUEST_LIMIT_EXCEEDED), CrmAuthError (401/403, with the
        CRM's error code), CrmNotFound (404) or CrmRequestError (other 4xx).
        """
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        retry = 0
        answered: CrmTransientError | None = None
        while True:
            try:
                return self._request_once(
                    method, path, params=params, json=json, data=data, files=files, headers=headers
                )
            except CrmOwnLimitReached:
                if answered is None:
                    raise
                # Our own budget refused the retry (nothing was sent): the CRM's answer is why the read failed.
                raise answered from None
            except CrmTransientError as exc:
                retry += 1
                delay = read_retry_delay(exc, retry=retry, retries=self.read_retries) if idempotent else None
                if delay is None:
                    raise
                answered = exc
                logger.info("crm.http.read_retry %s %s in %.2fs: %s", method, path, delay, exc, extra={"retry": retry})
                time.sleep(delay)

    def _request_once(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None,
        json: Any,
        data: bytes | dict[str, str] | None,
        files: Files | None,
        headers: dict[str, str] | None,
    ) -> Any:
        """One request on the wire (after the rate gate), its answer decoded or mapped to an error."""
        self._pass_rate_gate(self.endpoint_class(method, path))
        prepared = self.session.prepare_request(
            requests.Request(
                method, self.build_url(path), params=params, json=json, data=data, files=files, headers=headers
            )
        )
        self.authorize(prepared)
        writes = method.upper() not in SAFE_METHODS
        # Counted before it is sent: a timeout or a dropped connection leaves the write unknown.
        self.writes_maybe_applied += writes
        response = self._send(prepared, method, path)
        self._record(Usage.SENT)
        self.observe(response)
        status = response.status_code
        if writes and (400 <= status < 500 or 300 <= status < 400):
            # Refused (a 4xx, a 429 included) or redirected: the CRM did not apply it.
            self.writes_maybe_applied -= 1
        if 300 <= status < 400:
            raise CrmRequestError(
                f"{method} {path}: {status} redirect, not followed (is the base URL right?)", status_code=status
            )
        if status < 400:
            return _decoded(response, method, path)
        raise self._failure(response, method, path)

    def _pass_rate_gate(self, endpoint_class: str | None) -> None:
        """Raise CrmRateLimited while the CRM's gate (or its endpoint class's) is closed,
        CrmOwnLimitReached when our budget is spent."""
        if self.rate_gate is None:
            return
        # A session's record being made waits only behind other records being made.
        first = self.work_class is WorkClass.RECORD
        wait = self.rate_gate.hold(self.base_url, first=first)
        if wait > 0:
            self._record(Usage.HELD_BACK)
            raise CrmRateLimited(f"rate limited by {self.base_url} for {wait:.1f}s more", retry_after=wait)
        if (
            endpoint_class is not None
            and (wait := self.rate_gate.hold(self._gate_key(endpoint_class), first=first)) > 0
        ):
            self._record(Usage.HELD_BACK)
            raise CrmRateLimited(
                f"rate limited by {self.base_url} ({endpoint_class} limit) for {wait:.1f}s more", retry_after=wait
            )
        if not self.rate_limit_per_minute:
            return
        limit = window_limit(self.rate_limit_per_minute, self.work_class)
        wait = self.rate_gate.acquire(self.base_url, limit, first=first)
        if wait > 0:
            self._record(Usage.HELD_BACK)
            raise CrmOwnLimitReached(
                f"own limit of {limit} requests/min ({self.work_class} work) to {self.base_url} reached",
                retry_after=wait,
            )

    def _send(self, prepared: requests.PreparedRequest, method: str, path: str) -> requests.Response:
        try:
            # A redirect is not followed: it could lead the connection's credentials anywhere.
            return self.session.send(prepared, timeout=self.timeout, allow_redirects=False)
        except BlockedAddress as exc:
            raise CrmRequestError(f"{method} {path}: {exc}", status_code=0) from None
        except requests.Timeout as exc:
            self._record(Usage.SENT, Usage.FAULT)
            raise CrmTransientError(f"{method} {path}: timed out after {self.timeout}s") from exc
        except requests.RequestException as exc:
            self._record(Usage.SENT, Usage.FAULT)
            raise CrmTransientError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc

    def _failure(self, response: requests.Response, method: str, path: str) -> CrmError:
        """The error a 4xx or 5xx answer maps to (a rate limit also closes the shared gate)."""
        status = response.status_code
        body = _body(response)
        code = error_code(body)
        logger.info("crm.http.error %s %s -> %s %s", method, path, status, code, extra={"status": status})
        if status == 429 or code in RATE_LIMIT_ERROR_CODES:
            self._record(Usage.RATE_LIMITED)
            retry_after = self.retry_after(response) if status == 429 else self.limit_retry_after
            if self.rate_gate is not None:
                self.rate_gate.close_for(self.base_url, retry_after)
            return CrmRateLimited(
                f"{method} {path}: {status} {code or ''}, retry after {retry_after:.0f}s", retry_after=retry_after
            )
        summary = error_summary(body)
        if status >= 500:
            self._record(Usage.FAULT)
            return CrmTransientError(f"{method} {path}: {status} {summary}")
        if status in (401, 403):
            return CrmAuthError(f"{method} {path}: {status} {summary}", code=code)
        if status == 404:
            return CrmNotFound(f"{method} {path}: 404 {summary}", status_code=status, body=body)
        return CrmRequestError(f"{method} {path}: {status} {summary}", status_code=status, body=body)

    def _record(self, *outcomes: str) -> None:
        if self.rate_gate is not None:
            self.rate_gate.record_usage(self.usage_key, *outcomes)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def post_read(self, path: str, json: Any = None) -> Any:
        """A POST that only reads (Kustomer's searches): retried in place like a GET."""
        return self.request("POST", path, json=json, idempotent=True)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def patch(self, path: str, json: Any = None) -> Any:
        return self.request("PATCH", path, json=json)


def _decoded(response: requests.Response, method: str, path: str) -> Any:
    """A 2xx answer's JSON body (None when empty); a body that is not JSON means the base URL is wrong."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        # A login page or proxy answer: the base URL is wrong, and retrying will not fix it.
        raise CrmRequestError(
            f"{method} {path}: {response.status_code} with a body that is not JSON (is the base URL right?)",
            status_code=response.status_code,
            body=response.text[:500],
        ) from None
