import time
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from integrations.models import CrmConnection
from records.services.replay import replay_preview, replay_progress, replay_start


def _when(value: str, option: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"{option}: not a date and time, e.g. 2026-11-20T09:00 or 2026-11-20 09:00+00:00")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = (
        "Bulk replay after an outage: show how many of the connection's actions failed in the window "
        "and why (grouped by error), then retry them all in session order and wait for the result."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--connection", type=int, required=True, help="CRM connection id")
        parser.add_argument("--since", required=True, help="Failed from (ISO date and time; local time if no offset)")
        parser.add_argument("--until", help="Failed until (default: now)")
        parser.add_argument("--dry-run", action="store_true", help="Only show what failed and why")
        parser.add_argument("--wait", type=float, default=300, help="Seconds to wait for the result (0: do not)")

    def handle(self, *args: Any, **options: Any) -> None:
        connection = CrmConnection.objects.filter(pk=options["connection"]).first()
        if connection is None:
            raise CommandError(f"--connection: no CRM connection with id {options['connection']}")
        since = _when(options["since"], "--since")
        until = _when(options["until"], "--until") if options["until"] else timezone.now()
        if since > until:
            raise CommandError("--until: the window ends before it starts")
        preview = replay_preview(connection=connection, since=since, until=until)
        self.stdout.write(f"{preview.actions} failed action(s) in {preview.sessions} session(s) of {connection}")
        for group in preview.groups:
            self.stdout.write(f"  {group.count:>5}  {group.error}  (e.g. #{group.example_action_id})")
        if options["dry_run"] or not preview.actions:
            return
        replay = replay_start(connection=connection, since=since, until=until, requested_by="replay_failed")
        self.stdout.write(f"Replay #{replay.pk}: {len(replay.action_ids)} action(s) queued in session order")
        deadline = time.monotonic() + options["wait"]
        progress = replay_progress(replay=replay)
        while not progress.finished and time.monotonic() < deadline:
            time.sleep(1)
            progress = replay_progress(replay=replay)
        states = ", ".join(f"{label.lower()}: {count}" for label, count in progress.sessions_by_state.items())
        self.stdout.write(
            f"{'Finished' if progress.finished else 'Still running'}: {progress.succeeded} succeeded, "
            f"{progress.failed} failed again, {progress.pending} pending; sessions {states or '-'}"
        )
        if progress.failed:
            raise CommandError(f"{progress.failed} action(s) failed again: see Replay #{replay.pk} in the admin")
