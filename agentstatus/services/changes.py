"""Platform-side status changes (adapter, admin) and the audit row every change writes."""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from agentstatus import rules
from agentstatus.models import Agent, CrmStatus, PlatformStatus, Source, StatusChange, StatusPush
from agentstatus.selectors import agent_state, sync_rules, sync_settings_get
from records.services.leases import db_now


def status_change_record(
    *,
    agent: Agent | None,
    source: str,
    applied: bool,
    reason: str,
    from_status_id: int | None = None,
    to_status_id: int | None = None,
    crm_status: CrmStatus | None = None,
    crm_status_ref: str = "",
    mapping: str = "",
    occurred_at: datetime | None = None,
    event_id: str = "",
    work_session_id: str = "",
    crm_user_id: str = "",
    agent_email: str = "",
) -> StatusChange:
    """Write one audit row (A: every status change, its source, the mapping used, why it was ignored)."""
    return StatusChange.objects.create(
        agent=agent,
        source=source,
        applied=applied,
        reason=reason[:2000],
        from_status_id=from_status_id,
        to_status_id=to_status_id,
        crm_status=crm_status,
        crm_status_ref=crm_status_ref[:100],
        mapping=mapping[:300],
        occurred_at=occurred_at,
        event_id=event_id[:200],
        work_session_id=work_session_id[:100],
        crm_user_id=crm_user_id[:100] or (agent.crm_user_id if agent else ""),
        agent_email=agent_email or (agent.email if agent else ""),
    )


@dataclass(frozen=True)
class StatusSetResult:
    change: StatusChange
    push: StatusPush | None


@transaction.atomic
def agent_status_set(*, agent: Agent, platform_status: PlatformStatus, source: Source) -> StatusSetResult:
    """Set an agent's platform status from the adapter or the admin (A5), audit it, push it (A4).

    The change always applies; under "CRM always overrides" the CRM's next change replaces it.
    """
    from agentstatus.services.push import status_push_plan

    if source == Source.CRM:
        raise ValueError("CRM changes go through agentstatus.services.inbound")
    settings = sync_settings_get()
    locked = Agent.objects.select_for_update(of=("self",)).select_related("team").get(pk=agent.pk)
    # The database's clock: "the latest change wins" compares this with the CRM's changes, on any host.
    now = db_now()
    decision = rules.decide_platform_change(agent_state(locked), platform_status.pk)
    from_status_id = locked.platform_status_id
    locked.platform_status = platform_status
    locked.status_source = source
    locked.platform_changed_at = now
    fields = ["platform_status", "status_source", "platform_changed_at", "updated_at"]
    if decision.applies:
        locked.status_changed_at = now
        fields.append("status_changed_at")
    locked.save(update_fields=fields)

    push: StatusPush | None = None
    reason = decision.reason
    if decision.applies:
        verdict = rules.should_push(
            sync_rules(settings),
            source=source,
            team_linked=locked.team is not None and locked.team.linked_to_external_queue,
            sync_stopped=locked.sync_stopped,
        )
        if verdict.push:
            push, push_note = status_push_plan(agent=locked, platform_status=platform_status, settings=settings)
            reason += f"; {push_note}"
        else:
            reason += f"; not pushed to the CRM: {verdict.reason}"
    change = status_change_record(
        agent=locked,
        source=source,
        applied=decision.applies,
        reason=reason,
        from_status_id=from_status_id,
        to_status_id=platform_status.pk,
        occurred_at=now,
    )
    if push is not None:
        push.change = change
        push.save(update_fields=["change", "updated_at"])
    # The caller's instance shows the new status too.
    agent.platform_status = platform_status
    agent.status_source = source
    agent.platform_changed_at = now
    agent.status_changed_at = locked.status_changed_at
    return StatusSetResult(change=change, push=push)
