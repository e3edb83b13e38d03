"""What each planned action asks the executor for: one frozen dataclass per action kind.

They cross two boundaries: from the rules into the outbox (`CrmAction.payload`, JSON) and from
the outbox into the executor. `to_json`/`action_payload` are the only ways across. The JSON keys
are the ones the outbox has always stored, so rows written before these classes existed still
parse. A payload that does not parse is our own bug (`MalformedPayload`), never the CRM's.
"""

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

from records.rules.ruleset import DEFAULT_CLOSED_WITHIN_DAYS, RecordMode
from records.vocabulary import ActionKind


class MalformedPayload(ValueError):
    """A stored action payload this version cannot read: a bug of ours, never retried."""


P = TypeVar("P", bound="Payload")


class Payload:
    """The JSON side of every action payload (each a frozen dataclass)."""

    KIND: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[P], data: Mapping[str, Any]) -> P:
        return _read(cls, data, cls.KIND)


@dataclass(frozen=True)
class RecordPolicy:
    """R1, R2 and R9 as they stood when the record was planned."""

    append_to_open_records: bool = True
    append_to_recently_closed: bool = False
    closed_within_days: int = DEFAULT_CLOSED_WITHIN_DAYS
    never_append: bool = False


@dataclass(frozen=True)
class CallbackOf:
    """S7: the agent's call back of an earlier session (empty when the session is no call back)."""

    kind: str = ""
    original_session_id: str = ""


@dataclass(frozen=True)
class EnsureContact(Payload):
    """S16: find the session's contact by app user id, email or phone, else create it."""

    KIND: ClassVar[str] = ActionKind.ENSURE_CONTACT

    phone: str = ""
    email: str = ""
    external_id: str = ""
    name: str = ""
    # S5: several matches wait for the agent's pick (IVR callers only).
    ask_agent_when_several: bool = False
    # An unauthenticated web user is a new contact every time.
    always_create: bool = False
    # O2: the contact the agent called; no lookup.
    contact_id: str = ""


@dataclass(frozen=True)
class CreateRecord(Payload):
    """Find the session's record (append, maybe reopen) or create it, with its first notes and fields."""

    KIND: ClassVar[str] = ActionKind.CREATE_RECORD

    mode: RecordMode = RecordMode.NEW
    subject: str = ""
    external_id: str = ""
    first_comment: str = ""
    # R8: the session-type name (styled per CRM by the provider) and the product tag.
    session_type_name: str = ""
    tags: tuple[str, ...] = ()
    assignee_email: str = ""
    # What the record lookup matches on (R1).
    channel: str = ""
    queue_id: str = ""
    leaf_queue: str = ""
    menu_path: str = ""
    # F2 values by product key; S11 values by CRM field id, with the custom data key of each.
    fields: Mapping[str, Any] = field(default_factory=dict)
    mapped_fields: Mapping[str, Any] = field(default_factory=dict)
    mapped_keys: Mapping[str, str] = field(default_factory=dict)
    policy: RecordPolicy = RecordPolicy()
    # S3/O1: the record the agent chose for an outbound call.
    outbound_record_id: str = ""
    # O1: the number the agent typed, noted on the record.
    entered_number: str = ""
    callback: CallbackOf = CallbackOf()
    phone_number: str = ""
    # Why the record is left as it is (a voicemail without a default user, S4).
    note: str = ""


@dataclass(frozen=True)
class TranscriptFile:
    """A text attached to a comment (a chat transcript, S14)."""

    filename: str
    text: str = ""
    content_type: str = "text/plain"


@dataclass(frozen=True)
class AddComment(Payload):
    KIND: ClassVar[str] = ActionKind.ADD_COMMENT

    body: str = ""
    attachment: TranscriptFile | None = None


@dataclass(frozen=True)
class UpdateRecord(Payload):
    """Set F2 fields, the assignee (S2, S9) or the resolved status (S13) on the session's record."""

    KIND: ClassVar[str] = ActionKind.UPDATE_RECORD

    fields: Mapping[str, Any] = field(default_factory=dict)
    assignee_email: str = ""
    resolve: bool = False


@dataclass(frozen=True)
class DisplayRecord(Payload):
    """O4: open the record on the agent's screen in the CRM."""

    KIND: ClassVar[str] = ActionKind.DISPLAY_RECORD

    agent_email: str
    record_id: str


ActionPayload = EnsureContact | CreateRecord | AddComment | UpdateRecord | DisplayRecord

PAYLOAD_TYPES: Mapping[str, type[ActionPayload]] = {
    cls.KIND: cls for cls in (EnsureContact, CreateRecord, AddComment, UpdateRecord, DisplayRecord)
}


def action_payload(kind: str, data: Mapping[str, Any]) -> ActionPayload:
    """The typed payload of an action of `kind` stored as `data`; MalformedPayload when it is not one."""
    cls = PAYLOAD_TYPES.get(kind)
    if cls is None:
        raise MalformedPayload(f"no action kind {kind!r}")
    return cls.from_json(data)


D = TypeVar("D")


def _read(cls: type[D], data: Any, where: str) -> D:
    """Build the dataclass `cls` from JSON, checking each field's type; missing fields take their defaults."""
    if not isinstance(data, Mapping):
        raise MalformedPayload(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
        if spec.name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise MalformedPayload(f"{where}: {spec.name} is missing")
            continue
        values[spec.name] = _value(hints[spec.name], data[spec.name], f"{where}.{spec.name}")
    return cls(**values)


def _value(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (hint,) = [option for option in options if option is not type(None)]
        return _value(hint, value, where)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _read(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise MalformedPayload(f"{where}: expected a list of texts")
        return tuple(value)
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise MalformedPayload(f"{where}: expected an object")
        return dict(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError as exc:
            raise MalformedPayload(f"{where}: {value!r} is not one of {[item.value for item in hint]}") from exc
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise MalformedPayload(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
