"""The import rules of SPEC T1-T2 as pure functions: what is imported, and if not, why.

No ORM, settings, clock or HTTP: inputs are the provider's dataclasses plus what the database
already holds (as frozen dataclasses) and an explicit `now`; outputs are decisions with a reason.
ticketsearch.services.importing gathers the inputs and carries the decisions out.
"""

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from integrations.providers.importing import ImportedComment, ImportedTicket, ImportedUser

# Imported tickets are kept this long after their creation in the CRM (T3: fixed, not configurable).
RETENTION = timedelta(days=90)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Skip(enum.StrEnum):
    """Why a user or ticket was not imported; the values are the counters' keys in ImportRun.skipped."""

    # Users (T1)
    NOT_AN_AGENT = "user_not_an_agent"
    MISSING_EMAIL = "user_missing_email"
    INVALID_EMAIL = "user_invalid_email"
    MISSING_NAME = "user_missing_first_or_last_name"
    EMAIL_AS_NAME = "user_email_as_name"
    DUPLICATE_EMAIL = "user_duplicate_email"
    OTHER_CHANNEL_USER = "user_created_by_other_channel"
    # Tickets (T1, T2, T3)
    NOT_SOLVED = "ticket_not_solved"
    OLDER_THAN_RETENTION = "ticket_older_than_90_days"
    NO_AGENT = "ticket_without_agent"
    AGENT_NOT_IMPORTED = "ticket_agent_not_imported"


class UserAction(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    # An agent made by another channel gets its CRM identity (and the CRM's details) once.
    LINK = "link"
    UNCHANGED = "unchanged"
    SKIP = "skip"


@dataclass(frozen=True)
class ExistingAgent:
    id: int
    email: str
    first_name: str
    last_name: str
    is_active: bool
    from_other_channel: bool
    # The (connection id, CRM user id) it is linked to, if any.
    crm_identity: tuple[int, str] | None


@dataclass(frozen=True)
class UserDecision:
    action: UserAction
    reason: Skip | None = None
    agent_id: int | None = None


def normalize_email(email: str | None) -> str:
    return (email or "").strip().lower()


def user_problem(user: ImportedUser) -> Skip | None:
    """What makes this CRM user unimportable on its own (T1), or None."""
    if not user.is_agent:
        return Skip.NOT_AN_AGENT
    email = normalize_email(user.email)
    if not email:
        return Skip.MISSING_EMAIL
    if not EMAIL_RE.match(email):
        return Skip.INVALID_EMAIL
    first, last = user.first_name.strip(), user.last_name.strip()
    if not first or not last:
        return Skip.MISSING_NAME
    if "@" in first or "@" in last:
        return Skip.EMAIL_AS_NAME
    return None


def decide_user(
    user: ImportedUser,
    *,
    connection_id: int,
    linked: ExistingAgent | None,
    same_email: ExistingAgent | None,
) -> UserDecision:
    """Create, update, link or skip a CRM user.

    `linked` is the agent already holding this CRM identity; `same_email` the agent (active or
    inactive, from any CRM or channel) holding the user's email.
    """
    problem = user_problem(user)
    if problem is not None:
        return UserDecision(UserAction.SKIP, problem)
    email = normalize_email(user.email)
    wanted = (email, user.first_name.strip(), user.last_name.strip(), user.is_active)
    if linked is not None:
        if linked.from_other_channel:
            # T1: made by another channel, linked at the first import; CRM changes are not re-imported.
            return UserDecision(UserAction.SKIP, Skip.OTHER_CHANNEL_USER, linked.id)
        if same_email is not None and same_email.id != linked.id:
            return UserDecision(UserAction.SKIP, Skip.DUPLICATE_EMAIL, linked.id)
        current = (linked.email, linked.first_name, linked.last_name, linked.is_active)
        action = UserAction.UNCHANGED if current == wanted else UserAction.UPDATE
        return UserDecision(action, None, linked.id)
    if same_email is not None:
        if same_email.from_other_channel and same_email.crm_identity is None:
            return UserDecision(UserAction.LINK, None, same_email.id)
        # T1: the email must be unique across active and inactive users of every CRM.
        return UserDecision(UserAction.SKIP, Skip.DUPLICATE_EMAIL, same_email.id)
    return UserDecision(UserAction.CREATE)


def ticket_skip_reason(ticket: ImportedTicket, *, agent_id: int | None, now: datetime) -> Skip | None:
    """Why a CRM ticket is not imported (T1-T3), or None to import it.

    `agent_id` is the imported agent for the ticket's assignee, None when there is none: a user
    skipped by T1 (no email, say) takes their tickets with them.
    """
    if not ticket.is_solved:
        return Skip.NOT_SOLVED
    if ticket.created_at < now - RETENTION:
        return Skip.OLDER_THAN_RETENTION
    if ticket.assignee_id is None:
        return Skip.NO_AGENT
    if agent_id is None:
        return Skip.AGENT_NOT_IMPORTED
    return None


def interactions_with_user(comments: Iterable[ImportedComment]) -> tuple[list[ImportedComment], int]:
    """The interactions that carry user information (T1), and how many were dropped."""
    kept, dropped = [], 0
    for comment in comments:
        if comment.author_id:
            kept.append(comment)
        else:
            dropped += 1
    return kept, dropped


def phone_digits_reversed(phone: str | None) -> str:
    """The phone's digits, last first: a search by last digits becomes a prefix search."""
    # isdecimal: the characters a regex's \d takes, three times faster than re.sub on a phone.
    return "".join(filter(str.isdecimal, phone or ""))[::-1]


# -- Stemming language (T4) ------------------------------------------------------------------------

# The text search configuration of tickets in no language PostgreSQL can stem: words as written.
SIMPLE_CONFIG = "simple"
# ISO 639-1 language (the first part of a CRM locale: "en-US", "pt_BR", "de") to the name of the
# PostgreSQL text search configuration with its stemmer. Only names in pg_ts_config are ever used.
LANGUAGE_CONFIGS = {
    "ar": "arabic",
    "hy": "armenian",
    "eu": "basque",
    "ca": "catalan",
    "da": "danish",
    "nl": "dutch",
    "en": "english",
    "fi": "finnish",
    "fr": "french",
    "de": "german",
    "el": "greek",
    "hi": "hindi",
    "hu": "hungarian",
    "id": "indonesian",
    "ga": "irish",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "nb": "norwegian",
    "nn": "norwegian",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "es": "spanish",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}
_LOCALE_RE = re.compile(r"^\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)*\s*$")


def search_config(locale: str | None, *, available: frozenset[str], default_locale: str = "") -> str:
    """The text search configuration for a ticket in this CRM locale ("en-US", "de", "pt_BR").

    A ticket without a locale takes `default_locale`; a language PostgreSQL has no configuration
    for (`available`: the names in pg_ts_config), or no language at all, takes `simple`.
    """
    for candidate in (locale, default_locale):
        match = _LOCALE_RE.match(candidate or "")
        if match is None:
            continue
        config = LANGUAGE_CONFIGS.get(match.group(1).lower())
        return config if config in available else SIMPLE_CONFIG
    return SIMPLE_CONFIG
