"""The Celery application: settings come from Django's, under the CELERY_ namespace."""

import os

from celery import Celery

from config import broker

# The Redis transport that survives a broker restart (config/broker.py); RabbitMQ needs no fix.
broker.install()

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("crmbridge")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
