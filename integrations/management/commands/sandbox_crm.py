"""`manage.py sandbox_crm zendesk --port 8801`: serve a sandbox CRM on loopback until interrupted.

The first line printed is the `add_crm_connection` command that connects the product to it.
"""

import contextlib
import shlex
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.sandbox import SANDBOXES, build_sandbox

DEMO_FIXTURES = Path(__file__).resolve().parents[2] / "sandbox" / "fixtures"


def connect_command(kind: str, base_url: str, settings: dict[str, str]) -> str:
    """The exact `add_crm_connection` line that connects the product to a sandbox."""
    words = [".venv/bin/python", "manage.py", "add_crm_connection", "--provider", kind, "--base-url", base_url]
    for name, value in settings.items():
        words += ["--setting", f"{name}={value}"]
    words += ["--name", f"Sandbox {kind}"]
    return shlex.join(words)


class Command(BaseCommand):
    help = (
        "Serve a sandbox CRM: the documented API subset with state in memory, plus /__sandbox/stats, "
        "/__sandbox/config and /__sandbox/reset. Runs until interrupted (Ctrl-C)."
    )
    # The sandbox uses nothing from the project's apps or database, so their checks are not run.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", help=f"the CRM to imitate: {', '.join(sorted(SANDBOXES))}")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8801, help="0 picks a free port")
        parser.add_argument(
            "--fixture",
            help="a JSON file of records loaded at start and on every reset (default: the kind's demo fixture)",
        )
        parser.add_argument("--empty", action="store_true", help="start without the demo fixture")
        parser.add_argument(
            "--seed-tickets",
            type=int,
            default=0,
            help="also generate N solved tickets of the last 95 days (for QA search; sandboxes with an import)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kind = options["kind"]
        if kind not in SANDBOXES:
            raise CommandError(f"unknown sandbox kind {kind!r}; known kinds: {', '.join(sorted(SANDBOXES))}")
        fixture = options["fixture"]
        demo = DEMO_FIXTURES / f"{kind}_demo.json"
        if fixture is None and not options["empty"] and demo.exists():
            fixture = str(demo)
        try:
            server = build_sandbox(kind, host=options["host"], port=options["port"], fixture=fixture)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot start the {kind} sandbox: {exc}") from exc
        self.stdout.write(connect_command(kind, server.base_url, server.sandbox.connection_settings()))
        if options["seed_tickets"]:
            # The same generator as `POST /__sandbox/seed {"count": N}` (a fixed seed: the same demo each time).
            answer = server.sandbox.control("POST", "seed", {"count": options["seed_tickets"], "seed": 1})
            if answer is None:
                raise CommandError(f"the {kind} sandbox has no ticket import to seed")
            self.stdout.write(f"seeded {len(answer.body['tickets'])} solved tickets")
        self.stdout.write(f"sandbox {kind} listening on {server.base_url}")
        self.stdout.flush()
        # Ctrl-C is the way to stop it, so it ends quietly; the socket is closed either way.
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
