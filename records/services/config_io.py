"""Configuration as code: the operation-management settings, teams, queues, custom data mapping and
custom field ids, exported to JSON and imported from it (docs/configuration.md).

`config_validate` is pure: it reads no database (the names of the CRM connections and teams it may
refer to are passed in) and returns every error, each naming its JSON path. `config_apply` writes a
validated file in one transaction. Each section present in a file is the whole truth for what it
covers: settings it leaves out go back to their defaults, rows it does not list are removed.
"""

import json
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from rest_framework import serializers

from integrations.models import CrmConnection
from integrations.providers.base import CrmProvider, SettingSpec, setting_value
from integrations.providers.registry import PROVIDERS
from integrations.services import connection_apply_settings, connection_settings_spec
from records.models import CustomDataMapping, CustomField, OperationSettings, Queue, Team
from records.phones import E164PhoneField
from records.vocabulary import RECORD_FIELDS

CONFIG_VERSION = 1
# The OperationSettings fields a file carries (not the row's bookkeeping).
SETTINGS_EXCLUDED = frozenset({"id", "updated_at"})
SECTIONS = ("version", "settings", "connections", "teams", "queues", "custom_data_mappings", "custom_fields")
TEAM_FLAGS = ("enable_ticket_id", "ticket_id_required", "linked_to_external_queue")
RECORD_FIELD_KEYS = frozenset(spec.key for spec in RECORD_FIELDS)
TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", list: "a list", dict: "an object"}


class ConfigError(Exception):
    """The file cannot be imported; `errors` says where and why, one line each."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


@dataclass(frozen=True)
class TeamConfig:
    name: str
    enable_ticket_id: bool = False
    ticket_id_required: bool = False
    linked_to_external_queue: bool = False


@dataclass(frozen=True)
class QueueConfig:
    platform_id: str
    name: str = ""
    path: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    default_outbound_number: str = ""


@dataclass(frozen=True)
class MappingConfig:
    connection: str
    sdk_key: str
    crm_field_id: str


@dataclass(frozen=True)
class CustomFieldConfig:
    connection: str
    key: str
    crm_field_id: str


@dataclass(frozen=True)
class ConnectionConfig:
    """A connection's non-secret settings, as its provider declares them (secrets never leave the admin)."""

    name: str
    kind: str
    base_url: str
    # Text settings as text; typed ones (B1's batching) as JSON values.
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class ConfigFile:
    """A validated file; a section that is None was not in the file and is left as it is."""

    settings: Mapping[str, Any] | None = None
    connections: tuple[ConnectionConfig, ...] | None = None
    teams: tuple[TeamConfig, ...] | None = None
    queues: tuple[QueueConfig, ...] | None = None
    custom_data_mappings: tuple[MappingConfig, ...] | None = None
    custom_fields: tuple[CustomFieldConfig, ...] | None = None


# -- Export ------------------------------------------------------------------------------------


def _exported_setting(setting: SettingSpec, config: Mapping[str, Any]) -> Any:
    """A connection setting as the file has it: text as text, typed ones (B1) as JSON values."""
    if setting.typed:
        return config.get(setting.name, setting.default)
    return str(config.get(setting.name) or "")


def _settings_fields() -> list[models.Field[Any, Any]]:
    return [
        field
        for field in OperationSettings._meta.concrete_fields
        if field.name not in SETTINGS_EXCLUDED and isinstance(field, models.Field)
    ]


def config_export() -> dict[str, Any]:
    """The whole configuration as JSON-ready data, in a stable order (diffs stay small)."""
    settings = OperationSettings.load()
    return {
        "version": CONFIG_VERSION,
        "settings": {field.name: getattr(settings, field.name) for field in _settings_fields()},
        "connections": [
            {
                "name": connection.name,
                "kind": connection.kind,
                "base_url": connection.base_url,
                "settings": {
                    setting.name: _exported_setting(setting, connection.config or {})
                    for setting in connection_settings_spec(connection.kind)
                    if not setting.secret
                },
            }
            for connection in CrmConnection.objects.filter(kind__in=PROVIDERS).order_by("name")
        ],
        "teams": [
            {
                "name": team.name,
                "enable_ticket_id": team.enable_ticket_id,
                "ticket_id_required": team.ticket_id_required,
                "linked_to_external_queue": team.linked_to_external_queue,
            }
            for team in Team.objects.order_by("name")
        ],
        "queues": [
            {
                "platform_id": queue.platform_id,
                "name": queue.name,
                "path": list(queue.path),
                "teams": sorted(team.name for team in queue.teams.all()),
                "default_outbound_number": queue.default_outbound_number,
            }
            for queue in Queue.objects.order_by("platform_id").prefetch_related("teams")
        ],
        "custom_data_mappings": [
            {"connection": mapping.connection.name, "sdk_key": mapping.sdk_key, "crm_field_id": mapping.crm_field_id}
            for mapping in CustomDataMapping.objects.select_related("connection").order_by(
                "connection__name", "sdk_key"
            )
        ],
        "custom_fields": [
            {"connection": field.connection.name, "key": field.key, "crm_field_id": field.crm_field_id}
            for field in CustomField.objects.select_related("connection").order_by("connection__name", "key")
        ],
    }


def config_export_json() -> str:
    return json.dumps(config_export(), indent=2, ensure_ascii=False) + "\n"


# -- Validation (pure) -------------------------------------------------------------------------


def config_parse(text: str) -> Any:
    """The file's JSON, or ConfigError naming the line and column where it stops being JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"(file): not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"]) from None


def _is(value: Any, expected: type) -> bool:
    # bool is an int in Python, but true is no number of days.
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _type_error(path: str, expected: type, value: Any) -> str:
    return f"{path}: must be {TYPE_NAMES[expected]}, not {json.dumps(value)}"


def _messages(exc: ValidationError) -> str:
    return " ".join(" ".join(str(message) for message in exc.messages).split())


def _validate_settings(value: Any, errors: list[str]) -> dict[str, Any] | None:
    if not _is(value, dict):
        errors.append(_type_error("settings", dict, value))
        return None
    fields = {field.name: field for field in _settings_fields()}
    cleaned: dict[str, Any] = {}
    for key, item in value.items():
        path = f"settings.{key}"
        field = fields.get(key)
        if field is None:
            errors.append(f"{path}: unknown setting; known: {', '.join(fields)}")
            continue
        expected = (
            bool if isinstance(field, models.BooleanField) else int if isinstance(field, models.IntegerField) else str
        )
        if not _is(item, expected):
            errors.append(_type_error(path, expected, item))
            continue
        try:
            # The model field's own checks: choices, lengths, ranges, email, the R7 title variables.
            cleaned[key] = field.clean(item, None)
        except ValidationError as exc:
            errors.append(f"{path}: {_messages(exc)}")
    if not any(error.startswith("settings") for error in errors):
        complete = {name: field.get_default() for name, field in fields.items()} | cleaned
        try:
            OperationSettings(**complete).clean()
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                errors.append(f"settings.{name}: {' '.join(messages)}")
    return cleaned


class JsonValueField(serializers.Field):
    """A JSON value of one type, as the file has it; the error says which type in the file's words."""

    default_error_messages = {"required": "required"}

    def __init__(self, expected: type, *, non_empty: bool = False, **kwargs: Any) -> None:
        self.expected = expected
        self.non_empty = non_empty
        # JSON null is a value of the wrong type like any other.
        kwargs["error_messages"] = {"null": f"must be {TYPE_NAMES[expected]}, not null"}
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if not _is(data, self.expected):
            raise serializers.ValidationError(f"must be {TYPE_NAMES[self.expected]}, not {json.dumps(data)}")
        if self.non_empty and not data.strip():
            raise serializers.ValidationError("cannot be empty")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


def _text(*, required: bool = False) -> JsonValueField:
    return JsonValueField(str, non_empty=required, required=required)


class TeamRow(serializers.Serializer[Any]):
    name = _text(required=True)
    enable_ticket_id = JsonValueField(bool, required=False)
    ticket_id_required = JsonValueField(bool, required=False)
    linked_to_external_queue = JsonValueField(bool, required=False)


class ConnectionRow(serializers.Serializer[Any]):
    name = _text(required=True)
    kind = _text(required=True)
    base_url = _text(required=True)
    settings = JsonValueField(dict, required=False)


class QueueRow(serializers.Serializer[Any]):
    platform_id = _text(required=True)
    name = _text()
    path = JsonValueField(list, required=False)
    teams = JsonValueField(list, required=False)
    # The event API's phone field: one validator for the API, the file and the admin.
    default_outbound_number = E164PhoneField(required=False, allow_blank=True)


class MappingRow(serializers.Serializer[Any]):
    connection = _text(required=True)
    sdk_key = _text(required=True)
    crm_field_id = _text(required=True)


class CustomFieldRow(serializers.Serializer[Any]):
    connection = _text(required=True)
    key = _text(required=True)
    crm_field_id = _text(required=True)


def _validate_rows(
    section: str, value: Any, row_serializer: type[serializers.Serializer[Any]], errors: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """Each good row of a list section as (its path, its checked values); the bad ones' errors, by path."""
    if not _is(value, list):
        errors.append(_type_error(section, list, value))
        return []
    known = list(row_serializer().fields)
    rows = []
    for index, row in enumerate(value):
        path = f"{section}[{index}]"
        if not _is(row, dict):
            errors.append(_type_error(path, dict, row))
            continue
        unknown = [f"{path}.{key}: unknown key; known: {', '.join(known)}" for key in row if key not in known]
        serializer = row_serializer(data=row)
        valid = serializer.is_valid()
        errors += unknown
        errors += [f"{path}.{key}: {message}" for key, messages in serializer.errors.items() for message in messages]
        if valid and not unknown:
            rows.append((path, dict(serializer.validated_data)))
    return rows


def _max_length(model: type[models.Model], name: str) -> int:
    field = model._meta.get_field(name)
    assert isinstance(field, models.CharField)
    return field.max_length or 0


def _check_length(path: str, value: str, model: type[models.Model], name: str, errors: list[str]) -> None:
    limit = _max_length(model, name)
    if len(value) > limit:
        errors.append(f"{path}: at most {limit} characters (it has {len(value)})")


def _unique(path: str, key: Any, seen: dict[Any, str], what: str, errors: list[str]) -> None:
    if key in seen:
        errors.append(f"{path}: {what} is already in {seen[key]}")
    else:
        seen[key] = path


def _connection_check(path: str, name: str, connections: Counter[str], errors: list[str]) -> None:
    if connections[name] == 0:
        known = ", ".join(sorted(connections)) or "none"
        errors.append(f"{path}: unknown CRM connection {name!r}; known: {known}")
    elif connections[name] > 1:
        errors.append(f"{path}: {connections[name]} CRM connections are named {name!r}; rename one in the admin")


@dataclass(frozen=True)
class _Known:
    """What the file's rows may refer to: the CRM connections (repeats counted) and the teams."""

    connections: Counter[str]
    teams: frozenset[str]
    teams_from_file: bool


def config_validate(data: Any, *, connection_names: Collection[str], team_names: Collection[str] = ()) -> ConfigFile:
    """The file as dataclasses, or ConfigError with every problem, each naming its JSON path.

    `connection_names` are the CRM connections' names (one per connection, repeats included);
    `team_names` the teams that exist, which queues may name when the file has no teams section.
    """
    errors: list[str] = []
    if not _is(data, dict):
        raise ConfigError([f"(file): must be a JSON object with {', '.join(SECTIONS)}"])
    errors += [f"{key}: unknown section; known: {', '.join(SECTIONS)}" for key in data if key not in SECTIONS]
    if "version" in data and data["version"] != CONFIG_VERSION:
        errors.append(f"version: must be {CONFIG_VERSION}, not {json.dumps(data['version'])}")

    settings = _validate_settings(data["settings"], errors) if "settings" in data else None
    teams = _validate_teams(data["teams"], errors) if "teams" in data else None
    known = _Known(
        connections=Counter(connection_names),
        teams=frozenset(team.name for team in teams) if teams is not None else frozenset(team_names),
        teams_from_file=teams is not None,
    )
    sections = {
        section: validate(data[section], known, errors) for section, validate in ROW_SECTIONS.items() if section in data
    }
    if errors:
        raise ConfigError(errors)
    return ConfigFile(settings=settings, teams=teams, **sections)


def _validate_teams(value: Any, errors: list[str]) -> tuple[TeamConfig, ...]:
    teams, seen = [], dict[Any, str]()
    for path, row in _validate_rows("teams", value, TeamRow, errors):
        name = row["name"].strip()
        _check_length(f"{path}.name", name, Team, "name", errors)
        _unique(f"{path}.name", name, seen, f"team {name!r}", errors)
        teams.append(TeamConfig(name, *(row.get(flag, False) for flag in TEAM_FLAGS)))
    return tuple(teams)


def _validate_connections(value: Any, known: _Known, errors: list[str]) -> tuple[ConnectionConfig, ...]:
    connections, seen = [], dict[Any, str]()
    for path, row in _validate_rows("connections", value, ConnectionRow, errors):
        _connection_check(f"{path}.name", row["name"], known.connections, errors)
        _unique(f"{path}.name", row["name"], seen, f"connection {row['name']!r}", errors)
        provider = PROVIDERS.get(row["kind"])
        if provider is None:
            errors.append(f"{path}.kind: unknown CRM {row['kind']!r}; known: {', '.join(sorted(PROVIDERS))}")
            continue
        values = row.get("settings", {})
        errors += _connection_settings_errors(f"{path}.settings", provider, row["kind"], values)
        connections.append(ConnectionConfig(row["name"], row["kind"], row["base_url"].strip(), dict(values)))
    return tuple(connections)


def _connection_settings_errors(
    path: str, provider: type[CrmProvider], kind: str, values: Mapping[str, Any]
) -> list[str]:
    """A connection's settings checked against what its provider declares: never a secret in the file."""
    declared = {setting.name: setting for setting in provider.settings_spec}
    errors = []
    for name, value in values.items():
        setting = declared.get(name)
        if setting is None:
            known = ", ".join(sorted(n for n, s in declared.items() if not s.secret))
            errors.append(f"{path}.{name}: unknown setting for {kind}; known: {known}")
        elif setting.secret:
            errors.append(f"{path}.{name}: a secret; set it in the admin, never in the file")
        elif setting.typed:
            try:
                setting_value(setting, value)
            except ValueError as exc:
                errors.append(f"{path}.{name}: {exc}, not {json.dumps(value)}")
        elif not _is(value, str):
            errors.append(_type_error(f"{path}.{name}", str, value))
    return errors


def _validate_queues(value: Any, known: _Known, errors: list[str]) -> tuple[QueueConfig, ...]:
    queues, seen = [], dict[Any, str]()
    for path, row in _validate_rows("queues", value, QueueRow, errors):
        platform_id = row["platform_id"].strip()
        _check_length(f"{path}.platform_id", platform_id, Queue, "platform_id", errors)
        _check_length(f"{path}.name", row.get("name", ""), Queue, "name", errors)
        _unique(f"{path}.platform_id", platform_id, seen, f"queue {platform_id!r}", errors)
        for index, part in enumerate(row.get("path", [])):
            if not _is(part, str) or not part.strip():
                errors.append(f"{path}.path[{index}]: must be a non-empty string, not {json.dumps(part)}")
        errors += _queue_team_errors(path, row.get("teams", []), known)
        queues.append(
            QueueConfig(
                platform_id,
                row.get("name", ""),
                tuple(row.get("path", [])),
                tuple(dict.fromkeys(row.get("teams", []))),
                row.get("default_outbound_number", ""),
            )
        )
    return tuple(queues)


def _queue_team_errors(path: str, teams: Sequence[Any], known: _Known) -> list[str]:
    errors = []
    for index, team in enumerate(teams):
        if not _is(team, str):
            errors.append(_type_error(f"{path}.teams[{index}]", str, team))
        elif team not in known.teams:
            where = "the file's teams" if known.teams_from_file else "the existing teams"
            errors.append(f"{path}.teams[{index}]: unknown team {team!r}; it must be one of {where}")
    return errors


def _validate_mappings(value: Any, known: _Known, errors: list[str]) -> tuple[MappingConfig, ...]:
    mappings, seen = [], dict[Any, str]()
    for path, row in _validate_rows("custom_data_mappings", value, MappingRow, errors):
        sdk_key, field_id = row["sdk_key"].strip(), row["crm_field_id"].strip()
        _connection_check(f"{path}.connection", row["connection"], known.connections, errors)
        _check_length(f"{path}.sdk_key", sdk_key, CustomDataMapping, "sdk_key", errors)
        _check_length(f"{path}.crm_field_id", field_id, CustomDataMapping, "crm_field_id", errors)
        _unique(f"{path}.sdk_key", (row["connection"], sdk_key), seen, f"custom data key {sdk_key!r}", errors)
        mappings.append(MappingConfig(row["connection"], sdk_key, field_id))
    return tuple(mappings)


def _validate_custom_fields(value: Any, known: _Known, errors: list[str]) -> tuple[CustomFieldConfig, ...]:
    custom_fields, seen = [], dict[Any, str]()
    for path, row in _validate_rows("custom_fields", value, CustomFieldRow, errors):
        key, field_id = row["key"].strip(), row["crm_field_id"].strip()
        _connection_check(f"{path}.connection", row["connection"], known.connections, errors)
        if key not in RECORD_FIELD_KEYS:
            errors.append(f"{path}.key: unknown record field {key!r}; known: {', '.join(sorted(RECORD_FIELD_KEYS))}")
        _check_length(f"{path}.crm_field_id", field_id, CustomField, "crm_field_id", errors)
        _unique(f"{path}.key", (row["connection"], key), seen, f"field {key!r}", errors)
        custom_fields.append(CustomFieldConfig(row["connection"], key, field_id))
    return tuple(custom_fields)


# The list sections after teams, in the order their errors are listed: section -> its validator.
ROW_SECTIONS: Mapping[str, Callable[[Any, _Known, list[str]], tuple[Any, ...]]] = {
    "connections": _validate_connections,
    "queues": _validate_queues,
    "custom_data_mappings": _validate_mappings,
    "custom_fields": _validate_custom_fields,
}


def settings_validate(value: Any) -> dict[str, Any]:
    """Operation-management settings from a file, checked as an import checks them, or ConfigError."""
    errors: list[str] = []
    cleaned = _validate_settings(value, errors)
    if errors or cleaned is None:
        raise ConfigError(errors)
    return cleaned


# -- Apply -------------------------------------------------------------------------------------


def _apply_settings(values: Mapping[str, Any], changes: list[str]) -> None:
    settings = OperationSettings.load()
    changed = []
    for field in _settings_fields():
        new = values.get(field.name, field.get_default())
        old = getattr(settings, field.name)
        if new != old:
            setattr(settings, field.name, new)
            changed.append(field.name)
            changes.append(f"settings.{field.name}: {json.dumps(old)} -> {json.dumps(new)}")
    if changed:
        settings.save(update_fields=[*changed, "updated_at"])


def _apply_teams(teams: Sequence[TeamConfig], changes: list[str]) -> None:
    existing = {team.name: team for team in Team.objects.all()}
    for config in teams:
        team = existing.pop(config.name, None)
        if team is None:
            Team.objects.create(name=config.name, **{flag: getattr(config, flag) for flag in TEAM_FLAGS})
            changes.append(f"team {config.name!r}: added")
            continue
        changed = [name for name in TEAM_FLAGS if getattr(team, name) != getattr(config, name)]
        for name in changed:
            setattr(team, name, getattr(config, name))
            changes.append(f"team {config.name!r}: {name} -> {json.dumps(getattr(config, name))}")
        if changed:
            team.save(update_fields=changed)
    for name, team in sorted(existing.items()):
        team.delete()
        changes.append(f"team {name!r}: removed")


def _apply_queues(queues: Sequence[QueueConfig], changes: list[str]) -> None:
    existing = {queue.platform_id: queue for queue in Queue.objects.prefetch_related("teams")}
    teams = {team.name: team for team in Team.objects.all()}
    for config in queues:
        queue = existing.pop(config.platform_id, None)
        if queue is None:
            queue = Queue.objects.create(
                platform_id=config.platform_id,
                name=config.name,
                path=list(config.path),
                default_outbound_number=config.default_outbound_number,
            )
            queue.teams.set([teams[name] for name in config.teams])
            changes.append(f"queue {config.platform_id!r}: added")
            continue
        changed = []
        for name, new in (
            ("name", config.name),
            ("path", list(config.path)),
            ("default_outbound_number", config.default_outbound_number),
        ):
            if getattr(queue, name) != new:
                changes.append(
                    f"queue {config.platform_id!r}: {name} {json.dumps(getattr(queue, name))} -> {json.dumps(new)}"
                )
                setattr(queue, name, new)
                changed.append(name)
        if changed:
            queue.save(update_fields=changed)
        old_teams = sorted(team.name for team in queue.teams.all())
        if old_teams != sorted(config.teams):
            queue.teams.set([teams[name] for name in config.teams])
            changes.append(f"queue {config.platform_id!r}: teams {old_teams} -> {sorted(config.teams)}")
    for platform_id, queue in sorted(existing.items()):
        queue.delete()
        changes.append(f"queue {platform_id!r}: removed")


def _apply_connection_rows(
    model: type[CustomDataMapping] | type[CustomField],
    key_name: str,
    rows: Sequence[MappingConfig] | Sequence[CustomFieldConfig],
    what: str,
    changes: list[str],
) -> None:
    """Custom data mappings or custom field ids: keyed by (connection, key), valued by the CRM field id."""
    connections = {connection.name: connection for connection in CrmConnection.objects.all()}
    existing = {
        (row.connection.name, getattr(row, key_name)): row for row in model.objects.select_related("connection")
    }
    for config in rows:
        key = getattr(config, key_name)
        row = existing.pop((config.connection, key), None)
        label = f"{what} {key!r} of {config.connection!r}"
        if row is None:
            model.objects.create(
                connection=connections[config.connection], **{key_name: key, "crm_field_id": config.crm_field_id}
            )
            changes.append(f"{label}: added ({config.crm_field_id})")
        elif row.crm_field_id != config.crm_field_id:
            changes.append(f"{label}: CRM field id {row.crm_field_id} -> {config.crm_field_id}")
            row.crm_field_id = config.crm_field_id
            row.save(update_fields=["crm_field_id"])
    for (connection_name, key), row in sorted(existing.items()):
        row.delete()
        changes.append(f"{what} {key!r} of {connection_name!r}: removed")


def _apply_connections(rows: Sequence[ConnectionConfig], changes: list[str]) -> None:
    """The listed connections' base URL and non-secret settings, checked as the admin form checks them.

    Connections are never added or removed here: a new one needs its secrets, which only the
    admin or `add_crm_connection` take.
    """
    connections = {connection.name: connection for connection in CrmConnection.objects.all()}
    errors: list[str] = []
    for index, row in enumerate(rows):
        connection = connections[row.name]
        path = f"connections[{index}]"
        if connection.kind != row.kind:
            errors.append(f"{path}.kind: {row.name!r} is a {connection.kind} connection, not {row.kind}")
            continue
        before = (connection.base_url, dict(connection.config or {}))
        declared = {setting.name: setting for setting in connection_settings_spec(connection.kind)}
        if row.base_url == before[0] and all(
            _exported_setting(declared[k], before[1]) == (setting_value(declared[k], v) if declared[k].typed else v)
            for k, v in row.settings.items()
        ):
            continue
        connection.base_url = row.base_url
        try:
            connection_apply_settings(
                connection, row.settings, rate_limit_per_minute=(connection.config or {}).get("rate_limit_per_minute")
            )
            connection.full_clean(exclude=["is_active"])
        except ValidationError as exc:
            errors += [f"{path}.{_setting_path(key)}: {' '.join(msgs)}" for key, msgs in exc.message_dict.items()]
            continue
        if (connection.base_url, connection.config) != before:
            connection.save()
            changes.append(f"connection {row.name!r}: settings updated")
    if errors:
        raise ConfigError(errors)


def _setting_path(key: str) -> str:
    return key if key in ("base_url", "name", "kind") else f"settings.{key}"


@transaction.atomic
def config_apply(*, config: ConfigFile) -> list[str]:
    """Write a validated file, all or nothing; return what changed, one line each."""
    changes: list[str] = []
    if config.settings is not None:
        _apply_settings(config.settings, changes)
    if config.connections is not None:
        _apply_connections(config.connections, changes)
    # Teams before queues: queues name them.
    if config.teams is not None:
        _apply_teams(config.teams, changes)
    if config.queues is not None:
        _apply_queues(config.queues, changes)
    if config.custom_data_mappings is not None:
        _apply_connection_rows(CustomDataMapping, "sdk_key", config.custom_data_mappings, "custom data key", changes)
    if config.custom_fields is not None:
        _apply_connection_rows(CustomField, "key", config.custom_fields, "custom field", changes)
    return changes


def config_import(*, text: str, dry_run: bool = False) -> list[str]:
    """Parse, validate against the database's connections and teams, and apply a file's text.

    Raises ConfigError (nothing written) when the file is not valid. With `dry_run`, the changes
    are worked out and reported, then rolled back.
    """
    data = config_parse(text)
    config = config_validate(
        data,
        connection_names=list(CrmConnection.objects.values_list("name", flat=True)),
        team_names=list(Team.objects.values_list("name", flat=True)),
    )
    with transaction.atomic():
        changes = config_apply(config=config)
        if dry_run:
            transaction.set_rollback(True)
    return changes
