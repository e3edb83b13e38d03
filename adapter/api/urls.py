from django.urls import path

from adapter.api.views import AdapterSessionApi, OutboundPrepareApi, OutboundStartApi, ScreenPopApi

urlpatterns = [
    path("adapter/outbound/prepare", OutboundPrepareApi.as_view(), name="adapter-outbound-prepare"),
    path("adapter/outbound/start", OutboundStartApi.as_view(), name="adapter-outbound-start"),
    path("adapter/screen-pop", ScreenPopApi.as_view(), name="adapter-screen-pop"),
    path("adapter/sessions/<str:session_id>", AdapterSessionApi.as_view(), name="adapter-session"),
]
