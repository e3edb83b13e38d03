from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.renderers import BaseRenderer, JSONRenderer

from ops.health import HealthView, WebHealthView
from ops.metrics import metrics_view


class SwaggerView(SpectacularSwaggerView):
    """The Swagger page. Its renderer needs a template, which DRF's OPTIONS answer has not (it was a 500)."""

    def get_renderers(self) -> list[BaseRenderer]:
        if self.request.method == "OPTIONS":
            return [JSONRenderer()]
        return super().get_renderers()


# The product's name instead of "Django administration".
admin.site.site_header = "CRM Bridge"
admin.site.site_title = "CRM Bridge admin"
admin.site.index_title = "Operations"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("records.api.urls")),
    path("api/v1/", include("agentstatus.api.urls")),
    path("api/v1/", include("ticketsearch.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("healthz", HealthView.as_view(), name="healthz"),
    path("healthz/web", WebHealthView.as_view(), name="healthz-web"),
    path("metrics", metrics_view, name="metrics"),
]
