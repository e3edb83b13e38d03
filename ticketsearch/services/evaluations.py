"""QA evaluations of imported tickets (T6)."""

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from ticketsearch.models import Evaluation, Ticket


@transaction.atomic
def evaluation_create(
    *, ticket: Ticket, reviewer: User, score: int, answers: dict[str, Any], comment: str = ""
) -> Evaluation:
    """Record a reviewer's evaluation; it keeps the ticket's identity so it outlives the ticket's 90 days."""
    evaluation = Evaluation(
        ticket_id=ticket.id,
        ticket_created_at=ticket.created_at,
        connection_id=ticket.connection_id,
        crm_ticket_id=ticket.crm_ticket_id,
        ticket_subject=ticket.subject,
        reviewer=reviewer,
        score=score,
        answers=answers,
        comment=comment,
    )
    evaluation.full_clean()
    evaluation.save()
    return evaluation
