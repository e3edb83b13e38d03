"""How long a failed outbox item waits before its next try: shared by the CRM actions and the status pushes."""

import random
from collections.abc import Callable


def backoff_seconds(attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random, capped."""
    step = min(cap, base * 2 ** max(0, attempt - 1))
    return step / 2 + rand() * step / 2
