from django.apps import AppConfig


class OpsConfig(AppConfig):
    """The production process model's pieces: /healthz, /metrics, the single beat (docs/operations.md)."""

    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from ops import metrics

        metrics.connect_outcome_counters()
