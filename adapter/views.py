"""The reference adapter panel: the page a CRM app's iframe would load (ADAPTER.md).

It holds no session of its own: the agent signs in with the adapter token, which the page keeps in
the tab's sessionStorage and sends as `Authorization: Agent-Token` to the same REST API any adapter uses.
"""

from typing import Any

from django.utils.decorators import method_decorator
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.generic import TemplateView


# A CRM embeds the adapter in an iframe; the page carries no cookie credentials a frame could abuse.
@method_decorator(xframe_options_exempt, name="dispatch")
class AdapterPanelView(TemplateView):
    template_name = "adapter/panel.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        # A CRM's click-to-call opens the panel with the number, contact or record in the query string.
        context["prefill"] = {
            key: self.request.GET.get(key, "")[:64]
            for key in ("phone_number", "contact_id", "record_id", "ticket_id")
            if self.request.GET.get(key)
        }
        return context
