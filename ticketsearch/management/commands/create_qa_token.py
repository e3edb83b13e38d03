from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ticketsearch.models import QaToken


class Command(BaseCommand):
    help = "Issue a QA API token for a staff user and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The QA reviewer (a staff user with the QA permission)")
        parser.add_argument("--name", help="What the token is for (default: the username)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_model().objects.get(username=options["username"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {options['username']!r}.") from None
        _, key = QaToken.objects.create_key(name=options["name"] or user.get_username(), user=user)
        self.stdout.write(key)
