"""Every CRM the product can connect to has a sandbox that speaks its API (docs/architecture.md)."""

import pytest
import requests

from integrations.providers.registry import PROVIDERS
from integrations.sandbox import SANDBOXES, start_sandbox


def test_every_provider_has_a_sandbox() -> None:
    assert set(PROVIDERS) - set(SANDBOXES) == set()


@pytest.mark.parametrize("kind", sorted(PROVIDERS))
def test_each_sandbox_starts_and_answers_its_control_endpoints(kind: str) -> None:
    server = start_sandbox(kind)
    try:
        stats = requests.get(f"{server.base_url}/__sandbox/stats", timeout=5)
        assert stats.status_code == 200
        assert "total" in stats.json()
    finally:
        server.stop()
