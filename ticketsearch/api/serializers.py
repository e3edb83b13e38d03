"""Shapes of the QA API: search results, ticket detail, evaluations. Fields are listed explicitly."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ticketsearch.backends import TicketHit
from ticketsearch.models import Agent, Evaluation, Ticket

MAX_ANSWERS = 100
MAX_ANSWER_LENGTH = 2000


class AgentSerializer(serializers.ModelSerializer[Agent]):
    name = serializers.CharField()

    class Meta:
        model = Agent
        fields = ["id", "name", "email"]


class RequesterSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField()


class HighlightSerializer(serializers.Serializer[Any]):
    subject = serializers.CharField(help_text="The subject with matching words in <mark>")
    text = serializers.CharField(help_text="Fragments of description, comments and transcript around the matches")


class TicketResultSerializer(serializers.ModelSerializer[Ticket]):
    """One search result (a TicketHit: the search reads plain rows, not models); `highlights` is null
    when the search had no text."""

    crm = serializers.CharField(source="crm_kind")
    connection = serializers.IntegerField(source="connection_id")
    agent = serializers.SerializerMethodField()
    requester = serializers.SerializerMethodField()
    highlights = serializers.SerializerMethodField()

    class Meta:
        model = Ticket
        fields = [
            "id",
            "crm",
            "connection",
            "crm_ticket_id",
            "subject",
            "status",
            "channel",
            "agent",
            "requester",
            "tags",
            "created_at",
            "solved_at",
            "recording_urls",
            "crm_url",
            "highlights",
        ]

    @extend_schema_field(AgentSerializer(allow_null=True))
    def get_agent(self, ticket: TicketHit) -> dict[str, Any] | None:
        # AgentSerializer's fields, without a serializer per row: the hit already holds just them.
        agent = ticket.agent
        return {"id": agent.id, "name": agent.name, "email": agent.email} if agent else None

    @extend_schema_field(RequesterSerializer)
    def get_requester(self, ticket: Ticket | TicketHit) -> dict[str, Any]:
        return {"name": ticket.requester_name, "email": ticket.requester_email, "phone": ticket.requester_phone}

    @extend_schema_field(HighlightSerializer(allow_null=True))
    def get_highlights(self, ticket: TicketHit) -> dict[str, str] | None:
        return ticket.highlights


class TicketSearchPageSerializer(serializers.Serializer[Any]):
    results = TicketResultSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="Pass as `cursor` for the next page; null at the end"
    )


class CommentSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    author_id = serializers.CharField(help_text="The author's id in the CRM")
    author = serializers.CharField(allow_null=True, help_text="The agent's name, null for a customer")
    body = serializers.CharField()
    public = serializers.BooleanField()
    created_at = serializers.DateTimeField(allow_null=True)
    recording_url = serializers.CharField(allow_null=True)


class EvaluationSerializer(serializers.ModelSerializer[Evaluation]):
    reviewer = serializers.CharField(source="reviewer.get_username")

    class Meta:
        model = Evaluation
        fields = ["id", "ticket_id", "crm_ticket_id", "reviewer", "score", "answers", "comment", "created_at"]


class TicketDetailSerializer(TicketResultSerializer):
    description = serializers.CharField()
    comments = serializers.SerializerMethodField()
    transcript = serializers.CharField()
    evaluations = serializers.SerializerMethodField()

    class Meta(TicketResultSerializer.Meta):
        fields = [
            *[name for name in TicketResultSerializer.Meta.fields if name != "highlights"],
            "description",
            "comments",
            "transcript",
            "evaluations",
        ]

    @extend_schema_field(AgentSerializer(allow_null=True))
    def get_agent(self, ticket: Ticket) -> dict[str, Any] | None:  # type: ignore[override]  # a Ticket, not a hit
        agent = self.context.get("agents", {}).get(ticket.agent_id)
        return AgentSerializer(agent).data if agent else None

    @extend_schema_field(CommentSerializer(many=True))
    def get_comments(self, ticket: Ticket) -> list[dict[str, Any]]:
        authors = self.context.get("authors", {})
        comments = []
        for comment in ticket.comments:
            agent = authors.get(comment.get("author_id"))
            comments.append({**comment, "author": agent.name if agent else None})
        return CommentSerializer(comments, many=True).data  # type: ignore[return-value]  # a ReturnList

    @extend_schema_field(EvaluationSerializer(many=True))
    def get_evaluations(self, ticket: Ticket) -> list[dict[str, Any]]:
        return EvaluationSerializer(self.context.get("evaluations", []), many=True).data  # type: ignore[return-value]


class EvaluationInputSerializer(serializers.Serializer[Any]):
    score = serializers.IntegerField(min_value=0, max_value=100)
    answers = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        default=dict,
        help_text="Form answers: question -> answer (text, number, true/false or null)",
    )
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)

    def validate_answers(self, answers: dict[str, Any]) -> dict[str, Any]:
        if len(answers) > MAX_ANSWERS:
            raise serializers.ValidationError(f"At most {MAX_ANSWERS} answers.")
        for question, answer in answers.items():
            if not question.strip() or len(question) > MAX_ANSWER_LENGTH:
                raise serializers.ValidationError("Each question must be 1 to 2000 characters.")
            if answer is not None and not isinstance(answer, str | int | float | bool):
                raise serializers.ValidationError(f"{question}: an answer is text, a number, true/false or null.")
            if isinstance(answer, str) and len(answer) > MAX_ANSWER_LENGTH:
                raise serializers.ValidationError(f"{question}: at most {MAX_ANSWER_LENGTH} characters.")
        return answers
