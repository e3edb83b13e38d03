import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from records.services.config_io import ConfigError, config_import


class Command(BaseCommand):
    help = (
        "Check a configuration file (as `export_config` writes it, docs/configuration.md) and apply it in one "
        "transaction: all of it, or nothing when any part is invalid. Prints what changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The JSON file, or - to read standard input")
        parser.add_argument("--dry-run", action="store_true", help="Check and report the changes, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        source = options["file"]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {source}: {exc}") from None
        try:
            changes = config_import(text=text, dry_run=options["dry_run"])
        except ConfigError as exc:
            lines = "\n".join(f"  {error}" for error in exc.errors)
            raise CommandError(f"{source} is not valid; nothing was changed:\n{lines}") from None
        for change in changes:
            self.stdout.write(change)
        verb = "would change" if options["dry_run"] else "changed"
        self.stdout.write(self.style.SUCCESS(f"{len(changes)} item(s) {verb}." if changes else "No changes."))
