from typing import Any

from rest_framework import serializers

from agentstatus.models import PlatformStatus
from agentstatus.selectors import AgentStatusView, platform_status_find


class PlatformStatusSerializer(serializers.Serializer[PlatformStatus]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class AgentStatusOutputSerializer(serializers.Serializer[AgentStatusView]):
    """The adapter's view of the agent's platform status (A5)."""

    agent = serializers.EmailField(source="agent.email", help_text="The agent the token belongs to.")
    status = PlatformStatusSerializer(allow_null=True, help_text="The current platform status (null: none yet).")
    status_source = serializers.CharField(
        source="source", help_text="Who set it: crm, adapter, admin or system (empty: nobody yet)."
    )
    changed_at = serializers.DateTimeField(allow_null=True)
    crm_overrides = serializers.BooleanField(
        help_text=(
            "True when Kustomer's next status change replaces this status whatever its time "
            '(priority "CRM always overrides", inheritance on, sync running for the agent).'
        )
    )
    sync_stopped = serializers.BooleanField(
        help_text="True while the agent is signed in to Kustomer in more than one tab or computer (A3)."
    )
    sync_stopped_reason = serializers.CharField(allow_null=True)
    statuses = PlatformStatusSerializer(many=True, help_text="The statuses the agent can choose.")


class AgentStatusInputSerializer(serializers.Serializer[Any]):
    status = serializers.CharField(max_length=100, help_text="A platform status, by name (case-insensitive) or id.")

    def validate_status(self, value: str) -> PlatformStatus:
        found = platform_status_find(value)
        if found is None:
            names = ", ".join(PlatformStatus.objects.values_list("name", flat=True)) or "none configured"
            raise serializers.ValidationError(f"Unknown platform status {value!r}; one of: {names}.")
        return found
