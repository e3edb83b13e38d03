from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.models import CrmKind
from integrations.providers.registry import PROVIDERS
from integrations.services import connection_create


def _declared_settings() -> str:
    lines = []
    for kind, provider in sorted(PROVIDERS.items()):
        names = [f"{setting.name}{' (secret)' if setting.secret else ''}" for setting in provider.settings_spec]
        lines.append(f"{kind}: {', '.join(names)}")
    return "; ".join(lines)


# Today's flags (their option names): shorthands for the settings they always meant.
SHORTHANDS = {
    "email": "email",
    "token": "api_token",
    "client_id": "client_id",
    "client_secret": "client_secret",
    "username": "username",
    "password": "password",
    "security_token": "security_token",
}
MODEL_OPTIONS = {"base_url": "--base-url", "name": "--name", "kind": "--provider"}


def _option(key: str) -> str:
    """The command-line option an error on `key` is about."""
    if key in MODEL_OPTIONS:
        return MODEL_OPTIONS[key]
    flags = [f"--{flag.replace('_', '-')}" for flag, name in SHORTHANDS.items() if name == key]
    return f"--setting {key}" + (f" (or {flags[0]})" if flags else "")


class Command(BaseCommand):
    help = (
        "Add (or update) a CRM connection with encrypted credentials, make it active, print its id. "
        f"Each CRM's settings, given as --setting NAME=VALUE: {_declared_settings()}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", required=True, choices=sorted(PROVIDERS))
        parser.add_argument("--base-url", required=True, help="e.g. https://acme.zendesk.com")
        parser.add_argument(
            "--setting",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="One of the provider's declared settings (repeat for each); secrets are stored encrypted",
        )
        parser.add_argument("--email", help="Zendesk: the API user's email (the same as --setting email=...)")
        parser.add_argument("--token", help="The API token or key (the same as --setting api_token=...)")
        parser.add_argument("--client-id", help="Salesforce: the connected app's consumer key (--setting client_id)")
        parser.add_argument(
            "--client-secret", help="Salesforce: the connected app's consumer secret (--setting client_secret)"
        )
        parser.add_argument("--username", help="Salesforce: the API user, for the username-password login")
        parser.add_argument("--password", help="Salesforce: the API user's password, without the security token")
        parser.add_argument(
            "--security-token",
            help="Salesforce: the API user's security token, appended to the password at login (encrypted)",
        )
        parser.add_argument("--name", help="Display name (default: the provider and host)")
        parser.add_argument(
            "--rate-limit", type=int, help="The CRM plan's API requests per minute, kept by all workers"
        )
        parser.add_argument("--inactive", action="store_true", help="Store it without making it the active one")

    def handle(self, *args: Any, **options: Any) -> None:
        provider = options["provider"]
        values: dict[str, str] = {}
        for item in options["setting"]:
            name, equals, value = item.partition("=")
            if not equals or not name.strip():
                raise CommandError(f"--setting {item!r}: expected NAME=VALUE")
            values[name.strip()] = value
        for flag, name in SHORTHANDS.items():
            if options[flag] is not None:
                values.setdefault(name, options[flag])
        try:
            connection = connection_create(
                name=options["name"] or f"{CrmKind(provider).label} {options['base_url']}",
                kind=provider,
                base_url=options["base_url"],
                settings=values,
                rate_limit_per_minute=options["rate_limit"],
                activate=not options["inactive"],
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(_option(key) + ": " + " ".join(messages) for key, messages in exc.message_dict.items())
            ) from exc
        self.stdout.write(str(connection.pk))
