from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("records.api.urls")),
    path("api/v1/", include("agentstatus.api.urls")),
    path("api/v1/", include("ticketsearch.api.urls")),
    path("api/v1/", include("adapter.api.urls")),
    path("adapter/", include("adapter.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
