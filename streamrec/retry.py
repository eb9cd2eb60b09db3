"""Calling again after a transient failure: exponential backoff with jitter, one policy for all.

The wait before attempt ``n + 1`` is drawn from ``[d / 2, d]`` with ``d = min(max_s, first_s *
2**(n - 1))`` ("equal jitter": clients that failed together do not retry in step, and every wait
is at least half the planned one). An error ``retriable`` rejects is raised at once; a retriable
one is raised when the attempts or the time run out.

>>> calls, waits = [], []
>>> def flaky():
...     calls.append(1)
...     if len(calls) < 3:
...         raise TimeoutError("not yet")
...     return "done"
>>> retry(flaky, retriable=lambda exc: isinstance(exc, TimeoutError), attempts=5, sleep=waits.append,
...       rng=lambda: 1.0)
'done'
>>> waits
[0.2, 0.4]
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def retry(call: Callable[[], T], *, retriable: Callable[[Exception], bool], attempts: int | None = None,
          timeout_s: float | None = None, first_s: float = 0.2, max_s: float = 5.0, what: str = "",
          sleep: Callable[[float], object] = time.sleep, clock: Callable[[], float] = time.monotonic,
          rng: Callable[[], float] = random.random) -> T:
    """``call()`` until it returns, within ``attempts`` calls and ``timeout_s`` seconds (either may
    be None: no bound); ``what``, when given, names the call in a warning per retry."""
    deadline = None if timeout_s is None else clock() + timeout_s
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as exc:
            if not retriable(exc):
                raise
            planned = min(max_s, first_s * 2 ** (attempt - 1))
            delay = planned / 2 + rng() * planned / 2
            if (attempts is not None and attempt >= attempts) or (deadline is not None
                                                                  and clock() + delay >= deadline):
                raise
            if what:
                log.warning("%s failed (%s); retrying in %.2fs", what, exc, delay)
            sleep(delay)
