"""F1: the product's record fields (F2) made in the CRM, and their CRM ids kept per connection."""

import logging

from django.db import connection as db_connection
from django.db import transaction

from integrations.exceptions import CrmUnsupported
from integrations.models import CrmConnection
from integrations.providers.base import CAPABILITY_LABELS, Capability
from integrations.providers.registry import get_provider_class
from integrations.services import (
    connection_circuit_check,
    connection_circuit_record,
    connection_provider,
    connection_record_error,
    custom_field_ids_forget,
)
from records.models import CustomField
from records.vocabulary import RECORD_FIELDS

logger = logging.getLogger(__name__)

# Prefix of the connection's last_error when F1 failed: a later successful run clears only these.
CUSTOM_FIELDS_ERROR_PREFIX = "Create custom fields: "
# pg_advisory_xact_lock namespace (first key): one F1 run per connection at a time, so a
# double-clicked action cannot make the same field twice in the CRM.
_LOCK_NAMESPACE = 0x46310001


def custom_fields_create(*, connection: CrmConnection) -> list[CustomField]:
    """Make the record fields the CRM lacks (reusing same-titled ones) and store their CRM ids.

    Idempotent: a second run finds every field by its title and creates nothing in the CRM.
    CRM errors (CrmError and subclasses) propagate to the caller, and so does CircuitOpen: the
    connection's circuit is open (the CRM is down for all its work), nothing was sent.
    """
    connection_circuit_check(connection)
    with transaction.atomic():
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, connection.pk])
        ids = connection_provider(connection).ensure_custom_fields(RECORD_FIELDS)
        fields = []
        for spec in RECORD_FIELDS:
            if spec.key not in ids:
                continue
            field, _ = CustomField.objects.update_or_create(
                connection=connection, key=spec.key, defaults={"crm_field_id": ids[spec.key]}
            )
            fields.append(field)
    custom_field_ids_forget(connection)
    connection_circuit_record(connection, success=True)
    if connection.last_error.startswith(CUSTOM_FIELDS_ERROR_PREFIX):
        connection.last_error = ""
        connection.save(update_fields=["last_error", "updated_at"])
    logger.info("records.custom-fields.created %s: %s", connection.pk, len(fields), extra={"connection": connection.pk})
    return fields


def custom_fields_create_enqueue(*, connection: CrmConnection) -> int:
    """Create the connection's custom fields in a worker; return how many fields it makes sure of.

    Raises UnknownCrmKind at once for a CRM without a provider, and CrmUnsupported for one whose
    API cannot create fields, rather than reporting success and failing in the worker.
    """
    from records.tasks import create_custom_fields_task

    if not get_provider_class(connection.kind).can(Capability.CUSTOM_FIELDS):
        label = CAPABILITY_LABELS[Capability.CUSTOM_FIELDS]
        raise CrmUnsupported(f"{connection.get_kind_display()} has no API for {label}")
    transaction.on_commit(lambda: create_custom_fields_task.delay(connection.pk))
    return len(RECORD_FIELDS)


def custom_fields_record_error(*, connection: CrmConnection, error: str) -> None:
    """Show why F1 failed on the connection (its last error in the admin)."""
    connection_record_error(connection=connection, error=f"{CUSTOM_FIELDS_ERROR_PREFIX}{error}")
