"""Sandbox CRMs: loopback HTTP servers that speak each CRM's documented API subset (see base.py).

`start_sandbox("zendesk", fixture=path)` serves one from a daemon thread at `server.base_url` until
`server.stop()`; `manage.py sandbox_crm zendesk --port 8801` (or `kustomer --port 8802`) serves one in
the foreground.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from integrations.sandbox.base import Sandbox, SandboxServer
from integrations.sandbox.freshdesk import FreshdeskSandbox
from integrations.sandbox.kustomer import KustomerSandbox
from integrations.sandbox.salesforce import SalesforceSandbox
from integrations.sandbox.zendesk import ZendeskImportSandbox, ZendeskSandbox

__all__ = [
    "SANDBOXES",
    "FreshdeskSandbox",
    "KustomerSandbox",
    "SalesforceSandbox",
    "Sandbox",
    "SandboxServer",
    "ZendeskImportSandbox",
    "ZendeskSandbox",
    "build_sandbox",
    "start_sandbox",
]

# The CRM kinds a sandbox can be started for; a new CRM's sandbox class is added here.
SANDBOXES: dict[str, type[Sandbox]] = {
    # The Zendesk sandbox with the import read API (incremental export, seeding) on top.
    ZendeskSandbox.kind: ZendeskImportSandbox,
    KustomerSandbox.kind: KustomerSandbox,
    SalesforceSandbox.kind: SalesforceSandbox,
    FreshdeskSandbox.kind: FreshdeskSandbox,
}

Fixture = str | Path | Mapping[str, Any] | None


def _read_fixture(fixture: Fixture) -> Mapping[str, Any] | None:
    if fixture is None or isinstance(fixture, Mapping):
        return fixture
    data = json.loads(Path(fixture).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"fixture {fixture}: expected a JSON object")
    return data


def build_sandbox(kind: str, host: str = "127.0.0.1", port: int = 0, fixture: Fixture = None) -> SandboxServer:
    """A sandbox of `kind` bound to host:port (0: a free port), fixture loaded, not serving yet.

    Raises ValueError for an unknown kind or a bad fixture, OSError when the port cannot be bound.
    """
    sandbox_class = SANDBOXES.get(kind)
    if sandbox_class is None:
        raise ValueError(f"unknown sandbox kind {kind!r}; known kinds: {', '.join(sorted(SANDBOXES))}")
    return SandboxServer(sandbox_class(_read_fixture(fixture)), host=host, port=port)


def start_sandbox(kind: str, host: str = "127.0.0.1", port: int = 0, fixture: Fixture = None) -> SandboxServer:
    """A sandbox of `kind` serving from a daemon thread: use `.base_url`, `.reset()` and `.stop()`."""
    return build_sandbox(kind, host=host, port=port, fixture=fixture).start()
