"""Recorded real CRM answers (tests/fixtures/recorded/, sources in its SOURCES.md) and a loopback
server that answers with them, so a provider can be held against what the CRM really sent.

A recording is `{"source", "request": {"method", "path", "query"}, "status", "headers", "body"}`.
The replay server answers each (method, path) with its recordings in turn (the last one again
after that), over real HTTP on 127.0.0.1; absolute URLs of the recorded host inside a body are
pointed at the replay server, since the suite reaches only loopback.
"""

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDED = Path(__file__).resolve().parent / "fixtures" / "recorded"


def recording(crm: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / crm / name).read_text())
    return data


def key_set(value: Any) -> set[str]:
    assert isinstance(value, dict), value
    return set(value)


class Replay:
    """What the replay server was asked, for assertions: counts and form bodies per (method, path)."""

    def __init__(self, answers: dict[tuple[str, str], list[dict[str, Any]]], hosts: tuple[str, ...]) -> None:
        self.answers = answers
        self.hosts = hosts
        self.calls: Counter[tuple[str, str]] = Counter()
        self.forms: list[dict[str, str]] = []
        self.base_url = ""

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        key = (method, path)
        queue = self.answers.get(key)
        self.calls[key] += 1
        if body and method == "POST":
            self.forms.append({k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()})
        if not queue:
            return 599, {}, f"no recording for {method} {path}".encode()
        record = queue[min(self.calls[key], len(queue)) - 1]
        text = json.dumps(record["body"]) if record["body"] is not None else ""
        for host in self.hosts:
            text = text.replace(host, self.base_url)
        headers = {k: v for k, v in record["headers"].items() if k.lower() not in ("content-length", "location")}
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return int(record["status"]), headers, text.encode()


@contextmanager
def replay_server(
    answers: dict[tuple[str, str], list[dict[str, Any]]], *, hosts: tuple[str, ...] = ()
) -> Iterator[Replay]:
    replay = Replay(answers, hosts)

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, headers, body = replay.answer(self.command, urlsplit(self.path).path, self.rfile.read(length))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    replay.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
