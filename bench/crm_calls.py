"""CRM call economy: requests and writes per inbound IVR call session on the sandbox Zendesk.

Usage: .venv/bin/python bench/crm_calls.py [--sessions N] [--batching off|on|both] [--limit PER_MIN]

Self-contained, loopback only (helpers of bench/chaos.py and bench/ingest.py): its own database
(crmbridge_bench_crm_calls), gunicorn, Celery workers on a redis-server of its own, one beat, and a
sandbox Zendesk in this process. The mix: N inbound IVR calls (session.created, queued, assigned,
connected, ended, recording.ready, csat.submitted); every second session is a repeat caller (the
phone of the session before it, posted after it, so it appends to that caller's open ticket).
Events go through the real event API, a real worker runs them.

Phases (each on a freshly reset sandbox with the record fields made again (F1, not counted), its
per-route stats read at the end):
  off      batching off, no rate limit: requests and writes per session, by route;
  on       batching on (B1), switched by the connection's own setting (batching_enabled; its flush
           interval the product's default, 10 s, or --batch-interval);
  limited  batching off under --limit requests/min: budget used (% of limit x minutes begun),
           429s (% of requests), repeated reads (GETs beyond those of the unlimited "off" run of
           the same mix: reads a pause made the product send again), lost and
           duplicated (reconciled against the sandbox's own API, as bench/chaos.py does).
The naive baseline, from the mix: one CRM call per event that changes the record (7 a session).
Latency assignment -> ticket visible (new callers): from the post of the assignment to the ticket existing in the
sandbox's state (read in-process, so the polling costs no API request). The last line is JSON.
"""

import argparse
import json
import math
import os
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chaos import AGENTS, T0, PostLog, failed_actions, post, reconcile, wait_settled  # noqa: E402
from bench.stack import add_stack_arguments, bench_main, bench_stack, stack_options  # noqa: E402
from bench.tickets_common import percentiles_ms  # noqa: E402

DEFAULT_DB = os.environ.get("BENCH_CRM_CALLS_DB", "crmbridge_bench_crm_calls")
NO_FAULTS = {"fail_rate": 0.0, "throttle_rate": 0.0, "lost_response_rate": 0.0}
# The events of the mix that change the record: a per-event integration makes one call for each.
NAIVE_CALLS_PER_SESSION = 7
# B1's connection settings (integrations.providers.base.BATCH_SETTINGS): the "on" phase's flush interval
# is the product's default unless --batch-interval says otherwise.
BATCHING_SETTING = "batching_enabled"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200, help="call sessions per phase (default 200)")
    parser.add_argument("--batching", choices=("off", "on", "both"), default="both")
    parser.add_argument("--limit", type=int, default=120, help="requests/min of the limited run (0: skip it)")
    parser.add_argument(
        "--batch-interval", type=int, default=None, help="B1 flush interval of the 'on' phase, 1-60 s (default: 10)"
    )
    add_stack_arguments(parser, database=DEFAULT_DB, limiter_redis_url="redis://127.0.0.1:6379/13")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.sessions < 2 or args.workers < 1 or args.limit < 0:
        parser.error("--sessions >= 2, --workers >= 1, --limit >= 0")
    return args


def phone(n: int, first: int) -> str:
    # Session 2k+1 is a repeat caller of session 2k.
    return f"+1415556{(first + n - n % 2) % 10000:04d}"


def session_events(session_id: str, n: int, first: int) -> list[dict[str, Any]]:
    agent = AGENTS[n % len(AGENTS)]
    start = T0 + timedelta(minutes=n)
    queue = {"id": "q-support-billing", "name": "Billing", "path": ["Support", "Billing"]}
    kinds: list[tuple[str, int, dict[str, Any]]] = [
        (
            "session.created",
            0,
            {
                "channel": "voice",
                "session_type": "voice_inbound_ivr",
                "language": "en",
                "phone_number": phone(n, first),
                "menu_path": "Support > Billing",
                "queue": queue,
            },
        ),
        ("session.queued", 2, {"queue": queue}),
        ("session.assigned", 5, {"agent": {"email": agent}}),
        ("session.connected", 10, {"agent": {"email": agent}}),
        ("session.ended", 130, {"call_duration": 120, "hold_time": 10, "wait_time": 15}),
        ("recording.ready", 135, {"url": f"https://recordings.example.com/{session_id}.mp3"}),
        ("csat.submitted", 200, {"rating": 1 + n % 5, "comment": "thanks"}),
    ]
    return [
        {
            "event_id": f"{session_id}-{i}",
            "session_id": session_id,
            "type": kind,
            "occurred_at": (start + timedelta(seconds=after)).isoformat(),
            "data": data,
        }
        for i, (kind, after, data) in enumerate(kinds)
    ]


def visible(sandbox: Any, external_id: str) -> bool:
    state = sandbox.sandbox
    with state._lock:
        return any(ticket.get("external_id") == external_id for ticket in list(state.tickets.values()))


def post_and_time(
    base_url: str, key: str, sandbox: Any, prefix: str, count: int, first: int
) -> tuple[PostLog, list[float]]:
    """Each session: created..assigned, wait for its ticket, then the rest. Latencies in seconds."""
    log = PostLog()
    latencies: list[float] = []
    for n in range(count):
        events = session_events(f"{prefix}-{n}", n, first)
        post(base_url, key, events[:3], log)
        posted = time.monotonic()
        if n % 2:
            # A repeat caller appends to its earlier ticket: no new ticket to wait for.
            post(base_url, key, events[3:], log)
            continue
        while not visible(sandbox, f"{prefix}-{n}") and time.monotonic() - posted < 120:
            time.sleep(0.02)
        latencies.append(time.monotonic() - posted)
        post(base_url, key, events[3:], log)
    return log, latencies


def by_route(stats: dict[str, Any], sessions: int) -> dict[str, float]:
    return {route: round(count / sessions, 2) for route, count in sorted(stats["requests"].items())}


def create_record_fields() -> None:
    """F1 on the freshly reset sandbox: the record fields the mix fills (call fields at the end, CSAT)."""
    from integrations.models import CrmConnection
    from records.models import CustomField
    from records.services.custom_fields import custom_fields_create

    connection = CrmConnection.objects.get()
    # The reset sandbox forgot the fields an earlier phase made: made again, under new ids.
    CustomField.objects.filter(connection=connection).delete()
    custom_fields_create(connection=connection)


def stats_since(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The sandbox's counts between two snapshots."""
    requests = Counter(after["requests"])
    requests.subtract(before["requests"])
    return {
        **after,
        "requests": {route: count for route, count in requests.items() if count},
        "total": after["total"] - before["total"],
        "rate_limited": after["rate_limited"] - before["rate_limited"],
    }


def set_batching(on: bool, interval: int | None) -> bool:
    """Switch B1 batching through the connection's own setting; False when its CRM declares none."""
    from integrations.models import CrmConnection
    from integrations.services import connection_change_settings, connection_settings_spec

    connection = CrmConnection.objects.get()
    if BATCHING_SETTING not in {setting.name for setting in connection_settings_spec(connection.kind)}:
        return not on
    values: dict[str, Any] = {BATCHING_SETTING: on}
    if interval is not None:
        values["batch_interval_seconds"] = interval
    connection_change_settings(connection=connection, values=values)
    return True


def forget_earlier_phases() -> None:
    """The reset sandbox hands out its ids again from the start, so an earlier phase's sessions would
    be on this phase's contacts and tickets (a CRM never reuses an id): our side is reset with it."""
    from records.models import Session

    Session.objects.all().delete()


def run_phase(name: str, ctx: dict[str, Any], *, first: int, limit: int | None) -> dict[str, Any]:
    sandbox, sessions = ctx["sandbox"], ctx["sessions"]
    sandbox.reset()
    forget_earlier_phases()
    create_record_fields()
    # The field set-up is the admin's one-off F1, not the sessions' cost: counted from here.
    before = sandbox.stats()
    sandbox.configure(**NO_FAULTS, rate_limit_per_minute=limit)
    start = time.monotonic()
    started_at = time.time()
    result: dict[str, Any] = {}
    poster = threading.Thread(
        target=lambda: result.setdefault(
            "posted", post_and_time(ctx["base_url"], ctx["key"], sandbox, name, sessions, first)
        ),
        daemon=True,
    )
    poster.start()
    while poster.is_alive():
        ctx["fleet"].check()
        time.sleep(0.5)
    if "posted" not in result:
        raise RuntimeError(f"{name}: posting did not finish")
    settle = wait_settled(ctx["db_url"], name, sessions)
    elapsed = time.monotonic() - start
    stats = stats_since(before, sandbox.stats())
    # The reconciling reads are the bench's, not the product's: not counted, and not rate limited
    # (under the limit, a 429's text body is what they would read).
    sandbox.configure(**NO_FAULTS, rate_limit_per_minute=None)
    # New callers (even sessions) own a ticket by external id; repeat callers append to theirs.
    outcome = reconcile(sandbox.base_url, name, sessions)
    outcome["lost"] -= sessions // 2
    requests_total = stats["total"]
    writes = sum(n for route, n in stats["requests"].items() if not route.startswith("GET "))
    _, latencies = result["posted"]
    # The screen pop's display POST (O4): the 9.5 requests/session did not count it.
    display = sum(n for route, n in stats["requests"].items() if route.endswith("/display.json"))
    report = {
        "requests_per_session": round(requests_total / sessions, 2),
        "requests_per_session_without_screen_pop": round((requests_total - display) / sessions, 2),
        "writes_per_session": round(writes / sessions, 2),
        "by_route_per_session": by_route(stats, sessions),
        "rate_limited": stats["rate_limited"],
        "rate_limited_pct": round(100 * stats["rate_limited"] / max(1, requests_total), 2),
        "visible_after_assignment": percentiles_ms(latencies),
        "settled": settle is not None,
        "seconds": round(elapsed, 1),
        "failed_actions": failed_actions(ctx["db_url"], name),
        "reads": sum(n for route, n in stats["requests"].items() if route.startswith("GET ")),
        **outcome,
    }
    if limit:
        accepted = requests_total - stats["rate_limited"]
        # The most a sliding one-minute window lets through in `elapsed` seconds: a full minute's
        # budget in each minute begun (limit x elapsed/60 undercounts it, and read 119%).
        report["budget_used_pct"] = round(100 * accepted / (limit * math.ceil(elapsed / 60)), 1)
        report.update(saturated_budget(ctx["limiter_redis_url"], sandbox.base_url, limit, started_at=started_at))
    return report


def saturated_budget(redis_url: str, base_url: str, limit: int, *, started_at: float) -> dict[str, Any]:
    """Budget used in the minutes the product had more work than budget: the whole minutes (by the
    clock) of this phase in which the workers held requests back, from the product's own per-minute
    request counts (integrations.ratelimit usage buckets). The minute the phase began and the one it
    ended in are partial, so left out, as are the earlier phases' minutes."""
    from integrations.http import usage_key
    from integrations.ratelimit import RedisRateGate

    now = time.time()
    minutes = math.ceil((now - started_at) / 60) + 1
    usage = RedisRateGate.from_url(redis_url).usage(usage_key(base_url), minutes=minutes, now=now)
    first_whole = (math.floor(started_at / 60) + 1) * 60
    whole = [minute for minute in usage[:-1] if minute.minute.timestamp() >= first_whole]
    saturated = [minute for minute in whole if minute.held_back]
    sent = sum(minute.sent for minute in saturated)
    return {
        "saturated_minutes": len(saturated),
        "budget_used_saturated_pct": round(100 * sent / (limit * len(saturated)), 1) if saturated else None,
        "sent_per_saturated_minute": [minute.sent for minute in saturated],
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    with bench_stack(directory=tmp, **stack_options(args)) as stack:
        ctx = {"sandbox": stack.sandbox, "sessions": args.sessions, "base_url": stack.base_url, "key": stack.key}
        ctx.update({"fleet": stack.fleet, "db_url": stack.db_url, "limiter_redis_url": args.limiter_redis_url})
        plan: list[tuple[str, bool, int | None]] = []
        if args.batching in ("off", "both"):
            plan.append(("off", False, None))
        if args.batching in ("on", "both"):
            plan.append(("on", True, None))
        if args.limit:
            plan.append(("limited", False, args.limit))
        for i, (name, batching, limit) in enumerate(plan):
            if not set_batching(batching, args.batch_interval):
                phases[name] = "not available (no batching setting on the connection)"
                print(f"{name}: {phases[name]}")
                continue
            print(f"{name}: {args.sessions} sessions" + (f", limit {limit}/min" if limit else ""))
            phases[name] = run_phase(name, ctx, first=i * 2000, limit=limit)
            print(f"  {name}: {json.dumps(phases[name])}")
    limited, off = phases.get("limited"), phases.get("off")
    if isinstance(limited, dict) and isinstance(off, dict):
        # The same mix read more under the limit: reads repeated because of a pause.
        limited["repeated_reads"] = max(0, limited["reads"] - off["reads"])
    return {
        "bench": "crm_calls",
        "sessions": args.sessions,
        "naive_requests_per_session": NAIVE_CALLS_PER_SESSION,
        **{name: phase for name, phase in phases.items()},
    }


def conclude(args: argparse.Namespace, report: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether the run passed, and its summary lines."""
    measured = sorted(name for name, phase in report.items() if isinstance(phase, dict))
    return True, [f"phases measured: {measured}"]


def main() -> int:
    args = parse_args()
    return bench_main("crm_calls.py", args, run, conclude)


if __name__ == "__main__":
    sys.exit(main())
