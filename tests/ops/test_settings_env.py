"""Proxy, HTTPS and CSRF settings come from the environment (issue 15, item 6); off by default."""

import json
import os
import subprocess
import sys

from tests.support import ROOT

NAMES = [
    "SECURE_PROXY_SSL_HEADER",
    "USE_X_FORWARDED_HOST",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "CSRF_TRUSTED_ORIGINS",
    "DEBUG",
    "CRM_ALLOW_LOOPBACK",
]
SCRIPT = (
    "import json, django; django.setup(); from django.conf import settings; "
    f"print(json.dumps({{n: getattr(settings, n, None) for n in {NAMES!r}}}))"
)
KEYS = (
    "DJANGO_TRUST_X_FORWARDED_PROTO",
    "DJANGO_USE_X_FORWARDED_HOST",
    "DJANGO_HTTPS",
    "DJANGO_HSTS_SECONDS",
    "DJANGO_CSRF_TRUSTED_ORIGINS",
    "DJANGO_DEBUG",
    "CRM_ALLOW_LOOPBACK",
)


def _settings(**env: str) -> dict[str, object]:
    # .env may set some of these: the real environment wins, so each is given explicitly.
    base = {key: value for key, value in os.environ.items() if key not in KEYS}
    defaults = {key: "" for key in KEYS} | {"DJANGO_DEBUG": "false", "CRM_ALLOW_LOOPBACK": "false"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **defaults, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    values: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return values


def test_plain_http_by_default() -> None:
    values = _settings(DJANGO_HSTS_SECONDS="0")
    assert values["SECURE_PROXY_SSL_HEADER"] is None
    assert values["SESSION_COOKIE_SECURE"] is False
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["CSRF_TRUSTED_ORIGINS"] == []
    assert values["DEBUG"] is False


def test_behind_a_tls_proxy() -> None:
    values = _settings(
        DJANGO_TRUST_X_FORWARDED_PROTO="true",
        DJANGO_USE_X_FORWARDED_HOST="true",
        DJANGO_HTTPS="true",
        DJANGO_HSTS_SECONDS="31536000",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://bridge.example.com,https://admin.example.com",
    )
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["USE_X_FORWARDED_HOST"] is True
    assert values["SESSION_COOKIE_SECURE"] is values["CSRF_COOKIE_SECURE"] is values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31536000
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://bridge.example.com", "https://admin.example.com"]
