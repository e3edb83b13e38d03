from typing import Any

from django.core.management.base import BaseCommand

from records.services.config_io import config_export_json


class Command(BaseCommand):
    help = (
        "Print the operation-management settings, teams, queues, custom data mapping and custom field ids "
        "as JSON (docs/configuration.md); `import_config` reads it back."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(config_export_json(), ending="")
