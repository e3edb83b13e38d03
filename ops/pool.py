"""The workers' prefork pool, with one change: a pool child killed from outside at start-up is
replaced, not taken for a pool that cannot start.

Celery checks once, when a worker first starts consuming, that none of its pool children has
exited (`asynloop`: "Could not start worker processes", WorkerLostError), and the worker exits.
The check is meant for children that cannot start at all (an import error in a task module, say:
they exit by themselves with a code). A child ended by a signal — the OOM killer, an operator's or
a chaos test's SIGKILL, in the seconds while a just-restarted worker waits for its broker — started
fine, and the pool's own maintenance (every 5 s and on each child's exit) starts a replacement, as
it does for a child killed at any later moment. Without this, that one kill ends the whole worker,
and under `make run` honcho then stops the stack. CELERY_WORKER_POOL points here.
"""

from collections.abc import Iterable

from celery.concurrency import prefork


def pool_started_ok(exitcodes: Iterable[int | None]) -> bool:
    """Whether a pool whose children ended with these exit codes (None: still running) started.

    A negative code is a child ended by that signal, from outside: it started, and is replaced.
    Any other code is a child that exited by itself before the worker consumed anything: the
    start failed.
    """
    return all(code is None or code < 0 for code in exitcodes)


class TaskPool(prefork.TaskPool):
    def did_start_ok(self) -> bool:
        # Read without joining the children: the pool's maintenance joins and replaces them.
        processes = self._pool._pool  # type: ignore[attr-defined]  # billiard's pool, set in on_start
        return pool_started_ok(process.exitcode for process in processes)
