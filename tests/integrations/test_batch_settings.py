"""B1's connection settings as providers declare them, and Zendesk's per-item job results."""

from typing import Any

import pytest

from integrations.exceptions import CrmNotFound, CrmRequestError, CrmTransientError
from integrations.providers.base import (
    BATCH_SETTINGS,
    BatchService,
    BatchSettings,
    Capability,
    SettingSpec,
    batch_settings,
    setting_value,
)
from integrations.providers.registry import PROVIDERS
from integrations.providers.zendesk import _job

ENABLED, SERVICES, INTERVAL = BATCH_SETTINGS


@pytest.mark.parametrize(
    ("setting", "raw", "expected"),
    [
        (ENABLED, True, True),
        (ENABLED, "on", True),
        (ENABLED, "false", False),
        (ENABLED, None, False),
        (INTERVAL, 1, 1),
        (INTERVAL, "60", 60),
        (INTERVAL, None, 10),
        (SERVICES, ["update_record", "add_comment"], ["add_comment", "update_record"]),
        (SERVICES, "add_comment", ["add_comment"]),
        (SERVICES, [], []),
    ],
)
def test_setting_value_reads_typed_settings(setting: SettingSpec, raw: Any, expected: Any) -> None:
    assert setting_value(setting, raw) == expected


@pytest.mark.parametrize(
    ("setting", "raw", "error"),
    [
        (ENABLED, "maybe", "true or false"),
        (ENABLED, 1, "true or false"),
        (INTERVAL, 0, "from 1 to 60"),
        (INTERVAL, 61, "from 1 to 60"),
        (INTERVAL, "ten", "whole number"),
        (INTERVAL, True, "whole number"),
        (SERVICES, ["create_record"], "add_comment, update_record"),
        (SERVICES, 3, "add_comment, update_record"),
    ],
)
def test_setting_value_refuses_what_the_setting_cannot_be(setting: SettingSpec, raw: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        setting_value(setting, raw)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, BatchSettings(enabled=False, services=frozenset(BatchService), interval_seconds=10)),
        (
            {"batching_enabled": True, "batched_services": ["add_comment"], "batch_interval_seconds": 5},
            BatchSettings(enabled=True, services=frozenset({BatchService.ADD_COMMENT}), interval_seconds=5),
        ),
        # only a stored true switches it on; a stored interval out of range is held to 1-60
        ({"batching_enabled": "yes", "batch_interval_seconds": 600}, BatchSettings(interval_seconds=60)),
    ],
)
def test_batch_settings_from_the_connection_config(config: dict[str, Any], expected: BatchSettings) -> None:
    assert batch_settings(config) == expected


def test_only_providers_that_can_batch_declare_the_batching_settings() -> None:
    for kind, provider in PROVIDERS.items():
        declared = {setting.name for setting in provider.settings_spec}
        batching = {setting.name for setting in BATCH_SETTINGS}
        assert (batching <= declared) is provider.can(Capability.BATCHING), kind
        assert (provider.batch_max_items > 0) is provider.can(Capability.BATCHING), kind
    assert PROVIDERS["zendesk"].can(Capability.BATCHING)


def test_zendesk_job_results_each_item_on_its_own() -> None:
    job = _job(
        {
            "id": "V3-abc",
            "status": "completed",
            "message": "Completed",
            "results": [
                {"action": "update", "status": "Updated", "success": True, "id": 1},
                {
                    "index": 1,
                    "id": 2,
                    "action": "update",
                    "success": False,
                    "status": "Failed",
                    "error": "RecordNotFound",
                },
                {
                    "index": 2,
                    "id": 3,
                    "success": False,
                    "status": "Failed",
                    "error": "RecordInvalid",
                    "details": "closed",
                },
                {"index": 3, "id": 4, "success": False, "status": "Failed", "error": "TicketUpdateFailed"},
            ],
        }
    )

    assert (job.id, job.done, job.failed) == ("V3-abc", True, False)
    errors = [result.error for result in job.results]
    assert errors[0] is None
    assert isinstance(errors[1], CrmNotFound)
    assert isinstance(errors[2], CrmRequestError)
    assert not isinstance(errors[2], CrmNotFound)
    assert "closed" in str(errors[2])
    assert isinstance(errors[3], CrmTransientError)
    assert [result.record_id for result in job.results] == ["1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("status", "done", "failed"),
    [
        ("queued", False, False),
        ("working", False, False),
        ("completed", True, False),
        ("failed", True, True),
        ("killed", True, True),
    ],
)
def test_zendesk_job_states(status: str, done: bool, failed: bool) -> None:
    job = _job({"id": "V3-x", "status": status, "results": None})

    assert (job.done, job.failed, job.results) == (done, failed, ())
