"""The Redis broker transport, with one fix: a worker survives the broker going away.

What killed every worker when Redis restarted (kombu 5.7, acks_late): the consumer's connection
breaks, and closing it fails halfway (Redis is gone), leaving its default channel open while the
connection detaches its transport (`transport.client = None`). Celery then closes the connection
a second time; the still-open channel tries to give its unacknowledged messages back
(`QoS.restore_unacked_once`), builds a new Redis client from `transport.client`, which is now
None, and raises `AttributeError: 'NoneType' object has no attribute 'hostname'`. That is not a
connection error, so Celery treats it as a bug in itself: "Unrecoverable error", the worker exits.

Here the channel answers that case with what it is, a broker connection error: kombu's
close ignores it and the worker reconnects as it does for any broker outage. The messages that
channel held unacknowledged stay in Redis's unacked set and come back after the visibility
timeout (or were lost with an emptied Redis); either way the sweeps (records.tasks, every 5 s)
re-enqueue their work. config/celery.py points the redis:// and rediss:// schemes here.
"""

from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError(
                "the broker connection is already closed: unacknowledged messages are left to the visibility timeout"
            )
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Make redis:// (and rediss://) broker URLs use this transport, in web and worker processes."""
    TRANSPORT_ALIASES["redis"] = "config.broker:Transport"
    TRANSPORT_ALIASES["rediss"] = "config.broker:Transport"
