"""The loopback HTTP server every sandbox CRM is built on: routing, call counting and injected faults.

A sandbox speaks one CRM's documented API subset (shared/crm-api-shapes.md) and keeps its state in
memory, so tests, the demo and the benchmarks go through real HTTP: a request leaves the process,
can be slow, can get a 429 or a 5xx. The `/__sandbox/*` control endpoints are never rate limited,
never failed and never counted, so a test can always read and steer the sandbox:

- `GET /__sandbox/stats` - requests per "METHOD /path/template", totals and fault counters;
- `GET|POST /__sandbox/config` - read or change the fault injection (`SandboxConfig`);
- `POST /__sandbox/reset` - empty state, zero stats, default config, then the fixture again;
- whatever a CRM's sandbox adds through `control()`, e.g. `POST /__sandbox/seed`.

Standard library only, so the sandbox runs anywhere the project's Python does.
"""

import abc
import dataclasses
import json
import logging
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

# Paths under this prefix steer the sandbox; they are not part of any CRM's API.
CONTROL_PREFIX = "/__sandbox/"
# `rate_limit_per_minute` is enforced over a sliding window of this many seconds.
WINDOW_SECONDS = 60.0
# Methods whose successful answer `lost_response_rate` may replace with a 500 after applying them.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A body larger than this is refused instead of being read into memory.
MAX_BODY_BYTES = 10 * 1024 * 1024
# The CRM's own text body on a 429 (Zendesk's is not JSON, and clients must not parse it).
TOO_MANY_REQUESTS = "Too Many Requests"


@dataclasses.dataclass
class Response:
    """What a handler answers: `body` is JSON-encoded (dict/list), sent as text (str) or empty (None)."""

    status: int
    body: Any = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    def encoded(self) -> "Response":
        """The same answer with its body as bytes and its Content-Type set, ready for the wire."""
        if isinstance(self.body, bytes):
            return self
        if self.body is None:
            return Response(self.status, b"", dict(self.headers))
        if isinstance(self.body, str):
            content_type, payload = "text/plain; charset=utf-8", self.body.encode()
        else:
            content_type, payload = "application/json; charset=utf-8", json.dumps(self.body).encode()
        return Response(self.status, payload, {"Content-Type": content_type, **self.headers})


class Reject(Exception):
    """Raised by a handler to answer with `response`; handlers validate before they change state."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclasses.dataclass(frozen=True)
class Request:
    """One API request as a handler sees it: JSON body decoded, path arguments extracted."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    # Header names are lower-cased.
    headers: Mapping[str, str]
    data: Any
    args: Mapping[str, str]
    client_ip: str
    # The body as sent; `data` is its JSON, except on `raw_body_routes`, whose bodies are not JSON.
    body: bytes = b""

    def param(self, name: str) -> str | None:
        """The first value of a query parameter, or None."""
        values = self.query.get(name)
        return values[0] if values else None


Handler = Callable[[Any, Request], Response]


@dataclasses.dataclass(frozen=True)
class Route:
    """A handler for METHOD + path template; `{name}` in the template is one path segment."""

    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler

    @property
    def key(self) -> str:
        """How the route is named in the stats, e.g. "GET /api/v2/tickets/{id}.json"."""
        return f"{self.method} {self.template}"


def compile_template(template: str, optional_suffix: str = "") -> re.Pattern[str]:
    """A regex for a path template; a template ending in `optional_suffix` also matches without it."""
    suffix = ""
    if optional_suffix and template.endswith(optional_suffix):
        template, suffix = template[: -len(optional_suffix)], f"(?:{re.escape(optional_suffix)})?"
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/]+?)" for index, part in enumerate(parts))
    return re.compile(f"^{regex}{suffix}$")


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"must be a number from 0 to 1, got {value!r}")
    return float(value)


def _whole(low: int, high: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be a whole number {bounds}, got {value!r}")
        return value

    return check


def _limit(value: Any) -> int | None:
    return None if value is None else _whole(1)(value)


def _endpoint_limits(value: Any) -> dict[str, int]:
    """Limits per endpoint class; which class names exist is checked by the sandbox (`configure`)."""
    if not isinstance(value, dict):
        raise ValueError(f"must be an object of endpoint class to requests per minute, got {value!r}")
    return {str(name): _whole(1)(limit) for name, limit in value.items()}


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
    """Fault injection; every rate is drawn from one `random.Random(seed)`, so a run can be replayed."""

    # API requests allowed per sliding minute; past it a 429 with Retry-After. None: unlimited.
    rate_limit_per_minute: int | None = None
    # Share of API requests answered 503/500 (alternately) before anything is applied.
    fail_rate: float = 0.0
    # The next this many API requests are answered 500 (counting down), before anything is applied:
    # a test's exact fault ("a read answered 500 once, then 200"), where a rate would be a draw.
    fail_next: int = 0
    # The same for the next this many writes (POST, PUT, PATCH, DELETE) only; reads pass meanwhile.
    fail_next_writes: int = 0
    # Share of API requests answered 429 regardless of the window, with `retry_after_seconds`.
    throttle_rate: float = 0.0
    retry_after_seconds: int = 1
    # Share of successful writes that are applied and then answered 500: the answer was "lost".
    lost_response_rate: float = 0.0
    # Sleep before answering each API request.
    latency_ms: int = 0
    seed: int = 0
    # Requests per sliding minute for one endpoint class of the CRM's own (`Sandbox.endpoint_classes`,
    # e.g. Zendesk's ticket updates), on top of the account-wide limit. A class not named here is
    # unlimited, but its headers still advertise the CRM's documented limit.
    endpoint_rate_limits: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def updated(self, changes: Mapping[str, Any]) -> "SandboxConfig":
        """A copy with `changes` applied; ValueError names the first bad key and why."""
        validated: dict[str, Any] = {}
        for key, value in changes.items():
            check = _CONFIG_CHECKS.get(key)
            if check is None:
                raise ValueError(f"{key}: unknown setting; known settings: {', '.join(_CONFIG_CHECKS)}")
            try:
                validated[key] = check(value)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return dataclasses.replace(self, **validated)


_CONFIG_CHECKS: dict[str, Callable[[Any], Any]] = {
    "rate_limit_per_minute": _limit,
    "fail_rate": _rate,
    "fail_next": _whole(0, 1_000_000),
    "fail_next_writes": _whole(0, 1_000_000),
    "throttle_rate": _rate,
    "retry_after_seconds": _whole(1, 3600),
    "lost_response_rate": _rate,
    "latency_ms": _whole(0, 60_000),
    "seed": _whole(-(2**63)),
    "endpoint_rate_limits": _endpoint_limits,
}


@dataclasses.dataclass
class SandboxStats:
    """What the sandbox was asked since the last reset (control endpoints are not counted)."""

    requests: Counter[str] = dataclasses.field(default_factory=Counter)
    total: int = 0
    rate_limited: int = 0
    # 429s of an endpoint class's own limit, by class (also counted in `rate_limited`).
    rate_limited_by_endpoint: Counter[str] = dataclasses.field(default_factory=Counter)
    injected_failures: int = 0
    lost_responses: int = 0
    # A sandbox bug answered 500; tests can assert it stays 0.
    unexpected_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "requests": dict(sorted(self.requests.items())),
            "rate_limited_by_endpoint": dict(sorted(self.rate_limited_by_endpoint.items())),
        }


class Sandbox(abc.ABC):
    """One CRM's API in memory. Subclasses list `routes` and implement the state hooks.

    Every API request passes, in this order: counting, latency, throttle/rate limit (429), injected
    failure (5xx), `authenticate`, routing (404), JSON decoding (400), the handler, and the lost
    response draw. Handlers run under the one lock, so they see and change state atomically.
    """

    kind: ClassVar[str]
    # (method, path template, handler function) - the CRM's API surface at a glance.
    routes: ClassVar[Sequence[tuple[str, str, Handler]]] = ()
    # A suffix every path may carry or omit (Zendesk's `.json`).
    optional_suffix: ClassVar[str] = ""
    # The limit the rate-limit headers advertise when none is configured.
    advertised_rate_limit: ClassVar[int]
    # Route keys ("POST /api/v2/uploads.json") whose body is a file, handed over as bytes, not JSON.
    raw_body_routes: ClassVar[frozenset[str]] = frozenset()
    # Endpoint classes with a limit of their own, by name: the route keys in the class and the limit
    # the CRM documents (advertised in `endpoint_limit_headers` when the config sets none).
    endpoint_classes: ClassVar[Mapping[str, tuple[frozenset[str], int]]] = {}

    def __init__(self, fixture: Mapping[str, Any] | None = None) -> None:
        self.fixture = fixture
        # Replaced by SandboxServer once its port is bound; used for `url` fields and Location.
        self.base_url = "http://127.0.0.1"
        self._lock = threading.Lock()
        compiled = [Route(m, t, compile_template(t, self.optional_suffix), h) for m, t, h in self.routes]
        # A literal segment wins over a placeholder: /users/search.json is not /users/{id}.json.
        self._routes = sorted(compiled, key=lambda route: route.template.count("{"))
        self.config = SandboxConfig()
        self.stats = SandboxStats()
        self._window: deque[float] = deque()
        self._endpoint_windows: dict[str, deque[float]] = {name: deque() for name in self.endpoint_classes}
        self._random = random.Random(self.config.seed)
        self.reset()

    # -- Seeding (QA import) ----------------------------------------------------------------------

    # The largest generated org a seed request may ask for.
    max_seed_count: ClassVar[int] = 500_000

    def seed_stores(self) -> Sequence[tuple[str, Callable[[dict[str, Any]], Any]]]:
        """The object lists a seed request may carry, in the order they are stored, each with its store."""
        raise NotImplementedError(f"the {self.kind} sandbox takes no seed")

    def generate(self, count: int, rng: random.Random) -> dict[str, Any]:
        """A reproducible org of `count` records, in the shape a seed request carries."""
        raise NotImplementedError(f"the {self.kind} sandbox generates no org")

    def seed(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Store the objects given (or a generated org of `count`, from `seed`); answer their ids by list."""
        if "count" in data:
            count, seed = data["count"], data.get("seed", 0)
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= self.max_seed_count:
                raise ValueError(f"count: must be a whole number from 0 to {self.max_seed_count}")
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ValueError("seed: must be a whole number")
            data = self.generate(count, random.Random(seed))
        created: dict[str, Any] = {}
        for key, store in self.seed_stores():
            items = data.get(key, [])
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise ValueError(f"{key}: must be a list of objects")
            created[key] = [store(dict(item)) for item in items]
        return created

    # -- Hooks for each CRM ----------------------------------------------------------------------

    @abc.abstractmethod
    def reset_state(self) -> None:
        """Forget every record (called under the lock)."""

    @abc.abstractmethod
    def load_fixture(self, fixture: Mapping[str, Any]) -> None:
        """Create the fixture's records (called under the lock, after reset_state); ValueError if bad."""

    def authenticate(self, headers: Mapping[str, str]) -> Response | None:
        """The CRM's 401 when the credentials are missing or malformed, else None."""
        return None

    def connection_settings(self) -> dict[str, str]:
        """The settings (`add_crm_connection --setting`) that connect the product to this sandbox."""
        return {}

    def error(self, status: int, code: str, description: str) -> Response:
        """An error in the CRM's own shape (used for 400 bad JSON, 404 unknown path, injected 5xx)."""
        return Response(status, {"error": code, "description": description})

    def rate_limit_headers(self, limit: int, remaining: int, reset_seconds: int) -> dict[str, str]:
        """The CRM's rate-limit headers, put on every API response."""
        return {}

    def endpoint_limit_headers(self, name: str, limit: int, remaining: int, reset_seconds: int) -> dict[str, str]:
        """The CRM's headers for an endpoint class's own limit, put on the answers of its routes."""
        return {}

    def control(self, method: str, action: str, data: Any) -> Response | None:
        """A sandbox-specific control endpoint `/__sandbox/<action>` (called under the lock), or None.

        `data` is the decoded JSON body; raise ValueError for a bad one (answered 400).
        """
        return None

    # -- Control ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to the start: no records but the fixture's, zero stats, default config."""
        with self._lock:
            self.config = SandboxConfig()
            self.stats = SandboxStats()
            self._window.clear()
            for window in self._endpoint_windows.values():
                window.clear()
            self._random.seed(self.config.seed)
            self.reset_state()
            if self.fixture is not None:
                self.load_fixture(self.fixture)

    def configure(self, changes: Mapping[str, Any]) -> SandboxConfig:
        """Apply config changes atomically; ValueError (nothing applied) names the bad key."""
        limits = changes.get("endpoint_rate_limits")
        unknown = set(limits) - set(self.endpoint_classes) if isinstance(limits, dict) else set()
        if unknown:
            known = ", ".join(self.endpoint_classes) or "none"
            raise ValueError(f"endpoint_rate_limits: unknown endpoint class {sorted(unknown)[0]!r}; known: {known}")
        with self._lock:
            self.config = self.config.updated(changes)
            if "seed" in changes:
                self._random.seed(self.config.seed)
            return self.config

    def stats_snapshot(self) -> dict[str, Any]:
        """The stats as `GET /__sandbox/stats` returns them."""
        with self._lock:
            return self.stats.as_dict()

    def _control(self, method: str, path: str, body: bytes) -> Response:
        action = (method, path.removeprefix(CONTROL_PREFIX).rstrip("/"))
        if action == ("GET", "stats"):
            return Response(200, self.stats_snapshot())
        if action == ("GET", "config"):
            with self._lock:
                return Response(200, dataclasses.asdict(self.config))
        if action == ("POST", "config"):
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object")
                return Response(200, dataclasses.asdict(self.configure(changes)))
            except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors too
                return Response(400, {"error": "InvalidConfig", "description": str(exc)})
        if action == ("POST", "reset"):
            self.reset()
            return Response(200, {"reset": True})
        try:
            data = json.loads(body) if body.strip() else {}
            with self._lock:
                extra = self.control(method, action[1], data)
        except ValueError as exc:
            return Response(400, {"error": "InvalidControl", "description": str(exc)})
        if extra is not None:
            return extra
        description = f"No sandbox control endpoint {method} {path}"
        return Response(404, {"error": "InvalidEndpoint", "description": description})

    # -- The API path ----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes, client_ip: str) -> Response:
        """Answer one HTTP request, with the body encoded to bytes. Never raises."""
        url = urlsplit(target)
        try:
            if url.path.startswith(CONTROL_PREFIX):
                return self._control(method, url.path, body).encoded()
            query = parse_qs(url.query, keep_blank_values=True)
            return self._api(method, url.path, query, headers, body, client_ip)
        except Exception:
            logger.exception("sandbox.unexpected_error %s %s", method, url.path, extra={"kind": self.kind})
            with self._lock:
                self.stats.unexpected_errors += 1
                limit_headers = self._current_rate_limit_headers()
            response = self.error(500, "InternalServerError", "Unexpected error in the sandbox")
            response.headers.update(limit_headers)
            return response.encoded()

    def _api(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
        client_ip: str,
    ) -> Response:
        route, args = self._match(method, path)
        with self._lock:
            self.stats.total += 1
            if route is not None:
                self.stats.requests[route.key] += 1
            latency_ms = self.config.latency_ms
        # Outside the lock, so concurrent requests are slow together rather than one after another.
        if latency_ms:
            time.sleep(latency_ms / 1000)
        with self._lock:
            endpoint_class = self._endpoint_class(route)
            response = self._refusal(endpoint_class, method) or self.authenticate(headers)
            if response is None:
                response = self._dispatch(route, Request(method, path, query, headers, None, args, client_ip), body)
            # A header the answer set itself (a 429's reset time) wins over the window's.
            response.headers = {
                **self._current_rate_limit_headers(),
                **self._current_endpoint_limit_headers(endpoint_class),
                **response.headers,
            }
            # Encoded under the lock: the body may share lists with the stored records.
            return response.encoded()

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self._routes:
            found = route.pattern.match(path)
            if found and route.method == method:
                return route, found.groupdict()
        return None, {}

    def _endpoint_class(self, route: Route | None) -> str | None:
        if route is None:
            return None
        return next((name for name, (keys, _) in self.endpoint_classes.items() if route.key in keys), None)

    def _refusal(self, endpoint_class: str | None, method: str) -> Response | None:
        """A 429 or an injected 5xx decided before the request is looked at, else None."""
        if self._draw(self.config.throttle_rate):
            return self._too_many_requests(self.config.retry_after_seconds)
        now = time.monotonic()
        if endpoint_class is not None:
            limit = self.config.endpoint_rate_limits.get(endpoint_class)
            wait = self._take_slot_in(self._endpoint_windows[endpoint_class], limit, now, record=False)
            if wait is not None:
                self.stats.rate_limited_by_endpoint[endpoint_class] += 1
                return self._too_many_requests(wait)
        wait = self._take_slot(now)
        if wait is not None:
            return self._too_many_requests(wait)
        if endpoint_class is not None:
            # Admitted by both: only now does it count in its class's window.
            self._endpoint_windows[endpoint_class].append(now)
        if self.config.fail_next:
            self.config = dataclasses.replace(self.config, fail_next=self.config.fail_next - 1)
            self.stats.injected_failures += 1
            return self.error(500, "InternalServerError", "Internal server error (sandbox fail_next)")
        if self.config.fail_next_writes and method in WRITE_METHODS:
            self.config = dataclasses.replace(self.config, fail_next_writes=self.config.fail_next_writes - 1)
            self.stats.injected_failures += 1
            return self.error(500, "InternalServerError", "Internal server error (sandbox fail_next_writes)")
        if self._draw(self.config.fail_rate):
            self.stats.injected_failures += 1
            if self.stats.injected_failures % 2:
                return self.error(503, "ServiceUnavailable", "Service temporarily unavailable (sandbox fail_rate)")
            return self.error(500, "InternalServerError", "Internal server error (sandbox fail_rate)")
        return None

    def _dispatch(self, route: Route | None, request: Request, body: bytes) -> Response:
        if route is None:
            return self.error(404, "InvalidEndpoint", "Not found")
        try:
            data = json.loads(body) if body.strip() and route.key not in self.raw_body_routes else None
        except ValueError as exc:
            return self.error(400, "BadRequest", f"The request body is not valid JSON: {exc}")
        try:
            response = route.handler(self, dataclasses.replace(request, data=data, body=body))
        except Reject as rejection:
            return rejection.response
        if request.method in WRITE_METHODS and response.status < 400 and self._draw(self.config.lost_response_rate):
            # Applied, but the client never learns it: a retry must find the record, not make another.
            self.stats.lost_responses += 1
            return self.error(500, "InternalServerError", "Internal server error")
        return response

    def _draw(self, rate: float) -> bool:
        # No draw for a zero rate, so enabling one fault does not shift another's sequence.
        return rate > 0 and self._random.random() < rate

    def rate_limited(self, retry_after: int) -> Response:
        """The CRM's own 429 (Zendesk's: a text body and Retry-After); its headers win over the window's."""
        return Response(429, TOO_MANY_REQUESTS, {"Retry-After": str(retry_after)})

    def _too_many_requests(self, retry_after: int) -> Response:
        self.stats.rate_limited += 1
        return self.rate_limited(retry_after)

    def _take_slot(self, now: float) -> int | None:
        """Record an admitted request in the window; or, when full, the whole seconds until a slot frees."""
        return self._take_slot_in(self._window, self.config.rate_limit_per_minute, now, record=True)

    @staticmethod
    def _take_slot_in(window: deque[float], limit: int | None, now: float, *, record: bool) -> int | None:
        """For one sliding window: None when a request fits (recorded if `record`), else the seconds to wait."""
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if limit is not None and len(window) >= limit:
            # The request that must leave the window for this one to fit (the limit may have shrunk).
            frees_at = window[len(window) - limit] + WINDOW_SECONDS
            return max(1, math.ceil(frees_at - now))
        if record:
            window.append(now)
        return None

    def _current_rate_limit_headers(self) -> dict[str, str]:
        now = time.monotonic()
        while self._window and self._window[0] <= now - WINDOW_SECONDS:
            self._window.popleft()
        limit = self.config.rate_limit_per_minute or self.advertised_rate_limit
        reset = math.ceil(self._window[0] + WINDOW_SECONDS - now) if self._window else int(WINDOW_SECONDS)
        return self.rate_limit_headers(limit, max(0, limit - len(self._window)), max(1, reset))

    def _current_endpoint_limit_headers(self, endpoint_class: str | None) -> dict[str, str]:
        if endpoint_class is None:
            return {}
        window, now = self._endpoint_windows[endpoint_class], time.monotonic()
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        limit = self.config.endpoint_rate_limits.get(endpoint_class) or self.endpoint_classes[endpoint_class][1]
        reset = math.ceil(window[0] + WINDOW_SECONDS - now) if window else int(WINDOW_SECONDS)
        return self.endpoint_limit_headers(endpoint_class, limit, max(0, limit - len(window)), max(1, reset))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _HTTPServer
    # Keep-alive, as the CRMs do: a client's connection pool is exercised like in production.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a kept-alive connection waits ~40 ms
    # for the client's delayed ACK before sending the body of every answer.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _answer(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            # The rest of the stream cannot be framed, so the connection ends after this answer.
            self.close_connection = True
            self._send(self.server.sandbox.error(400, "BadRequest", "Invalid Content-Length").encoded())
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._send(self.server.sandbox.handle(self.command, self.path, headers, body, self.client_address[0]))

    def _send(self, response: Response) -> None:
        payload = response.body if isinstance(response.body, bytes) else b""
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout fired during injected latency): nobody to answer.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a test run or a benchmark would otherwise print a line per request."""


class SandboxServer:
    """A sandbox bound to a port: `start()` serves from a daemon thread, `serve_forever()` from the caller's."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sandbox = sandbox
        self._httpd = _HTTPServer((host, port), sandbox)
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self.base_url = f"http://{host}:{self.port}"
        sandbox.base_url = self.base_url
        self._thread: threading.Thread | None = None
        self._serving = False

    @property
    def kind(self) -> str:
        return self.sandbox.kind

    def start(self) -> "SandboxServer":
        """Serve from a daemon thread and return at once."""
        self._serving = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=f"sandbox-{self.kind}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve from the calling thread until `stop()` or KeyboardInterrupt; the socket is closed after."""
        self._serving = True
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving and release the port."""
        # shutdown() waits for the serve loop to end, so it is only called when one was started.
        if self._serving:
            self._serving = False
            self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def reset(self) -> None:
        """The same as `POST /__sandbox/reset`."""
        self.sandbox.reset()

    def stats(self) -> dict[str, Any]:
        """The same as `GET /__sandbox/stats`."""
        return self.sandbox.stats_snapshot()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """The same as `POST /__sandbox/config`; ValueError (nothing applied) names the bad key."""
        return dataclasses.asdict(self.sandbox.configure(changes))
