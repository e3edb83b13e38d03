import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from records.services.config_io import ConfigError, config_parse
from records.services.simulation import ruleset_from_settings_file, settings_simulate


class Command(BaseCommand):
    help = (
        "Dry-run a settings change: decide the last N days of sessions again with the settings in FILE "
        "(a configuration file, or just its settings) laid over the current ones, and print per session "
        "what would differ (new record vs append, title, tags, assignee). Nothing is saved or sent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="JSON settings file (as export_config writes), or - for stdin")
        parser.add_argument("--days", type=int, default=7, help="Sessions of the last N days (default 7)")
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        text = sys.stdin.read() if options["file"] == "-" else Path(options["file"]).read_text()
        try:
            changed = ruleset_from_settings_file(config_parse(text))
        except ConfigError as exc:
            raise CommandError("\n".join(exc.errors)) from exc
        result = settings_simulate(changed=changed, days=options["days"])
        if options["format"] == "json":
            body = {
                "days": result.days,
                "sessions_checked": result.sessions_checked,
                "sessions_changed": len(result.changed),
                "sessions": [
                    {
                        "session_id": item.session_id,
                        "before": asdict(item.before),
                        "after": asdict(item.after),
                        "differences": [asdict(difference) for difference in item.differences],
                    }
                    for item in result.changed
                ],
            }
            self.stdout.write(json.dumps(body, indent=2))
            return
        self.stdout.write(
            f"{result.sessions_checked} session(s) of the last {result.days} day(s) checked; "
            f"{len(result.changed)} would differ."
        )
        for item in result.changed:
            self.stdout.write(f"\n{item.session_id}")
            for difference in item.differences:
                self.stdout.write(f"  {difference.what}: {difference.before} -> {difference.after}")
