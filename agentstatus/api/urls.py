from django.urls import path

from agentstatus.api.views import AdapterStatusApi, KustomerStatusWebhookApi

urlpatterns = [
    path("agentstatus/webhooks/kustomer", KustomerStatusWebhookApi.as_view(), name="agentstatus-kustomer-webhook"),
    path("adapter/status", AdapterStatusApi.as_view(), name="adapter-status"),
]
