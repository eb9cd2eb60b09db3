"""One retry policy: exponential backoff with equal jitter, bounded by attempts or time."""

from __future__ import annotations

import pytest

from streamrec.retry import retry


class Flaky:
    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def _timeout(exc: Exception) -> bool:
    return isinstance(exc, TimeoutError)


def test_waits_grow_exponentially_within_their_jitter_and_cap() -> None:
    waits: list[float] = []
    assert retry(Flaky(6, TimeoutError()), retriable=_timeout, first_s=0.1, max_s=1.0, sleep=waits.append,
                 rng=lambda: 0.0) == "ok"
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]  # half the planned wait at the least jitter; capped
    waits.clear()
    retry(Flaky(2, TimeoutError()), retriable=_timeout, first_s=0.1, sleep=waits.append, rng=lambda: 1.0)
    assert waits == [0.1, 0.2]


def test_an_error_that_is_not_retriable_is_raised_at_once() -> None:
    flaky = Flaky(1, ValueError("bad"))
    with pytest.raises(ValueError):
        retry(flaky, retriable=_timeout, attempts=5, sleep=lambda _: None)
    assert flaky.calls == 1


def test_attempts_and_time_bound_the_retries() -> None:
    flaky = Flaky(10, TimeoutError("down"))
    with pytest.raises(TimeoutError):
        retry(flaky, retriable=_timeout, attempts=3, sleep=lambda _: None)
    assert flaky.calls == 3
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    flaky = Flaky(10, TimeoutError("down"))
    with pytest.raises(TimeoutError):
        retry(flaky, retriable=_timeout, timeout_s=1.0, first_s=0.2, sleep=sleep, clock=lambda: now[0],
              rng=lambda: 1.0)
    assert flaky.calls == 3 and now[0] == pytest.approx(0.6)  # a third wait (0.8 s) would pass the deadline
