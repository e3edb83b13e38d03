"""What the production middleware costs a request, against the authenticated ping it wraps.

Usage: .venv/bin/python bench/request_overhead.py [--requests 2000] [--calls 50000] [--db NAME]

In one process (no network), two measurements of the same run:

  ping       `GET /api/v1/ping` with an API key through Django's handler and the middleware stack
             without the two added below: the baseline, a request that does the least real work
  added      each added middleware alone, called --calls times around a view that does nothing:
             the Prometheus request counter and histogram (ops.metrics) and WhiteNoise

The figure is the added microseconds ÷ the ping's microseconds (0.01 = 1% slower). A full-stack
with/without comparison was tried first: on this shared machine its noise (±15%) is larger than
the effect. The script re-creates its own database (default `crmbridge_bench_overhead`, or
$BENCH_OVERHEAD_DB). The last line printed is one JSON object.
"""

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tickets_common import DEFAULT_POSTGRES, recreate_database, setup_django

ADDED = ("ops.metrics.RequestMetricsMiddleware", "whitenoise.middleware.WhiteNoiseMiddleware")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="pings measured (median of 5 rounds)")
    parser.add_argument("--calls", type=int, default=50000, help="calls of each middleware alone")
    parser.add_argument("--db", default=os.environ.get("BENCH_OVERHEAD_DB", "crmbridge_bench_overhead"))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()

    setup_django(recreate_database(args.postgres_url, args.db))
    from django.conf import settings
    from django.http import HttpRequest, HttpResponse
    from django.test import Client, RequestFactory, override_settings
    from django.urls import resolve
    from rest_framework_api_key.models import APIKey
    from whitenoise.middleware import WhiteNoiseMiddleware

    from ops.metrics import RequestMetricsMiddleware

    _, key = APIKey.objects.create_key(name="bench")
    headers = {"HTTP_AUTHORIZATION": f"Api-Key {key}", "HTTP_HOST": "localhost"}
    rounds = []
    with override_settings(MIDDLEWARE=[name for name in settings.MIDDLEWARE if name not in ADDED]):
        client = Client()
        assert client.get("/api/v1/ping", **headers).status_code == 200  # type: ignore[arg-type]
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(args.requests // 5):
                client.get("/api/v1/ping", **headers)  # type: ignore[arg-type]
            rounds.append((time.perf_counter() - started) / (args.requests // 5))
    ping_us = statistics.median(rounds) * 1e6

    answer = HttpResponse("ok")

    def view(request: HttpRequest) -> HttpResponse:
        return answer

    request = RequestFactory().get("/api/v1/ping", HTTP_HOST="localhost")
    request.resolver_match = resolve("/api/v1/ping")

    def cost_us(call: Callable[[HttpRequest], HttpResponse]) -> float:
        for _ in range(1000):
            call(request)
        started = time.perf_counter()
        for _ in range(args.calls):
            call(request)
        return (time.perf_counter() - started) / args.calls * 1e6

    bare = cost_us(view)
    metrics_us = cost_us(RequestMetricsMiddleware(view)) - bare
    whitenoise_us = cost_us(WhiteNoiseMiddleware(view)) - bare
    added = metrics_us + whitenoise_us
    result = {
        "bench": "request_overhead",
        "baseline_ping_us": round(ping_us, 1),
        "metrics_middleware_us": round(metrics_us, 2),
        "whitenoise_middleware_us": round(whitenoise_us, 2),
        "added_ratio_vs_ping": round(added / ping_us, 4),
        "requests": args.requests,
        "calls": args.calls,
    }
    print(f"ping {ping_us:.0f} µs; the metrics middleware adds {metrics_us:.1f} µs, WhiteNoise {whitenoise_us:.1f} µs")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
