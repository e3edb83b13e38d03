from django.apps import AppConfig


class AgentStatusConfig(AppConfig):
    name = "agentstatus"
    verbose_name = "Agent status"
