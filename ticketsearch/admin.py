import functools
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from rest_framework_api_key.admin import APIKeyModelAdmin

from integrations.admin import connections_that_can, register_connection_action
from integrations.admin_views import ViewOnlyAdminMixin
from integrations.health import HealthRow, HealthSection, register_health_source
from integrations.models import CrmConnection
from integrations.providers.base import Capability
from integrations.urlguard import is_web_url
from ticketsearch import selectors
from ticketsearch.backends import TicketQuery, search_backend
from ticketsearch.filters import phone_suffix
from ticketsearch.models import Agent, Evaluation, ImportRun, ImportState, QaToken, Ticket
from ticketsearch.services.evaluations import evaluation_create


def web_link(url: str) -> SafeString:
    """A link to a URL the CRM sent, or only its text when it is not http(s) (`javascript:` and the like)."""
    if is_web_url(url):
        return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', url, url)
    return format_html("{}", url)


class ReadOnlyAdmin(ViewOnlyAdminMixin, admin.ModelAdmin[Any]):
    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReviewedFilter(admin.SimpleListFilter):
    title = "reviewed"
    parameter_name = "reviewed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Reviewed (has an evaluation)"), ("no", "Not reviewed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() not in ("yes", "no"):
            return queryset
        return search_backend().restrict(queryset, TicketQuery(reviewed=self.value() == "yes"))


@admin.register(Ticket)
class TicketAdmin(ReadOnlyAdmin):
    """The QA search in the admin: the API's filters as list filters, full text and prefixes in the search box."""

    list_display = [
        "crm_ticket_id",
        "subject",
        "crm_kind",
        "channel",
        "status",
        "agent",
        "requester_email",
        "created_at",
    ]
    list_filter = [
        "crm_kind",
        "channel",
        "status",
        ReviewedFilter,
        "connection",
        ("agent", admin.RelatedOnlyFieldListFilter),
    ]
    date_hierarchy = "created_at"
    search_fields = ["subject"]  # replaced by get_search_results; Django needs one to show the box
    search_help_text = (
        "Full text over subject, description, comments and transcript. Also: phone:1234 (last digits), "
        "tag:vip, requester:someone@example.com"
    )
    show_full_result_count = False
    fields = (
        "crm_kind",
        "connection",
        "crm_ticket_id",
        "crm_link",
        "subject",
        "status",
        "channel",
        "agent",
        "requester_name",
        "requester_email",
        "requester_phone",
        "tags",
        "created_at",
        "solved_at",
        "description",
        "comments_display",
        "transcript",
        "recordings",
        "imported_at",
    )
    readonly_fields = fields

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("ticketsearch.search_tickets")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ticket]:
        return super().get_queryset(request).defer("search_vector", "comments_text").select_related("agent")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Ticket], search_term: str
    ) -> tuple[QuerySet[Ticket], bool]:
        words, tags = [], []
        phone = requester = None
        for term in search_term.split():
            key, _, value = term.partition(":")
            if key == "phone" and phone_suffix(value):
                phone = phone_suffix(value)
            elif key == "tag" and value:
                tags.append(value)
            elif key == "requester" and value:
                requester = value
            else:
                words.append(term)
        query = TicketQuery(text=" ".join(words), phone_suffix=phone, tags=tuple(tags), requester_email=requester)
        return search_backend().restrict(queryset, query), False

    @admin.display(description="Link in the CRM")
    def crm_link(self, ticket: Ticket) -> SafeString:
        return web_link(ticket.crm_url)

    @admin.display(description="Recordings")
    def recordings(self, ticket: Ticket) -> SafeString:
        return format_html_join(" ", "{}", ((web_link(url),) for url in ticket.recording_urls))

    @admin.display(description="Comments")
    def comments_display(self, ticket: Ticket) -> SafeString:
        authors = selectors.ticket_comment_authors(ticket)
        return format_html_join(
            "",
            "<p><b>{}</b> {}<br>{}</p>",
            (
                (
                    authors[c["author_id"]].name if c.get("author_id") in authors else f"user {c.get('author_id')}",
                    c.get("created_at") or "",
                    c.get("body") or "",
                )
                for c in ticket.comments
            ),
        )


@admin.register(Agent)
class AgentAdmin(ReadOnlyAdmin):
    """Agents are created and updated only in the CRM (T1): read-only here."""

    list_display = ["email", "first_name", "last_name", "is_active", "origin", "connection", "crm_user_id", "linked_at"]
    list_filter = ["is_active", "origin", "connection"]
    search_fields = ["email", "first_name", "last_name", "crm_user_id"]
    list_select_related = ["connection"]


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "connection",
        "trigger",
        "status",
        "started_at",
        "tickets_fetched",
        "tickets_imported",
        "tickets_updated",
        "skipped_total",
    ]
    list_filter = ["status", "trigger", "connection"]
    list_select_related = ["connection"]
    readonly_fields = (
        "connection",
        "trigger",
        "status",
        "since",
        "started_at",
        "finished_at",
        "users_fetched",
        "users_created",
        "users_updated",
        "tickets_fetched",
        "tickets_imported",
        "tickets_updated",
        "tickets_removed",
        "comments_skipped",
        "skipped_by_reason",
        "error",
    )
    fields = readonly_fields

    @admin.display(description="Skipped")
    def skipped_total(self, run: ImportRun) -> int:
        return sum(run.skipped.values())

    @admin.display(description="Skipped, per reason")
    def skipped_by_reason(self, run: ImportRun) -> SafeString:
        rows = sorted(run.skipped.items())
        if not rows:
            return format_html("{}", "none")
        return format_html("<table>{}</table>", format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows))


@admin.register(ImportState)
class ImportStateAdmin(admin.ModelAdmin[ImportState]):
    list_display = ["connection", "enabled", "last_run_at"]
    list_editable = ["enabled"]
    readonly_fields = ["connection", "users_cursor", "tickets_cursor", "last_run_at", "updated_at"]
    actions = ["import_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Import now (in a worker)")
    def import_now(self, request: HttpRequest, queryset: QuerySet[ImportState]) -> None:
        from ticketsearch.tasks import import_connection_task

        for state in queryset:
            import_connection_task.delay(state.connection_id, ImportRun.Trigger.ADMIN)
        self.message_user(request, f"{queryset.count()} import(s) queued.", messages.SUCCESS)


@functools.partial(register_connection_action, requires=Capability.TICKET_IMPORT)
@admin.action(description="Import solved tickets now (QA search)")
def import_tickets_now(
    modeladmin: admin.ModelAdmin[CrmConnection], request: HttpRequest, queryset: QuerySet[CrmConnection]
) -> None:
    """Also before the first import, when the connection has no import state yet."""
    from ticketsearch.tasks import import_connection_task

    for connection in connections_that_can(modeladmin, request, queryset, Capability.TICKET_IMPORT):
        import_connection_task.delay(connection.pk, ImportRun.Trigger.ADMIN)
        url = reverse("admin:ticketsearch_importrun_changelist") + f"?connection__id__exact={connection.pk}"
        modeladmin.message_user(
            request,
            format_html('{}: import queued; its run appears under <a href="{}">Import runs</a>.', connection, url),
            messages.SUCCESS,
        )


@register_health_source
def import_health(connection: CrmConnection | None) -> HealthSection | None:
    """The last import run of each connection that imports, with its counts."""
    rows = []
    for run_connection, run in selectors.last_import_runs(connection=connection):
        if run is None:
            rows.append(HealthRow(str(run_connection), "never imported", alert=False))
            continue
        url = reverse("admin:ticketsearch_importrun_change", args=[run.pk])
        when = timezone.localtime(run.finished_at or run.started_at)
        counts = f"{run.tickets_imported} new, {run.tickets_updated} updated, {run.tickets_fetched} fetched"
        rows.append(
            HealthRow(
                str(run_connection),
                f"{run.get_status_display()} ({run.get_trigger_display().lower()}) at {when:%Y-%m-%d %H:%M}: {counts}"
                + (f"; error: {run.error[:200]}" if run.error else ""),
                url,
                alert=run.status == ImportRun.Status.FAILED,
            )
        )
    if not rows:
        return None
    return HealthSection("Ticket import (QA search)", rows)


class EvaluationForm(forms.ModelForm[Evaluation]):
    class Meta:
        model = Evaluation
        fields = ["ticket_id", "score", "answers", "comment"]

    def clean_ticket_id(self) -> int:
        ticket_id: int = self.cleaned_data["ticket_id"]
        self.ticket = selectors.ticket_get(ticket_id=ticket_id)
        if self.ticket is None:
            raise forms.ValidationError("No imported ticket has this id (it may be older than 90 days).")
        return ticket_id


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin[Evaluation]):
    """QA reviewers record evaluations here or through the API; both go through evaluation_create."""

    form = EvaluationForm
    list_display = ["id", "crm_ticket_id", "ticket_subject", "reviewer", "score", "created_at"]
    list_filter = ["connection", "reviewer"]
    search_fields = ["crm_ticket_id", "ticket_subject", "comment"]
    list_select_related = ["reviewer"]

    def get_readonly_fields(self, request: HttpRequest, obj: Evaluation | None = None) -> list[str]:
        # An evaluation is a record of what was judged: after saving, only its comment may change.
        if obj is None:
            return []
        return ["ticket_id", "crm_ticket_id", "ticket_subject", "reviewer", "score", "answers", "created_at"]

    def get_fields(self, request: HttpRequest, obj: Evaluation | None = None) -> Any:
        if obj is None:
            return ["ticket_id", "score", "answers", "comment"]
        return [*self.get_readonly_fields(request, obj), "comment"]

    def save_model(self, request: HttpRequest, obj: Evaluation, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["comment"])
            return
        created = evaluation_create(
            ticket=form.ticket,
            reviewer=request.user,  # type: ignore[arg-type]  # the admin's user is authenticated
            score=form.cleaned_data["score"],
            answers=form.cleaned_data["answers"] or {},
            comment=form.cleaned_data["comment"],
        )
        obj.pk = created.pk


@admin.register(QaToken)
class QaTokenAdmin(APIKeyModelAdmin):
    """Adding one shows its key once (only the hash is stored); the reviewer's QA permissions apply."""

    # The base class's attributes are inferred as fixed-length tuples; these add the user column.
    list_display = ("prefix", "name", "user", "created", "expiry_date", "_has_expired", "revoked")  # type: ignore[assignment]
    list_select_related = ["user"]
    search_fields = ("name", "prefix", "user__username", "user__email")  # type: ignore[assignment]
    autocomplete_fields = ["user"]
