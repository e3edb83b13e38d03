from django.urls import path

from records.api.views import EventsIngestApi, PingApi

urlpatterns = [
    path("events", EventsIngestApi.as_view(), name="events-ingest"),
    path("ping", PingApi.as_view(), name="ping"),
]
