"""Retention (T3): tickets past 90 days are purged, whole week partitions dropped, the cut-off's week trimmed."""

import importlib
import threading
import time
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django import db
from django.db import transaction

from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from tests.ticketsearch.support import DANA, ZOE, seed, zendesk_users
from ticketsearch.models import CrmComment, ImportRun, Ticket
from ticketsearch.services.importing import tickets_import
from ticketsearch.services.retention import (
    DAYS_AHEAD,
    SEARCH_INDEX,
    SEARCH_INDEX_PENDING_LIST_KB,
    partition_name,
    partitions_ensure,
    partitions_existing,
    tickets_purge_expired,
)
from ticketsearch.tasks import purge_expired_tickets_task

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
# A Monday 10 to 16 days ago, the first day of its week's partition. Two tickets on it, 12 hours
# apart: the cut-off will fall between them; one on the Tuesday after, inside the same week.
DAY = (NOW - timedelta(days=10 + (NOW - timedelta(days=10)).weekday())).replace(hour=0, minute=0, second=0)
MORNING, EVENING = DAY + timedelta(hours=6), DAY + timedelta(hours=18)
TUESDAY = DAY + timedelta(days=1, hours=6)
# The Sunday before: the week before's partition.
OLDER = DAY - timedelta(days=1, hours=-3)


def solved(ticket_id: int, created: datetime) -> dict[str, object]:
    return {
        "id": ticket_id,
        "subject": f"Ticket {ticket_id}",
        "status": "solved",
        "assignee_id": ZOE,
        "requester_id": DANA,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updated_at": (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@pytest.fixture
def imported(zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer) -> None:
    seed(zendesk_sandbox, {"users": zendesk_users(), "tickets": [
        solved(1, OLDER), solved(2, MORNING), solved(3, EVENING), solved(4, NOW - timedelta(days=1)),
        solved(5, TUESDAY),
    ]})  # fmt: skip
    tickets_import(connection=zendesk_connection, trigger=ImportRun.Trigger.COMMAND, now=NOW)


@pytest.mark.usefixtures("imported")
def test_T3_purge_drops_expired_weeks_and_deletes_the_expired_hours_of_the_cutoff_week() -> None:
    # 90 days after noon of DAY: the morning ticket is past 90 days, the evening one is not.
    now = DAY + timedelta(days=90, hours=12)
    assert partition_name(OLDER.date()) != partition_name(DAY.date())
    assert partition_name(OLDER.date()) in partitions_existing()

    result = tickets_purge_expired(now=now)

    assert result.partitions_dropped == [partition_name(OLDER.date())]
    assert result.rows_deleted == 1
    assert sorted(Ticket.objects.values_list("crm_ticket_id", flat=True)) == ["3", "4", "5"]
    assert partition_name(OLDER.date()) not in partitions_existing()
    # The cut-off's week stays: it still holds the evening and the Tuesday tickets.
    assert partition_name(DAY.date()) in partitions_existing()


@pytest.mark.usefixtures("imported")
def test_T3_a_whole_expired_day_inside_the_oldest_week_is_deleted_to_the_second() -> None:
    # The cut-off one second after the Tuesday ticket was made: Monday's two and Tuesday's go, the week stays.
    now = TUESDAY + timedelta(days=90, seconds=1)

    result = tickets_purge_expired(now=now)

    assert result.rows_deleted == 3
    assert sorted(Ticket.objects.values_list("crm_ticket_id", flat=True)) == ["4"]
    assert partition_name(DAY.date()) in partitions_existing()


@pytest.mark.usefixtures("imported")
def test_T3_a_week_is_dropped_once_its_last_second_is_past_the_cutoff() -> None:
    next_monday = DAY + timedelta(days=7)

    kept = tickets_purge_expired(now=next_monday + timedelta(days=90) - timedelta(seconds=1))
    assert partition_name(DAY.date()) not in kept.partitions_dropped
    dropped = tickets_purge_expired(now=next_monday + timedelta(days=90))

    assert dropped.partitions_dropped == [partition_name(DAY.date())]
    assert sorted(Ticket.objects.values_list("crm_ticket_id", flat=True)) == ["4"]


@pytest.mark.usefixtures("imported")
def test_T3_nothing_younger_than_90_days_is_purged() -> None:
    result = tickets_purge_expired(now=NOW)

    assert (result.partitions_dropped, result.rows_deleted) == ([], 0)
    assert Ticket.objects.count() == 5


@pytest.mark.usefixtures("imported")
def test_T3_purge_makes_the_coming_days_partitions() -> None:
    now = NOW + timedelta(days=30)

    result = tickets_purge_expired(now=now)

    coming = {partition_name((now + timedelta(days=offset)).date()) for offset in range(DAYS_AHEAD + 1)}
    assert coming <= set(partitions_existing())
    assert set(result.partitions_created) <= coming


@pytest.mark.usefixtures("imported")
def test_T3_the_scheduled_purge_task_keeps_recent_tickets() -> None:
    purge_expired_tickets_task()

    assert Ticket.objects.count() == 5
    assert partition_name(datetime.now(UTC).date() + timedelta(days=DAYS_AHEAD)) in partitions_existing()


@pytest.mark.django_db(transaction=True)
def test_T3_two_workers_making_the_same_partition_at_once_both_succeed() -> None:
    """Each saw the week missing; the second waits for the DDL lock and finds it made (issue 15)."""
    day = date(2099, 1, 2)
    first_made = threading.Event()
    errors: list[BaseException] = []
    made: dict[str, list[str]] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                made["first"] = partitions_ensure(days=[day], existing=set())
                first_made.set()
                # Hold the transaction open while the second worker tries.
                time.sleep(1.0)
        except BaseException as exc:  # noqa: BLE001  # reported by the assertion below
            errors.append(exc)
            first_made.set()
        finally:
            db.connection.close()

    def second() -> None:
        first_made.wait(10)
        try:
            made["second"] = partitions_ensure(days=[day], existing=set())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            db.connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert made == {"first": [partition_name(day)], "second": []}
    finally:
        with db.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {partition_name(day)}")


def test_T3_purge_deletes_the_expired_comments_of_the_import_comment_store(zendesk_connection: CrmConnection) -> None:
    def comment(comment_id: str, created: datetime) -> CrmComment:
        return CrmComment(
            connection=zendesk_connection, crm_ticket_id="1", crm_comment_id=comment_id, body="hello", public=True,
            created_at=created,
        )  # fmt: skip

    CrmComment.objects.bulk_create([comment("old", MORNING), comment("kept", EVENING)])

    tickets_purge_expired(now=DAY + timedelta(days=90, hours=12))

    assert list(CrmComment.objects.values_list("crm_comment_id", flat=True)) == ["kept"]


def _migration() -> Any:
    return importlib.import_module("ticketsearch.migrations.0009_ticket_week_partitions")


def _rows() -> list[tuple[Any, ...]]:
    with db.connection.cursor() as cursor:
        cursor.execute("SELECT id, created_at, crm_ticket_id, subject, search_vector::text FROM ticketsearch_ticket")
        return sorted(cursor.fetchall())


def test_T3_the_migration_moves_stored_day_partitions_into_weeks(imported: None) -> None:
    """Migration 0008 on a populated table: every row moves, with its id and search vector (issue 14)."""
    editor = SimpleNamespace(connection=db.connection)
    before = _rows()
    # Back to the day layout the migration starts from (its reverse), then forward again.
    _migration().weeks_to_days(None, editor)
    assert all(name.startswith("ticketsearch_ticket_p") for name in _partition_names())
    assert _rows() == before

    _migration().days_to_weeks(None, editor)

    assert _rows() == before
    names = _partition_names()
    assert set(names) == set(partitions_existing())
    assert {partition_name(OLDER.date()), partition_name(DAY.date())} <= set(names)
    assert partition_name(datetime.now(UTC).date() + timedelta(days=DAYS_AHEAD)) in names


def test_T3_the_migration_on_an_empty_table_makes_the_coming_weeks() -> None:
    editor = SimpleNamespace(connection=db.connection)
    _migration().weeks_to_days(None, editor)

    _migration().days_to_weeks(None, editor)

    today = datetime.now(UTC).date()
    names = _partition_names()
    assert {partition_name(today + timedelta(days=d)) for d in range(DAYS_AHEAD + 1)} <= set(names)
    assert set(names) == set(partitions_existing())  # weeks only, no day partition left
    assert Ticket.objects.count() == 0


def _partition_names() -> list[str]:
    with db.connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'ticketsearch_ticket'::regclass"
        )
        return sorted(row[0] for row in cursor.fetchall())


def _search_index_pending_list_limits() -> dict[str, str | None]:
    """Each partition's search index: its gin_pending_list_limit setting, None when it has none."""
    with db.connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT index.relname, (
                SELECT option FROM unnest(index.reloptions) option WHERE option LIKE 'gin_pending_list_limit=%%'
            )
            FROM pg_inherits JOIN pg_class index ON index.oid = pg_inherits.inhrelid
            WHERE pg_inherits.inhparent = %s::regclass
            """,
            [SEARCH_INDEX],
        )
        return dict(cursor.fetchall())


def test_T3_every_partition_caps_its_search_index_pending_list() -> None:
    """A search reads each partition's whole GIN pending list: made by migration or by the purge, it is capped."""
    # given the partitions the migrations made, and those of the days 30 days on, made by the purge
    result = tickets_purge_expired(now=NOW + timedelta(days=30))
    assert result.partitions_created

    limits = _search_index_pending_list_limits()

    assert len(limits) == len(partitions_existing())
    assert set(limits.values()) == {f"gin_pending_list_limit={SEARCH_INDEX_PENDING_LIST_KB}"}


def test_T3_the_pending_list_migration_sets_and_resets_every_partition() -> None:
    migration = importlib.import_module("ticketsearch.migrations.0010_search_index_pending_list_limit")
    editor = SimpleNamespace(connection=db.connection)

    migration.unlimit(None, editor)
    assert set(_search_index_pending_list_limits().values()) == {None}

    migration.limit(None, editor)
    assert set(_search_index_pending_list_limits().values()) == {"gin_pending_list_limit=1024"}
