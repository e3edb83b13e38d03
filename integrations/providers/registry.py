"""Which provider class serves which CRM kind, and how one is built for a connection."""

from integrations.exceptions import UnknownCrmKind
from integrations.http import RateGate
from integrations.providers.base import ConnectionSettings, CrmProvider
from integrations.providers.freshdesk import FreshdeskProvider
from integrations.providers.kustomer import KustomerProvider
from integrations.providers.salesforce import SalesforceProvider
from integrations.providers.zendesk import ZendeskProvider

PROVIDERS: dict[str, type[CrmProvider]] = {
    ZendeskProvider.kind: ZendeskProvider,
    KustomerProvider.kind: KustomerProvider,
    SalesforceProvider.kind: SalesforceProvider,
    FreshdeskProvider.kind: FreshdeskProvider,
}


def get_provider_class(kind: str) -> type[CrmProvider]:
    try:
        return PROVIDERS[kind]
    except KeyError:
        raise UnknownCrmKind(f"no provider for CRM kind {kind!r}; supported: {', '.join(sorted(PROVIDERS))}") from None


def get_provider(settings: ConnectionSettings, *, rate_gate: RateGate | None = None) -> CrmProvider:
    return get_provider_class(settings.kind)(settings, rate_gate=rate_gate)
