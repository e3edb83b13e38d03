import shlex
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Q
from rest_framework_api_key.models import APIKey

from agentstatus.models import Agent, AgentToken
from agentstatus.selectors import sync_settings_get
from integrations.services import connection_create
from records.models import OperationSettings, Queue, Session, Team
from records.services.custom_fields import custom_fields_create_enqueue
from ticketsearch.models import ImportRun
from ticketsearch.tasks import import_connection_task

DEMO_KEY_NAME = "demo platform"
# The sandbox Kustomer fixture's agents (integrations/sandbox/fixtures/kustomer_demo.json).
DEMO_AGENTS = [("ana@example.com", "Ana Agent"), ("ben@example.com", "Ben Agent"), ("carla@example.com", "Carla Agent")]
DEMO_AGENT_EMAIL = "ana@example.com"
DEMO_TOKEN_NAME = "demo adapter"
DEMO_OUTBOUND_NUMBER = "+18005550199"
EXAMPLE_EVENTS = Path(settings.BASE_DIR) / "docs" / "examples" / "ivr_call.json"


class Command(BaseCommand):
    help = (
        "Load the demo configuration: an admin user, a platform API key (printed once) and an active "
        "connection to the sandbox Zendesk with its record fields (made in the background); then print how "
        "to use them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sandbox-url", default="http://127.0.0.1:8801")
        parser.add_argument(
            "--kustomer-url", default="http://127.0.0.1:8802", help="The sandbox Kustomer, for agent status"
        )
        parser.add_argument("--web-url", default="http://127.0.0.1:8000")
        parser.add_argument("--admin-password", default="admin")
        parser.add_argument(
            "--keep-sessions",
            action="store_true",
            help="Keep the sessions of earlier demo runs (by default they are cleared: see below)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.CRM_ALLOW_LOOPBACK:
            # The workers must reach the sandbox too, so turning it on here alone would not do.
            raise CommandError(
                "The demo's CRM is a sandbox on loopback: set CRM_ALLOW_LOOPBACK=true for this command and "
                "the web and worker processes (`make run` does)."
            )
        user_model = get_user_model()
        admin, created = user_model.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password(options["admin_password"])
            admin.save(update_fields=["password"])

        # Keys are stored hashed, so a new demo key is made each time and the old one revoked.
        APIKey.objects.filter(name=DEMO_KEY_NAME, revoked=False).update(revoked=True)
        _, key = APIKey.objects.create_key(name=DEMO_KEY_NAME)

        connection = connection_create(
            name="Sandbox Zendesk",
            kind="zendesk",
            base_url=options["sandbox_url"],
            settings={"email": "admin@example.com", "api_token": "sandbox-token"},
            activate=True,
        )
        # Agent status inheritance (A1-A5) is tried against the sandbox Kustomer: a second connection,
        # not the active one, chosen in the status sync settings; its agents are the fixture's.
        kustomer = connection_create(
            name="Sandbox Kustomer",
            kind="kustomer",
            base_url=options["kustomer_url"],
            settings={"api_token": "sandbox-api-key"},
            activate=False,
        )
        sync = sync_settings_get()
        sync.connection = kustomer
        sync.save(update_fields=["connection", "updated_at"])
        for email, name in DEMO_AGENTS:
            Agent.objects.get_or_create(email=email, defaults={"name": name})
        # QA search: the sandbox Zendesk starts with solved tickets (Procfile: --seed-tickets); the
        # worker imports them as soon as both are up (a first try before the sandbox is retried).
        transaction.on_commit(
            lambda: import_connection_task.delay(connection.pk, ImportRun.Trigger.COMMAND), robust=True
        )
        # The example call's queue and a team for it, so the queue and team screens are not empty;
        # the operation-management settings start at their defaults (docs/rules.md).
        if not OperationSettings.objects.exists():
            # The adapter panel shows every outbound choice the first time (seed 004's own example).
            OperationSettings.objects.create(
                outbound_prompt_record_choice=True, outbound_allow_create_new=True, outbound_allow_entered_number=True
            )
        team, _ = Team.objects.get_or_create(name="Billing support")
        queue, _ = Queue.objects.get_or_create(
            platform_id="q-billing",
            defaults={
                "name": "Billing",
                "path": ["Support", "Billing"],
                "default_outbound_number": DEMO_OUTBOUND_NUMBER,
            },
        )
        queue.teams.add(team)
        # The sandbox keeps its ticket fields in memory too: after a restart the record fields (F1)
        # are made again, by a worker once the sandbox answers (the task retries until then).
        custom_fields_create_enqueue(connection=connection)
        # The example call's agent (a sandbox Zendesk agent too), with an adapter token for the panel.
        agent, _ = Agent.objects.update_or_create(
            email=DEMO_AGENT_EMAIL, defaults={"team": team}, create_defaults={"name": "Ana Agent", "team": team}
        )
        AgentToken.objects.filter(agent=agent, name=DEMO_TOKEN_NAME, revoked=False).update(revoked=True)
        _, agent_token = AgentToken.objects.create_key(name=DEMO_TOKEN_NAME, agent=agent)
        cleared = 0
        if not options["keep_sessions"]:
            # The sandbox keeps its tickets in memory, so after a restart the earlier demo sessions
            # point at records that no longer exist, and re-posting the example would only be
            # acknowledged as duplicates. Start the demo clean instead.
            cleared, _ = Session.objects.filter(Q(crm_connection=connection) | Q(crm_connection__isnull=True)).delete()
        web = options["web_url"]
        password = options["admin_password"] if created else "<unchanged>"
        read_back = f"{options['sandbox_url']}/api/v2/tickets.json?external_id=c-1"
        curl = (
            f"curl -sS -X POST {web}/api/v1/events -H 'Authorization: Api-Key {key}' "
            f"-H 'Content-Type: application/json' --data @{shlex.quote(str(EXAMPLE_EVENTS))}"
        )
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "CRM Bridge demo" + (f" (cleared {cleared} rows of earlier demo sessions)" if cleared else ""),
                    f"  Admin:        {web}/admin/   (login: admin / {password})",
                    f"  API docs:     {web}/api/docs/",
                    f"  Settings:     {web}/admin/records/operationsettings/   (record rules R1-R9)",
                    f"  API key:      {key}",
                    f"  Adapter:      {web}/adapter/   (the agent panel; sign in with the adapter token)",
                    f"  Agent token:  {agent_token}   ({DEMO_AGENT_EMAIL})",
                    "    On the panel, dial +14155550101 (Dana Whitfield, a sandbox contact); post the example call",
                    "    below and its ticket pops on the panel, as Ana answers it.",
                    f"  Sandbox CRM:  {options['sandbox_url']}  (Zendesk API; /__sandbox/stats)",
                    f"  Kustomer:     {options['kustomer_url']}  (agent status: Status sync settings)",
                    f"  QA search:    {web}/admin/ticketsearch/ticket/   (solved tickets, imported by the worker)",
                    "  Post the example IVR call (docs/examples/ivr_call.json):",
                    f"    {curl}",
                    "  Then read the ticket back:",
                    f"    curl -sS -u admin@example.com/token:sandbox-token '{read_back}'",
                    "",
                ]
            )
        )
        self.stdout.flush()
