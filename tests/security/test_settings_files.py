"""`.env.example` keeps DEBUG and loopback CRMs off; `make run` turns them on for its own processes (item 8)."""

import re

from tests.support import ROOT


def _example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_env_example_keeps_debug_and_loopback_crms_off() -> None:
    example = _example()
    assert example["DJANGO_DEBUG"] == "false"
    assert example["CRM_ALLOW_LOOPBACK"] == "false"


def test_make_run_turns_debug_on_for_its_own_processes_only() -> None:
    makefile = (ROOT / "Makefile").read_text()
    run = re.search(r"^run:.*?(?=^\S)", makefile, re.S | re.M)
    assert run is not None
    assert "DJANGO_DEBUG=true" in run.group(0)
    # honcho would otherwise let .env override the command line's DJANGO_DEBUG.
    assert "-e /dev/null" in run.group(0)
    assert "DJANGO_DEBUG" not in makefile.replace(run.group(0), "")
