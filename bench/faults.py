"""A flaky CRM: how long a call's ticket takes to be complete while the sandbox fails a third of requests.

Usage: .venv/bin/python bench/faults.py [--runs N] [--fail-rate R] [--without-read-retries N]

Issue 15's "Done when": with the sandbox Zendesk answering 33% of requests 5xx, a call's ticket is
complete within 60 s in 10 of 10 runs. On the stack of bench/stack.py (its own database, a
redis-server of its own, gunicorn, 2 workers, beat; the product's own retry settings), one run is
one inbound IVR call (created, queued, assigned, connected, ended, recording, CSAT: the mix of
bench/crm_calls.py, its record fields made first) posted to the event API in one batch; it is
complete when every event is applied, no action is pending or failed, and the ticket exists.

Measured in the same invocation, interleaved call by call so the shared machine's load falls on
both alike:
  baseline   N calls with no faults;
  faulty     N calls with --fail-rate of the sandbox's requests answered 503/500.
Then (unless --without-read-retries 0) the stack is started again with CRM_READ_RETRIES=0 and N
calls are made with the same faults: what the in-place read retries are worth. Printed: each
call's seconds, how many were complete within 60 s, the medians and maxima as ratios to the
baseline's, requests per call, and each call reconciled against the sandbox's own API (lost,
duplicate records, duplicate comments). The last line is JSON.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chaos import NO_FAULTS, PostLog, failed_actions, post, reconcile, unsettled  # noqa: E402
from bench.crm_calls import create_record_fields, session_events, visible  # noqa: E402
from bench.stack import Stack, add_stack_arguments, bench_main, bench_stack, stack_options  # noqa: E402

DEFAULT_DB = os.environ.get("BENCH_FAULTS_DB", "crmbridge_bench_faults")
# The bar: a call's ticket complete within this long.
COMPLETE_WITHIN_S = 60.0
# A call not complete after this long is reported as not complete (and the run moves on).
GIVE_UP_AFTER_S = 240.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="calls per phase (default 10)")
    parser.add_argument("--fail-rate", type=float, default=0.33, help="share of requests answered 5xx (0.33)")
    parser.add_argument(
        "--without-read-retries", type=int, default=10, help="calls with CRM_READ_RETRIES=0 (default 10; 0: skip)"
    )
    add_stack_arguments(parser, database=DEFAULT_DB, limiter_redis_url="redis://127.0.0.1:6379/14")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--without-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 1 or args.workers < 1 or not 0 <= args.fail_rate < 1 or args.without_read_retries < 0:
        parser.error("--runs, --workers >= 1; 0 <= --fail-rate < 1; --without-read-retries >= 0")
    return args


def complete(stack: Stack, session_id: str) -> bool:
    """Every event applied, no action pending or failed, and the ticket in the sandbox's state."""
    return (
        unsettled(stack.db_url, session_id) == (0, 0)
        and failed_actions(stack.db_url, session_id) == 0
        and visible(stack.sandbox, f"{session_id}-0")
    )


def one_call(stack: Stack, name: str, n: int, *, fail_rate: float, first: int) -> dict[str, Any]:
    """Post one call's events and time its ticket to complete; its requests and outcome."""
    session_id = f"{name}{n}"
    stack.sandbox.configure(**{**NO_FAULTS, "fail_rate": fail_rate})
    before = stack.sandbox.stats()
    started = time.monotonic()
    # A caller of its own (bench/crm_calls.py makes odd calls repeat the even ones' callers): a new ticket.
    post(stack.base_url, stack.key, session_events(f"{session_id}-0", 2 * n, first), PostLog())
    seconds: float | None = None
    while time.monotonic() - started < GIVE_UP_AFTER_S:
        stack.fleet.check()
        try:
            if complete(stack, session_id):
                seconds = time.monotonic() - started
                break
        except psycopg.OperationalError:
            pass
        time.sleep(0.2)
    after = stack.sandbox.stats()
    # Read back without faults: the reconciliation's own requests must not fail.
    stack.sandbox.configure(**NO_FAULTS)
    return {
        "seconds": None if seconds is None else round(seconds, 2),
        "requests": after["total"] - before["total"],
        "injected_failures": after["injected_failures"] - before["injected_failures"],
        "failed_actions": failed_actions(stack.db_url, session_id),
        **reconcile(stack.sandbox.base_url, session_id, 1),
    }


def summary(calls: list[dict[str, Any]]) -> dict[str, Any]:
    times = [call["seconds"] for call in calls if call["seconds"] is not None]
    return {
        "runs": len(calls),
        "complete_within_60s": sum(1 for t in times if t <= COMPLETE_WITHIN_S),
        "not_complete": len(calls) - len(times),
        "seconds": [call["seconds"] for call in calls],
        "p50_seconds": round(statistics.median(times), 2) if times else None,
        "max_seconds": round(max(times), 2) if times else None,
        "requests_per_call": round(statistics.mean(call["requests"] for call in calls), 1),
        "injected_failures_per_call": round(statistics.mean(call["injected_failures"] for call in calls), 1),
        "failed_actions": sum(call["failed_actions"] for call in calls),
        "lost": sum(call["lost"] for call in calls),
        "duplicate_records": sum(call["duplicate_records"] for call in calls),
        "duplicate_comments": sum(call["duplicate_comments"] for call in calls),
    }


def ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else round(value / base, 2)


def run_calls(stack: Stack, plan: list[tuple[str, float]], runs: int) -> dict[str, list[dict[str, Any]]]:
    """`runs` rounds of one call per phase of `plan` (name, fail rate), interleaved."""
    create_record_fields()
    calls: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in plan}
    for n in range(runs):
        for i, (name, fail_rate) in enumerate(plan):
            call = one_call(stack, name, n, fail_rate=fail_rate, first=i * 1000)
            calls[name].append(call)
            print(f"  {name} #{n + 1}: {json.dumps(call)}")
    return calls


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    stack_args: dict[str, Any] = {"directory": tmp, "seed": args.seed, **stack_options(args)}
    if args.without_only:
        print(f"faulty without in-place read retries (CRM_READ_RETRIES=0): {args.without_read_retries} calls")
        with bench_stack(env={"CRM_READ_RETRIES": "0"}, **stack_args) as stack:
            calls = run_calls(stack, [("no_read_retries", args.fail_rate)], args.without_read_retries)
        return {name: summary(phase_calls) for name, phase_calls in calls.items()}
    print(f"baseline and faulty ({args.fail_rate:.0%} 5xx): {args.runs} calls each, interleaved")
    with bench_stack(**stack_args) as stack:
        calls = run_calls(stack, [("baseline", 0.0), ("faulty", args.fail_rate)], args.runs)
    phases = {name: summary(phase_calls) for name, phase_calls in calls.items()}
    if args.without_read_retries:
        # A process of its own: this one's Django is set up on the first stack's broker and database.
        phases |= without_read_retries(args)
    base = phases["baseline"]
    for name, phase in phases.items():
        if name != "baseline":
            phase["p50_ratio_vs_baseline"] = ratio(phase["p50_seconds"], base["p50_seconds"])
            phase["max_ratio_vs_baseline"] = ratio(phase["max_seconds"], base["max_seconds"])
    return {"bench": "faults", "fail_rate": args.fail_rate, **phases}


def without_read_retries(args: argparse.Namespace) -> dict[str, Any]:
    """The faulty calls again on a stack whose workers make no in-place read retry (this script, again)."""
    command = [sys.executable, __file__, "--without-only", "--fail-rate", str(args.fail_rate)]
    command += ["--without-read-retries", str(args.without_read_retries), "--workers", str(args.workers)]
    command += ["--database", args.database, "--postgres-url", args.postgres_url, "--seed", str(args.seed)]
    command += ["--limiter-redis-url", args.limiter_redis_url]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    print(result.stdout.rstrip())
    if result.returncode != 0:
        raise RuntimeError(f"the run without read retries failed:\n{result.stderr[-3000:]}")
    phases: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return phases


def conclude(args: argparse.Namespace, report: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether the run passed, and its summary lines."""
    if args.without_only:
        return True, []
    faulty, base = report["faulty"], report["baseline"]
    lines = [
        f"{args.fail_rate:.0%} 5xx: {faulty['complete_within_60s']} of {faulty['runs']} tickets complete within "
        f"60 s; median {faulty['p50_seconds']} s, max {faulty['max_seconds']} s "
        f"({faulty['p50_ratio_vs_baseline']}x / {faulty['max_ratio_vs_baseline']}x the fault-free calls' "
        f"{base['p50_seconds']} s / {base['max_seconds']} s of the same run)"
    ]
    if "no_read_retries" in report:
        without = report["no_read_retries"]
        lines.append(
            f"without in-place read retries: {without['complete_within_60s']} of {without['runs']} within 60 s; "
            f"median {without['p50_seconds']} s ({without['p50_ratio_vs_baseline']}x), max {without['max_seconds']} s "
            f"({without['max_ratio_vs_baseline']}x)"
        )
    ok = faulty["complete_within_60s"] == faulty["runs"] and faulty["lost"] == 0
    return ok, lines


def main() -> int:
    args = parse_args()
    return bench_main("faults.py", args, run, conclude)


if __name__ == "__main__":
    sys.exit(main())
