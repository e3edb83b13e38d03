"""B1's pure decisions: which writes wait for a batch, what one flush sends, how often a job is read."""

import pytest

from integrations.providers.base import BatchService, BatchSettings
from records.batching import (
    BatchItem,
    WriteToBatch,
    batch_eligible,
    flush_selection,
    pairs_comment_with_update,
    poll_delay,
)

ON = BatchSettings(enabled=True)
COMMENTS_ONLY = BatchSettings(enabled=True, services=frozenset({BatchService.ADD_COMMENT}))
COMMENT = ("add_comment",)
PAIR = ("add_comment", "update_record")
RECORD = ("create_record",)
UPDATES_ONLY = BatchSettings(enabled=True, services=frozenset({BatchService.UPDATE_RECORD}))


@pytest.mark.parametrize(
    ("settings", "write", "expected"),
    [
        (ON, WriteToBatch(COMMENT, has_record=True, retried=False), True),
        (ON, WriteToBatch(("update_record",), has_record=True, retried=False), True),
        (ON, WriteToBatch(PAIR, has_record=True, retried=False), True),
        (BatchSettings(), WriteToBatch(COMMENT, has_record=True, retried=False), False),  # off by default
        (ON, WriteToBatch(COMMENT, has_record=False, retried=False), False),  # no record yet
        (ON, WriteToBatch(COMMENT, has_record=True, retried=True), False),  # a retry looks first, alone
        (ON, WriteToBatch(COMMENT, has_record=True, retried=False, has_attachment=True), False),
        (ON, WriteToBatch(("create_record",), has_record=True, retried=False), False),  # never batched
        (ON, WriteToBatch(("display_record",), has_record=True, retried=False), False),
        (COMMENTS_ONLY, WriteToBatch(COMMENT, has_record=True, retried=False), True),
        (COMMENTS_ONLY, WriteToBatch(PAIR, has_record=True, retried=False), False),  # one write: both or none
        (BatchSettings(enabled=True, services=frozenset()), WriteToBatch(COMMENT, True, False), False),
        (ON, WriteToBatch((), has_record=True, retried=False), False),
        # a record action appending to a found record (a repeat caller's open ticket): batched
        (ON, WriteToBatch(RECORD, has_record=True, retried=False, appends=True), True),
        # one that creates the record is never delayed
        (ON, WriteToBatch(RECORD, has_record=False, retried=False), False),
        (ON, WriteToBatch(RECORD, has_record=False, retried=False, appends=True), False),
        (BatchSettings(), WriteToBatch(RECORD, has_record=True, retried=False, appends=True), False),
        # its retry looks at the record first, unbatched (comment_once)
        (ON, WriteToBatch(RECORD, has_record=True, retried=True, appends=True), False),
        # notes or the dialed number of its own: more comments than a batch carries a record
        (ON, WriteToBatch(RECORD, has_record=True, retried=False, appends=True, extra_comments=True), False),
        (ON, WriteToBatch(COMMENT, has_record=True, retried=False, extra_comments=True), False),
        # an append is a comment and an update: both services or none
        (COMMENTS_ONLY, WriteToBatch(RECORD, has_record=True, retried=False, appends=True), False),
        (UPDATES_ONLY, WriteToBatch(RECORD, has_record=True, retried=False, appends=True), False),
        # "appends" is a record action's: a comment that says it appends is not one
        (ON, WriteToBatch(COMMENT, has_record=True, retried=False, appends=True), False),
        (ON, WriteToBatch(("create_record", "update_record"), True, False, appends=True), False),
    ],
)
def test_batch_eligible(settings: BatchSettings, write: WriteToBatch, expected: bool) -> None:
    assert batch_eligible(settings, write) is expected


@pytest.mark.parametrize(
    ("items", "max_items", "chosen", "left"),
    [
        ([], 100, [], []),
        ([(1, "a"), (2, "b")], 100, [1, 2], []),
        # one write per record a flush, the oldest first
        ([(3, "a"), (1, "a"), (2, "b")], 100, [1, 2], [3]),
        ([(1, "a"), (2, "a"), (3, "a")], 100, [1], [2, 3]),
        # at most max_items records a request
        ([(1, "a"), (2, "b"), (3, "c")], 2, [1, 2], [3]),
        ([(1, "a"), (2, "a"), (3, "b"), (4, "c")], 2, [1, 3], [2, 4]),
    ],
)
def test_flush_selection(items: list[tuple[int, str]], max_items: int, chosen: list[int], left: list[int]) -> None:
    got_chosen, got_left = flush_selection([BatchItem(*item) for item in items], max_items=max_items)

    assert [item.action_id for item in got_chosen] == chosen
    assert [item.action_id for item in got_left] == left


@pytest.mark.parametrize(("polls", "delay"), [(0, 0.5), (1, 1.0), (2, 2.0), (4, 8.0), (5, 10.0), (50, 10.0)])
def test_poll_delay(polls: int, delay: float) -> None:
    assert poll_delay(polls) == delay


@pytest.mark.parametrize(
    ("settings", "update_writes_comment", "paired"),
    [
        # Zendesk: one ticket update carries the comment, so an event's two actions stay one write.
        (ON, True, True),
        (UPDATES_ONLY, True, True),
        (BatchSettings(), True, True),
        # Kustomer: a note is a request of its own anyway; only updates batch, so they part.
        (UPDATES_ONLY, False, False),
        # Both batched, or batching off: nothing to gain from parting them.
        (ON, False, True),
        (BatchSettings(), False, True),
        (BatchSettings(enabled=False, services=frozenset({BatchService.UPDATE_RECORD})), False, True),
        (COMMENTS_ONLY, False, True),
    ],
)
def test_an_events_comment_and_update_part_only_where_that_batches_the_update_for_free(
    settings: BatchSettings, update_writes_comment: bool, paired: bool
) -> None:
    assert pairs_comment_with_update(settings, update_writes_comment=update_writes_comment) is paired
