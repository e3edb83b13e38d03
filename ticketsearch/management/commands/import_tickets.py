"""`manage.py import_tickets [--connection ID] [--since DATE]`: import CRM agents and solved tickets now."""

from datetime import UTC, datetime
from typing import Any, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from integrations.exceptions import CrmError
from integrations.models import CrmConnection
from ticketsearch.models import ImportRun
from ticketsearch.services.importing import (
    ImportAlreadyRunning,
    ImportNotSupported,
    connections_to_import,
    tickets_import,
)


def _since(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--since {value!r}: give a date (2026-11-01) or an ISO date-time")
        parsed = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Import agents and solved tickets from the CRM connections (all importable ones, or --connection), "
        "reading only what changed since the last import unless --since is given. Shows progress and a summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", type=int, help="the CRM connection id (default: every importable one)")
        parser.add_argument("--since", help="read everything changed since this date or date-time, ignoring the cursor")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _since(options["since"]) if options["since"] else None
        if options["connection"] is not None:
            connections = list(CrmConnection.objects.filter(pk=options["connection"]))
            if not connections:
                raise CommandError(f"no CRM connection with id {options['connection']}")
        else:
            connections = list(CrmConnection.objects.filter(pk__in=connections_to_import()).order_by("pk"))
            if not connections:
                raise CommandError("no CRM connection with an import (Zendesk or Salesforce) is configured")
        failed = False
        for connection in connections:
            failed |= not self._import(connection, since, show_progress=not options["no_progress"])
        if failed:
            raise CommandError("at least one import failed (see above and the Import runs in the admin)")

    def _import(self, connection: CrmConnection, since: datetime | None, *, show_progress: bool) -> bool:
        self.stdout.write(f"Importing from {connection} (#{connection.pk})")
        bars: dict[str, tqdm[Any]] = {}

        def progress(phase: str, count: int, total: int | None) -> None:
            if not show_progress:
                return
            bar = bars.get(phase)
            if bar is None:
                bar = bars[phase] = tqdm(
                    desc=f"  {phase}", total=total, unit=phase[:-1], file=cast(Any, self.stderr._out)
                )
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(count)

        try:
            run = tickets_import(
                connection=connection, trigger=ImportRun.Trigger.COMMAND, since=since, progress=progress
            )
        except (ImportAlreadyRunning, ImportNotSupported) as exc:
            self.stderr.write(f"  skipped: {exc}")
            return isinstance(exc, ImportNotSupported)
        except CrmError as exc:
            self.stderr.write(f"  failed: {exc.__class__.__name__}: {exc}")
            return False
        finally:
            for bar in bars.values():
                bar.close()
        self.stdout.write(self._summary(run))
        return True

    def _summary(self, run: ImportRun) -> str:
        lines = [
            f"  import run #{run.pk}: {run.status}",
            f"  users: {run.users_fetched} read, {run.users_created} created, {run.users_updated} updated",
            f"  tickets: {run.tickets_fetched} read, {run.tickets_imported} imported, {run.tickets_updated} updated, "
            f"{run.tickets_removed} removed (reopened)",
            f"  interactions without user information left out: {run.comments_skipped}",
            f"  skipped: {sum(run.skipped.values())}",
        ]
        lines += [f"    {reason}: {count}" for reason, count in sorted(run.skipped.items())]
        return "\n".join(lines)
