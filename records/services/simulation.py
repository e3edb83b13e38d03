"""Simulate a settings change over stored sessions (records.simulation); nothing is saved or sent."""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db.models import Prefetch
from django.utils import timezone

from records.models import Event, OperationSettings, Session
from records.rules import Candidate, RuleSet, SessionEvent
from records.services.config_io import settings_validate
from records.services.processing import current_ruleset
from records.simulation import SessionComparison, simulate_session

# The most sessions one simulation decides again (the newest first): enough to see a change's effect.
SIMULATION_MAX_SESSIONS = 500


@dataclass(frozen=True)
class SimulationResult:
    days: int
    sessions_checked: int
    changed: list[SessionComparison]
    # Session row ids by platform session id, for links.
    session_pks: dict[str, int]


def _candidates(session: Session) -> list[Candidate]:
    """The records our earlier sessions of the same contact landed on, taken as still open."""
    if not session.crm_contact_id:
        return []
    earlier = (
        Session.objects.filter(crm_connection_id=session.crm_connection_id, crm_contact_id=session.crm_contact_id)
        .exclude(crm_record_id="")
        .exclude(pk=session.pk)
        .filter(created_at__lt=session.created_at)
        .order_by("crm_record_id", "-created_at")
        .distinct("crm_record_id")
    )
    return [
        Candidate(
            record_id=other.crm_record_id,
            status="open",
            is_open=True,
            can_reopen=True,
            updated_at=other.ended_at or other.created_at,
            queue_id=other.queue_id,
            leaf_queue=" > ".join(other.state.get("queue_path") or ()),
            menu_path=other.menu_path,
            channel=other.channel,
            voicemail=other.voicemail,
        )
        for other in earlier
    ]


def settings_simulate(*, changed: RuleSet, days: int, now: datetime | None = None) -> SimulationResult:
    """Run the last `days` days of sessions' stored events through the rules with `changed`.

    Compared with the settings in force, per session: new record vs append, title, tags, assignee.
    """
    now = now or timezone.now()
    sessions = list(
        Session.objects.filter(created_at__gte=now - timedelta(days=days))
        .select_related("crm_connection")
        .prefetch_related(Prefetch("events", queryset=Event.objects.order_by("occurred_at", "id")))
        .order_by("-created_at")[:SIMULATION_MAX_SESSIONS]
    )
    rulesets: dict[int | None, RuleSet] = {}
    comparisons = []
    for session in sessions:
        if session.crm_connection_id not in rulesets:
            rulesets[session.crm_connection_id] = current_ruleset(session.crm_connection)
        current = rulesets[session.crm_connection_id]
        # The changed settings keep the connection's custom data mapping: only the form's fields change.
        proposed = replace(changed, custom_data_mapping=current.custom_data_mapping)
        events = [
            SessionEvent(event_id=e.event_id, type=e.type, occurred_at=e.occurred_at, data=e.data)
            for e in session.events.all()
        ]
        when = session.started_at or session.created_at
        comparison = simulate_session(current, proposed, session.external_id, events, _candidates(session), when)
        if comparison.differences:
            comparisons.append(comparison)
    return SimulationResult(
        days=days,
        sessions_checked=len(sessions),
        changed=comparisons,
        session_pks={session.external_id: session.pk for session in sessions},
    )


def ruleset_from_settings_file(data: object) -> RuleSet:
    """The settings in force with a file's settings laid over them (a config file or its "settings")."""
    values = data.get("settings", data) if isinstance(data, dict) else data
    cleaned = settings_validate(values)
    settings = OperationSettings.load()
    for name, value in cleaned.items():
        setattr(settings, name, value)
    return settings.ruleset()
