"""Reads for the adapter API: a session as the agent's adapter sees it (ADAPTER.md)."""

from dataclasses import dataclass

from integrations.crypto import CredentialsUnreadable
from integrations.providers.base import Record
from integrations.providers.registry import UnsupportedCrm
from integrations.services import connection_provider
from records.models import CrmAction, Session
from records.outbound import AGENT_EVENTS, event_agent_email
from records.services.screen_pop import session_answering_agent


@dataclass(frozen=True)
class AdapterSession:
    session_id: str
    channel: str
    session_type: str
    phone_number: str
    record_id: str | None
    record_url: str | None
    contact_id: str | None
    answering_agent: str
    ended: bool
    actions: tuple[CrmAction, ...]


def session_agent_emails(session: Session) -> set[str]:
    """Every agent the session's events name: assigned, connected, transferred to, or who placed it."""
    emails = set()
    for data in session.events.filter(type__in=AGENT_EVENTS).values_list("data", flat=True):
        emails |= {event_agent_email(data, "agent"), event_agent_email(data, "to_agent")}
    return emails - {""}


def adapter_session_get(*, session_id: str, agent_email: str) -> AdapterSession | None:
    """The session, if this agent took part in it (assigned, connected, transferred to, or placed it)."""
    session = Session.objects.select_related("crm_connection").filter(external_id=session_id).first()
    if session is None or agent_email.lower() not in session_agent_emails(session):
        return None
    record_url = None
    if session.crm_record_id and session.crm_connection is not None:
        try:
            provider = connection_provider(session.crm_connection)
            record = Record(
                id=session.crm_record_id, subject="", status="", requester_id=session.crm_contact_id or None
            )
            record_url = provider.record_web_url(record)
        except (CredentialsUnreadable, UnsupportedCrm):
            record_url = None
    return AdapterSession(
        session_id=session.external_id,
        channel=session.channel,
        session_type=session.session_type,
        phone_number=session.phone_number,
        record_id=session.crm_record_id or None,
        record_url=record_url,
        contact_id=session.crm_contact_id or None,
        answering_agent=session_answering_agent(session),
        ended=session.ended_at is not None,
        actions=tuple(session.actions.order_by("id")),
    )
