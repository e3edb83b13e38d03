"""What an admin sets up: CRM statuses read from the CRM, the status webhook, adapter tokens."""

from dataclasses import dataclass

from django.conf import settings as django_settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from agentstatus.models import Agent, AgentToken, CrmStatus, Source, StatusSyncSettings
from agentstatus.selectors import sync_connection
from agentstatus.services.changes import status_change_record
from integrations.exceptions import CrmUnsupported
from integrations.models import CrmConnection
from integrations.services import connection_provider
from integrations.webhooks import WORK_SESSION_EVENTS


class SetupError(Exception):
    """Something the admin must fix first (no connection, a CRM without user statuses)."""


@dataclass(frozen=True)
class RefreshResult:
    created: int
    updated: int
    gone: int


def _status_connection(settings: StatusSyncSettings) -> CrmConnection:
    connection = sync_connection(settings)
    if connection is None:
        raise SetupError(
            "No CRM connection: choose one in the status sync settings, or make a Kustomer connection active."
        )
    return connection


@transaction.atomic
def crm_statuses_refresh(*, settings: StatusSyncSettings) -> RefreshResult:
    """Read the CRM's user statuses through the provider; keep each one's mapping (A1).

    Statuses the CRM no longer lists are kept, marked as gone, so their mapping and audit survive.
    """
    connection = _status_connection(settings)
    provider = connection_provider(connection)
    if not provider.supports_user_status:
        raise SetupError(f"{connection} has no user statuses to inherit.")
    listed = provider.list_user_statuses()
    now = timezone.now()
    known = {status.crm_id: status for status in CrmStatus.objects.select_for_update().filter(connection=connection)}
    created = updated = 0
    for position, crm in enumerate(listed):
        row = known.pop(crm.id, None)
        if row is None:
            CrmStatus.objects.create(
                connection=connection,
                crm_id=crm.id,
                name=crm.name,
                status_type=crm.status_type,
                position=position,
                refreshed_at=now,
            )
            created += 1
            continue
        row.name, row.status_type, row.position, row.in_crm, row.refreshed_at = (
            crm.name,
            crm.status_type,
            position,
            True,
            now,
        )
        row.save(update_fields=["name", "status_type", "position", "in_crm", "refreshed_at"])
        updated += 1
    gone = CrmStatus.objects.filter(pk__in=[row.pk for row in known.values()]).update(in_crm=False, refreshed_at=now)
    return RefreshResult(created=created, updated=updated, gone=gone)


def status_webhook_url() -> str:
    """Where the CRM must deliver status webhooks: this product's public URL."""
    return django_settings.PUBLIC_BASE_URL.rstrip("/") + reverse("agentstatus-kustomer-webhook")


def status_webhook_register(*, settings: StatusSyncSettings) -> str:
    """Subscribe our webhook URL to the CRM's work-session events; keep the signing secret, encrypted."""
    connection = _status_connection(settings)
    url = status_webhook_url()
    try:
        secret = connection_provider(connection).register_webhook(url, list(WORK_SESSION_EVENTS))
    except CrmUnsupported as exc:
        raise SetupError(str(exc)) from exc
    if not secret:
        raise SetupError("The CRM registered the webhook but returned no signing secret.")
    settings.set_webhook_secret(secret)
    settings.webhook_url = url
    settings.webhook_registered_at = timezone.now()
    settings.save(update_fields=["encrypted_webhook_secret", "webhook_url", "webhook_registered_at", "updated_at"])
    return url


def status_webhook_secret_set(*, settings: StatusSyncSettings, secret: str) -> None:
    """An admin pastes the secret of a webhook registered by hand in the CRM."""
    settings.set_webhook_secret(secret.strip())
    settings.save(update_fields=["encrypted_webhook_secret", "updated_at"])


@transaction.atomic
def adapter_token_issue(*, agent: Agent) -> str:
    """A new adapter token for the agent (the earlier ones are revoked); the key is returned once."""
    AgentToken.objects.filter(agent=agent, revoked=False).update(revoked=True)
    _, key = AgentToken.objects.create_key(name=f"adapter {agent.email}", agent=agent)
    return key


@transaction.atomic
def agent_sync_resume(*, agent: Agent) -> Agent:
    """Forget the agent's tracked CRM instances (a sign-out the CRM never reported), so sync resumes."""
    locked = Agent.objects.select_for_update().get(pk=agent.pk)
    if not locked.work_sessions and not locked.sync_stopped:
        return locked
    forgotten = ", ".join(sorted(locked.work_sessions or {})) or "none"
    locked.work_sessions = {}
    locked.sync_stopped = False
    locked.save(update_fields=["work_sessions", "sync_stopped", "updated_at"])
    status_change_record(
        agent=locked,
        source=Source.ADMIN,
        applied=False,
        reason=f"sync resumed by an admin: forgot the tracked CRM instances ({forgotten})",
    )
    return locked
