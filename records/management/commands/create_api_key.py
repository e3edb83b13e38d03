from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from rest_framework_api_key.models import APIKey


class Command(BaseCommand):
    help = "Create a platform API key and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Which platform integration the key is for")

    def handle(self, *args: Any, **options: Any) -> None:
        _, key = APIKey.objects.create_key(name=options["name"])
        self.stdout.write(key)
