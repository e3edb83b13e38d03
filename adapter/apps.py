from django.apps import AppConfig


class AdapterConfig(AppConfig):
    """The agent adapter's API (outbound, screen pop, sessions) and the reference panel at /adapter/.

    The top layer over records (sessions, outbound, screen pop) and agentstatus (agents, tokens):
    it owns no models, only thin views.
    """

    name = "adapter"
    verbose_name = "Agent adapter"
