"""Storing platform events: all or nothing, before the platform gets its 202."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from records.models import Event, Session


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


@transaction.atomic
def events_ingest(*, events: Sequence[dict[str, Any]]) -> IngestResult:
    """Store validated events and their sessions in one transaction; enqueue processing on commit.

    A repeated event_id (from an earlier call or earlier in this batch) is counted as a duplicate
    and not stored again, so it is never applied twice.
    """
    from records.tasks import enqueue_processing

    event_ids = [event["event_id"] for event in events]
    seen = set(Event.objects.filter(event_id__in=event_ids).values_list("event_id", flat=True))
    new_events = []
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        new_events.append(event)
    if not new_events:
        return IngestResult(accepted=0, duplicates=len(events))

    session_ids = {event["session_id"] for event in new_events}
    # ignore_conflicts: a concurrent request may be creating the same session.
    Session.objects.bulk_create([Session(external_id=sid) for sid in session_ids], ignore_conflicts=True)
    sessions = dict(Session.objects.filter(external_id__in=session_ids).values_list("external_id", "id"))
    # ignore_conflicts again: a concurrent request with the same event_id stores it once.
    Event.objects.bulk_create(
        [
            Event(
                event_id=event["event_id"],
                session_id=sessions[event["session_id"]],
                type=event["type"],
                occurred_at=event["occurred_at"],
                data=event["data"],
                extra=event.get("extra") or {},
            )
            for event in new_events
        ],
        ignore_conflicts=True,
    )
    session_pks = sorted(sessions.values())

    def enqueue() -> None:
        # A named function, not a functools.partial: robust=True logs a failed enqueue (the broker
        # gone) with the callback's __qualname__, which a partial lacks, so the logging itself
        # raised and the API answered 500 for a batch it had stored. Now the batch is acknowledged
        # and the sweep (records.tasks, every 5 s) enqueues it once the broker is back.
        enqueue_processing(session_pks)

    transaction.on_commit(enqueue, robust=True)
    return IngestResult(accepted=len(new_events), duplicates=len(events) - len(new_events))
