"""Renaming a task orphans the messages already queued under the old name: the list is locked here."""

from config.celery import app


def test_registered_task_names_are_stable() -> None:
    app.loader.import_default_modules()

    names = sorted(name for name in app.tasks if not name.startswith("celery."))

    assert names == [
        "agentstatus.apply_webhook_event",
        "agentstatus.prune_webhook_events",
        "agentstatus.push_status",
        "agentstatus.sweep_pushes",
        "records.create_custom_fields",
        "records.flush_batch",
        "records.process_sessions",
        "records.run_session_actions",
        "records.sweep_sessions",
        "ticketsearch.import_connection",
        "ticketsearch.purge_expired_tickets",
        "ticketsearch.schedule_imports",
    ]
