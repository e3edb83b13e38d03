"""B1's decisions, pure: which writes wait for a batch, which go in one flush, how long between reads.

No ORM, settings, clock or HTTP; records.services.batching carries them out.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from integrations.providers.base import BatchService, BatchSettings
from records.vocabulary import ActionKind

# The action kinds B1 may batch, and the setting each one is batched under.
BATCHED_KINDS: dict[str, BatchService] = {
    ActionKind.ADD_COMMENT: BatchService.ADD_COMMENT,
    ActionKind.UPDATE_RECORD: BatchService.UPDATE_RECORD,
}
# A record action that appends the session to an existing record (a repeat caller's open ticket)
# writes a comment with the record's changes (reopen, assignee, tags, fields): it is batched when
# both services are. One that creates the record never is.
APPEND_SERVICES = (BatchService.ADD_COMMENT, BatchService.UPDATE_RECORD)
# Seconds between reads of a sent batch's job: quick at first (Zendesk runs small jobs in about
# a second), then slower, never more than POLL_MAX_SECONDS apart.
POLL_FIRST_SECONDS = 0.5
POLL_MAX_SECONDS = 10.0


@dataclass(frozen=True)
class WriteToBatch:
    """One due write as the batching decision sees it: an action, or an event's comment and update."""

    kinds: tuple[str, ...]
    # The session's record exists (the record's creation itself is never batched).
    has_record: bool
    # An earlier attempt may have written it: the unbatched retry looks at the record first.
    retried: bool
    # A file to upload first: not batched (its upload is a request of its own anyway).
    has_attachment: bool = False
    # A create_record whose record was found: it appends to that record instead of making one.
    appends: bool = False
    # Comments of its own beside the write (an append's notes, the dialed number): not batched,
    # as a batch carries one comment a record.
    extra_comments: bool = False


def batch_eligible(settings: BatchSettings, write: WriteToBatch) -> bool:
    """Whether this write waits for the connection's next flush instead of being sent now.

    Every kind of the write must be a batched service: an event's comment and update are one
    request, batched together or not at all. A record action only when it appends (record creation is
    never delayed), under both the comment and the update service.
    """
    if not settings.enabled or not write.has_record or write.retried or write.has_attachment:
        return False
    if write.extra_comments:
        return False
    services: list[BatchService | None]
    if write.appends:
        services = list(APPEND_SERVICES) if write.kinds == (ActionKind.CREATE_RECORD,) else [None]
    else:
        services = [BATCHED_KINDS.get(kind) for kind in write.kinds]
    return bool(services) and all(service is not None and service in settings.services for service in services)


def pairs_comment_with_update(settings: BatchSettings, *, update_writes_comment: bool) -> bool:
    """Whether an event's comment and its record update are written together (one write, batched
    together or not at all).

    Not when the update alone would wait for a batch while the comment cannot, and the CRM writes
    a comment in a request of its own anyway (`update_writes_comment` False: Kustomer's note): then
    the comment goes at once and the update joins the batch, which costs no extra request.
    """
    if update_writes_comment or not settings.enabled:
        return True
    return not (BatchService.UPDATE_RECORD in settings.services and BatchService.ADD_COMMENT not in settings.services)


@dataclass(frozen=True)
class BatchItem:
    """A buffered write as the flush sees it: its lead action's id and the record it writes to."""

    action_id: int
    record_id: str


def flush_selection(items: Sequence[BatchItem], *, max_items: int) -> tuple[list[BatchItem], list[BatchItem]]:
    """The items one flush sends, and those left for the next.

    One item per record a flush, the oldest first: the CRM's results are per record, and two
    writes to one record in one request would have no order the result could be matched to.
    At most `max_items` records a request.
    """
    chosen: list[BatchItem] = []
    records: set[str] = set()
    left: list[BatchItem] = []
    for item in sorted(items, key=lambda item: item.action_id):
        if item.record_id in records or len(chosen) >= max_items:
            left.append(item)
            continue
        records.add(item.record_id)
        chosen.append(item)
    return chosen, left


def poll_delay(polls: int) -> float:
    """Seconds before the next read of a sent batch's job, after `polls` reads that found it unfinished."""
    return min(POLL_MAX_SECONDS, POLL_FIRST_SECONDS * 2**polls)
