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
        parser.add_argument("--token", help="Zendesk, Kustomer: the API token (stored encrypted, never printed)")
        parser.add_argument("--client-id", help="Salesforce: the connected app's consumer key")
        parser.add_argument("--client-secret", help="Salesforce: the connected app's consumer secret (encrypted)")
        parser.add_argument("--username", help="Salesforce: the API user, for the username-password login")
        parser.add_argument("--password", help="Salesforce: the API user's password, without the token (encrypted)")
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
        if provider == CrmKind.ZENDESK and not options["email"]:
            raise CommandError("--email is required for Zendesk ({email}/token:{api_token} authentication)")
        if provider == CrmKind.SALESFORCE:
            config = {"client_id": options["client_id"], "username": options["username"]}
            secrets = {
                "client_secret": options["client_secret"],
                "password": options["password"],
                "security_token": options["security_token"],
            }
            if not options["client_id"] or not options["client_secret"]:
                raise CommandError("--client-id and --client-secret are required for Salesforce (its connected app)")
            if options["username"] and not options["password"]:
                raise CommandError("--password is required with --username (the username-password login)")
        else:
            if not options["token"]:
                raise CommandError("--token is required")
            config, secrets = {"email": options["email"]}, {"api_token": options["token"]}
        config["rate_limit_per_minute"] = options["rate_limit"]
        try:
            connection = connection_create(
                name=options["name"] or f"{CrmKind(provider).label} {options['base_url']}",
                kind=provider,
                base_url=options["base_url"],
                config={key: value for key, value in config.items() if value},
                secrets={key: value for key, value in secrets.items() if value},
                activate=not options["inactive"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        self.stdout.write(str(connection.pk))
