"""Micro-batches that close on size or on a deadline, whichever comes first.

:class:`MicroBatcher` is the one batcher: the Kafka fetcher's waiting messages are one (it reads
ahead, so more than a batch may wait); a recorded log is cut into batches of the same size by
:class:`~streamrec.runner.ListSource`. The clock is injectable, so tests advance it by hand.

>>> now = [0.0]
>>> batcher = MicroBatcher(max_size=3, max_wait_ms=100, clock=lambda: now[0])
>>> batcher.add("a"), batcher.add("b")
(None, None)
>>> now[0] = 0.2  # 200 ms later: the deadline has passed
>>> batcher.poll()
['a', 'b']
>>> batcher.add("c"), batcher.add("d"), batcher.add("e")
(None, None, ['c', 'd', 'e'])
>>> batcher.extend(["f", "g", "h", "i"]); batcher.take(), len(batcher)  # read ahead: the rest waits
(['f', 'g', 'h'], 1)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """Items wait until a batch closes: ``max_size`` of them wait, or ``max_wait_ms`` has passed
    since the first of them arrived. :meth:`take` hands out at most ``max_size``; the deadline of
    those left starts again then."""

    def __init__(self, max_size: int, max_wait_ms: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_size = max_size
        self.max_wait = max_wait_ms / 1000
        self.clock = clock
        self.items: list[T] = []
        self._opened_at = 0.0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: T) -> list[T] | None:
        """Add one item; returns the closed batch when this item filled it."""
        self.extend((item,))
        return self.take() if self.full() else None

    def extend(self, items: Iterable[T]) -> None:
        """Add items without closing a batch (a reader reading ahead)."""
        for item in items:
            if not self.items:
                self._opened_at = self.clock()
            self.items.append(item)

    def full(self) -> bool:
        return len(self.items) >= self.max_size

    def poll(self) -> list[T] | None:
        """The open batch if its deadline has passed, else None."""
        if self.items and self.clock() - self._opened_at >= self.max_wait:
            return self.take()
        return None

    def time_left(self) -> float:
        """Seconds until the open batch's deadline (the full wait when none is open)."""
        if not self.items:
            return self.max_wait
        return max(0.0, self.max_wait - (self.clock() - self._opened_at))

    def take(self) -> list[T]:
        """Close the batch now: up to ``max_size`` items, the oldest first (possibly none)."""
        batch, self.items = self.items[:self.max_size], self.items[self.max_size:]
        self._opened_at = self.clock()
        return batch

    def flush(self) -> list[T]:
        """Everything waiting, whatever its size (possibly nothing)."""
        batch, self.items = self.items, []
        return batch

    def keep(self, wanted: Callable[[T], bool]) -> None:
        """Drop the waiting items that are not ``wanted``."""
        self.items = [item for item in self.items if wanted(item)]


class AdaptiveBatchPolicy:
    """Pick a micro-batch's size and deadline from the observed load.

    It learns the arrival rate (events/s, smoothed) and the cost of a batch, fitted as
    ``seconds = overhead + per_event * size`` from :meth:`observe_batch`. The batch size is the
    smallest that keeps up with arrivals, ``rate * overhead / (1 - rate * per_event)``, times
    ``headroom``, within ``[min_size, max_size]``; the deadline is the time that many events
    take to arrive, at most ``max_wait_ms``. Light traffic gets batches of ``min_size`` closed
    at once (latency); heavy traffic gets large batches (throughput). :meth:`apply` sets a
    :class:`MicroBatcher`'s ``max_size``/``max_wait`` before its next batch opens.

    >>> now = [0.0]
    >>> policy = AdaptiveBatchPolicy(max_size=256, max_wait_ms=200, clock=lambda: now[0])
    >>> for size in (1, 64, 1, 64):
    ...     policy.observe_batch(size, 0.040 + 0.010 * size)  # 40 ms + 10 ms per event
    >>> round(policy.overhead, 3), round(policy.per_event, 3)
    (0.04, 0.01)
    >>> for _ in range(20):
    ...     now[0] += 1.0; policy.observe_arrivals(2)  # 2 events/s: light
    >>> policy.size, policy.wait_ms
    (1, 0.0)
    >>> for _ in range(100):
    ...     now[0] += 0.01; policy.observe_arrivals(1)  # 100 events/s: 4 s of work per second alone
    >>> policy.size
    256
    """

    def __init__(self, min_size: int = 1, max_size: int = 256, max_wait_ms: float = 200.0,
                 headroom: float = 1.5, smoothing: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_size = min_size
        self.max_size = max_size
        self.max_wait_ms = max_wait_ms
        self.headroom = headroom
        self.smoothing = smoothing
        self.clock = clock
        self.rate = 0.0  # events per second
        self.overhead = 0.0  # seconds per batch
        self.per_event = 0.0  # seconds per event
        self._last_arrival: float | None = None
        self._moments = [0.0, 0.0, 0.0, 0.0, 0.0]  # smoothed 1, size, seconds, size^2, size*seconds

    def observe_arrivals(self, n: int = 1) -> None:
        """``n`` events arrived now."""
        now = self.clock()
        if self._last_arrival is not None:
            gap = max(now - self._last_arrival, 1e-6)
            self.rate += (self.smoothing if self.rate else 1.0) * (n / gap - self.rate)  # the first gap sets it
        self._last_arrival = now

    def observe_batch(self, size: int, seconds: float) -> None:
        """A batch of ``size`` events took ``seconds``; refits ``overhead + per_event * size``."""
        sample = (1.0, float(size), seconds, float(size) ** 2, size * seconds)
        self._moments = [m + self.smoothing * (x - m) for m, x in zip(self._moments, sample, strict=True)]
        _, x, y, xx, xy = (m / self._moments[0] for m in self._moments)
        spread = xx - x * x
        if spread > 1e-9 * max(xx, 1.0):  # sizes vary: least squares
            self.per_event = max((xy - x * y) / spread, 0.0)
            self.overhead = max(y - self.per_event * x, 0.0)
        else:  # one size seen so far: charge it all per event
            self.per_event, self.overhead = y / max(x, 1.0), 0.0

    @property
    def size(self) -> int:
        load = self.rate * self.per_event
        if load >= 1.0:  # cannot keep up at any size with this per-event cost: go as large as allowed
            return self.max_size
        needed = self.rate * self.overhead / (1.0 - load) * self.headroom
        return max(self.min_size, min(self.max_size, math.ceil(needed - 1e-9)))

    @property
    def wait_ms(self) -> float:
        if self.size <= 1 or self.rate <= 0:
            return 0.0
        return min(self.max_wait_ms, 1000.0 * self.size / self.rate)

    def apply(self, batcher: MicroBatcher[T]) -> None:
        """Set the batcher's size and deadline for the batch it opens next."""
        batcher.max_size = self.size
        batcher.max_wait = self.wait_ms / 1000
