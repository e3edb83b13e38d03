from django.urls import path

from adapter.views import AdapterPanelView

app_name = "adapter"
urlpatterns = [path("", AdapterPanelView.as_view(), name="panel")]
