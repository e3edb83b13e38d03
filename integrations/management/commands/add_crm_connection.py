from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.models import CrmKind
from integrations.providers.registry import PROVIDERS
from integrations.services import connection_create


class Command(BaseCommand):
    help = "Add (or update) a CRM connection with encrypted credentials, make it active, print its id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", required=True, choices=sorted(PROVIDERS))
        parser.add_argument("--base-url", required=True, help="e.g. https://acme.zendesk.com")
        parser.add_argument("--email", help="Zendesk: the API user's email")
        parser.add_argument("--token", required=True, help="The API token (stored encrypted, never printed)")
        parser.add_argument("--name", help="Display name (default: the provider and host)")
        parser.add_argument(
            "--rate-limit", type=int, help="The CRM plan's API requests per minute, kept by all workers"
        )
        parser.add_argument("--inactive", action="store_true", help="Store it without making it the active one")

    def handle(self, *args: Any, **options: Any) -> None:
        provider = options["provider"]
        if provider == CrmKind.ZENDESK and not options["email"]:
            raise CommandError("--email is required for Zendesk ({email}/token:{api_token} authentication)")
        config = {"email": options["email"], "rate_limit_per_minute": options["rate_limit"]}
        try:
            connection = connection_create(
                name=options["name"] or f"{CrmKind(provider).label} {options['base_url']}",
                kind=provider,
                base_url=options["base_url"],
                config={key: value for key, value in config.items() if value},
                secrets={"api_token": options["token"]},
                activate=not options["inactive"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(str(connection.pk))
