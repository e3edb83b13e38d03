"""A ready "QA reviewers" group: search imported tickets and evaluate them (T4, T6)."""

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "QA reviewers"
PERMISSIONS = [
    ("ticketsearch", "search_tickets"),
    ("ticketsearch", "evaluate_tickets"),
    ("ticketsearch", "view_ticket"),
    ("ticketsearch", "view_evaluation"),
    ("ticketsearch", "add_evaluation"),
]


def add_group(apps: Any, schema_editor: Any) -> None:
    # Permissions are made after migrations on a new database; make them now so the group can have them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=GROUP)
    for app_label, codename in PERMISSIONS:
        group.permissions.add(permission_model.objects.get(content_type__app_label=app_label, codename=codename))


def remove_group(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ticketsearch", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(add_group, remove_group)]
