"""Status-sync decisions (A1-A5). Pure functions only.

No ORM, settings, clock, logging or HTTP here: agentstatus.services turns rows into these frozen
dataclasses, asks, and carries out the answer. Every "no" comes with the reason the audit trail
shows.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

LATEST_CHANGE_WINS = "latest_change_wins"
CRM_OVERRIDES = "crm_overrides"
SOURCE_CRM = "crm"
# A CRM webhook for the status just pushed, within this long of the push, is the push's echo.
ECHO_WINDOW = timedelta(minutes=2)


@dataclass(frozen=True)
class SyncSettings:
    inheritance_enabled: bool
    priority: str = LATEST_CHANGE_WINS
    two_way: bool = False


@dataclass(frozen=True)
class AgentState:
    platform_status_id: int | None = None
    # The last adapter or admin change: what "latest change wins" weighs a CRM change against.
    platform_changed_at: datetime | None = None
    # When the CRM set the last status it reported (its updatedAt).
    crm_status_at: datetime | None = None
    # Active CRM instances (work sessions): session id -> its current CRM status id.
    work_sessions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CrmStatusEvent:
    """One work-session webhook, in the CRM's words."""

    session_id: str
    status_id: str
    active: bool
    occurred_at: datetime
    # A `create` event: an instance signed in.
    signed_in: bool = False
    # What the envelope's `changes` says about the status (None: the envelope does not say).
    status_changed_hint: bool | None = None


class InstanceTransition(StrEnum):
    STOPPED = "stopped"
    RESUMED = "resumed"


@dataclass(frozen=True)
class InstanceObservation:
    sessions_after: dict[str, str]
    # Instances active when the event happened, its own included.
    active_at_change: int
    status_changed: bool
    transition: InstanceTransition | None

    @property
    def stopped_after(self) -> bool:
        return len(self.sessions_after) > 1


def observe_instances(sessions: Mapping[str, str], event: CrmStatusEvent) -> InstanceObservation:
    """Track the agent's active CRM instances through one event (A3: more than one stops the sync).

    A session the product never saw signing in (the webhook was registered later, or its create
    was lost) is taken as active from its first event on.
    """
    tracked = event.session_id in sessions
    if event.signed_in:
        status_changed = False
    elif event.status_changed_hint is not None:
        status_changed = event.status_changed_hint
    elif tracked:
        status_changed = sessions[event.session_id] != event.status_id
    else:
        # An update from an unseen instance that is still active can only be a status change; one
        # that ends it is a sign-out whose status nobody chose.
        status_changed = event.active
    active_at_change = len(set(sessions) | {event.session_id})
    after = dict(sessions)
    if event.active:
        after[event.session_id] = event.status_id
    else:
        after.pop(event.session_id, None)
    transition = None
    if len(sessions) <= 1 < len(after):
        transition = InstanceTransition.STOPPED
    elif len(after) <= 1 < len(sessions):
        transition = InstanceTransition.RESUMED
    return InstanceObservation(after, active_at_change, status_changed, transition)


def sync_stopped_reason(sessions: Mapping[str, str], *, crm_name: str = "Kustomer") -> str | None:
    """Why the agent's sync is stopped (A3), or None when it runs."""
    if len(sessions) <= 1:
        return None
    ids = ", ".join(sorted(sessions))
    return (
        f"Signed in to {crm_name} in {len(sessions)} places at once ({ids}): the sync stops until only one "
        f"{crm_name} tab or computer remains."
    )


@dataclass(frozen=True)
class MappingLookup:
    platform_status_id: int | None
    reason: str


def map_crm_status(
    mapping: Mapping[str, int | None], names: Mapping[str, str], crm_status_id: str, platform_names: Mapping[int, str]
) -> MappingLookup:
    """The platform status a CRM status maps to (A1), or None with the reason.

    `mapping` holds every CRM status the product knows (mapped or not), `names` their names.
    """
    if crm_status_id not in mapping:
        return MappingLookup(None, f"unknown CRM status {crm_status_id!r}: refresh the CRM statuses, then map it")
    target = mapping[crm_status_id]
    name = names.get(crm_status_id, crm_status_id)
    if target is None:
        return MappingLookup(None, f"CRM status {name!r} is not mapped to a platform status")
    return MappingLookup(target, f"{name} → {platform_names.get(target, target)}")


class Outcome(StrEnum):
    APPLY = "apply"
    UNCHANGED = "unchanged"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    platform_status_id: int | None = None
    # The mapping the decision went by ("Lunch → Away"), once it got that far.
    mapping: str = ""

    @property
    def applies(self) -> bool:
        return self.outcome is Outcome.APPLY


def decide_crm_change(
    settings: SyncSettings,
    agent: AgentState,
    event: CrmStatusEvent,
    observation: InstanceObservation,
    lookup: MappingLookup,
) -> Decision:
    """Whether a CRM status change becomes the agent's platform status (A2, A3)."""
    if not settings.inheritance_enabled:
        return Decision(Outcome.IGNORE, "status inheritance is off")
    if event.signed_in:
        return Decision(Outcome.IGNORE, "signed in to the CRM: no status is applied at login (A3)")
    if not observation.status_changed:
        if event.active:
            return Decision(Outcome.IGNORE, "no status change (the instance reported the status it had)")
        return Decision(Outcome.IGNORE, "signed out of a CRM instance without a status change")
    if observation.active_at_change > 1:
        return Decision(
            Outcome.IGNORE, f"sync stopped: the agent is active in {observation.active_at_change} CRM instances (A3)"
        )
    if lookup.platform_status_id is None:
        return Decision(Outcome.IGNORE, lookup.reason)
    mapping = lookup.reason
    if is_stale_crm_event(agent, event):
        return Decision(
            Outcome.IGNORE,
            f"older than the CRM change of {agent.crm_status_at:%Y-%m-%d %H:%M:%S} already received (out of order)",
            mapping=mapping,
        )
    if (
        settings.priority == LATEST_CHANGE_WINS
        and agent.platform_changed_at is not None
        and event.occurred_at < agent.platform_changed_at
    ):
        return Decision(
            Outcome.IGNORE,
            f"the platform change of {agent.platform_changed_at:%Y-%m-%d %H:%M:%S} is later: the latest change wins",
            mapping=mapping,
        )
    if lookup.platform_status_id == agent.platform_status_id:
        return Decision(
            Outcome.UNCHANGED, f"{mapping}: already the platform status", lookup.platform_status_id, mapping
        )
    return Decision(Outcome.APPLY, mapping, lookup.platform_status_id, mapping)


def is_stale_crm_event(agent: AgentState, event: CrmStatusEvent) -> bool:
    """An event older than the last one the CRM sent for the agent (webhooks arrive out of order)."""
    return agent.crm_status_at is not None and event.occurred_at < agent.crm_status_at


def decide_platform_change(agent: AgentState, platform_status_id: int) -> Decision:
    """An adapter or admin change always applies (A5); under "CRM always overrides" it lasts until
    the CRM's next change, which is what `crm_overrides` tells the adapter."""
    if platform_status_id == agent.platform_status_id:
        return Decision(Outcome.UNCHANGED, "already the platform status", platform_status_id)
    return Decision(Outcome.APPLY, "set on the platform", platform_status_id)


def crm_overrides(settings: SyncSettings, *, sync_stopped: bool) -> bool:
    """Whether the CRM's next status change replaces the agent's platform status, whatever its time."""
    return settings.inheritance_enabled and settings.priority == CRM_OVERRIDES and not sync_stopped


@dataclass(frozen=True)
class SentPush:
    id: int
    crm_status_id: str
    sent_at: datetime


def match_echo(pushes: Sequence[SentPush], crm_status_id: str, *, now: datetime) -> int | None:
    """The push (sent, its echo not seen yet) whose echo this CRM change is, or None.

    The echo can arrive before the CRM has even answered the push, so pushes count from the moment
    they are sent, not when they succeed. The oldest match wins: each push has one echo.
    """
    candidates = [push for push in pushes if push.crm_status_id == crm_status_id and now - push.sent_at <= ECHO_WINDOW]
    return min(candidates, key=lambda push: (push.sent_at, push.id)).id if candidates else None


@dataclass(frozen=True)
class PushVerdict:
    push: bool
    reason: str


def should_push(settings: SyncSettings, *, source: str, team_linked: bool, sync_stopped: bool) -> PushVerdict:
    """Whether a platform status change goes to the CRM (two-way sync, A4)."""
    if source == SOURCE_CRM:
        return PushVerdict(False, "came from the CRM: never echoed back")
    if not settings.inheritance_enabled:
        return PushVerdict(False, "status inheritance is off")
    if not settings.two_way:
        return PushVerdict(False, "one-way sync")
    if not team_linked:
        return PushVerdict(False, "the agent's team is not linked to the CRM's external queue (A4)")
    if sync_stopped:
        return PushVerdict(False, "sync stopped: the agent is active in several CRM instances (A3)")
    return PushVerdict(True, "two-way sync")


@dataclass(frozen=True)
class PushTarget:
    crm_status_id: str | None
    reason: str


def push_target(
    platform_status_id: int, mapping: Sequence[tuple[str, int | None]], current_crm_status_id: str | None
) -> PushTarget:
    """The CRM status to set for a platform status: the first one (in the CRM's order) mapped to it.

    The mapping runs CRM → platform and is many-to-one, so going back needs a choice; none is needed
    when the CRM's current status already maps to the platform status.
    """
    mapped = [crm_id for crm_id, target in mapping if target == platform_status_id]
    if current_crm_status_id is not None and current_crm_status_id in mapped:
        return PushTarget(None, "the CRM's current status already maps to it")
    if not mapped:
        return PushTarget(None, "no CRM status maps to this platform status")
    return PushTarget(mapped[0], "first CRM status mapped to it")
