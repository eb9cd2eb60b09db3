"""One loop for every transport: a source hands micro-batches to the pipeline, a sink writes them.

::

    source.next_batch() ──> before(batch) ──> Pipeline.process(batch.events) ──> sink.write(batch, result)
                                  (scoring)        (a worker thread, while          (publish, then acknowledge:
                                                    source.wait() reads ahead)        commit offsets, checkpoint)

:class:`Runner` is that loop. The embedded replay (:mod:`streamrec.replay`) drives it with a
:class:`ListSource` over a recorded log; the Kafka service (:mod:`streamrec.kafka.service`) with
its consumer as the source and its producer as the sink. A user's own transport only needs the
two small protocols below; :mod:`streamrec.testing` has a list sink, a manual clock, a tiny
model, and an example that runs.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from streamrec.events import Event

if TYPE_CHECKING:
    from streamrec.pipeline import BatchResult, Pipeline


class SourceBatch(Protocol):
    """What a source hands over: the valid events, and how many records it took (valid or not)."""

    @property
    def events(self) -> Sequence[Event]: ...

    @property
    def size(self) -> int: ...


B = TypeVar("B", bound=SourceBatch)
B_co = TypeVar("B_co", bound=SourceBatch, covariant=True)
B_contra = TypeVar("B_contra", bound=SourceBatch, contravariant=True)


class Source(Protocol[B_co]):
    def next_batch(self) -> B_co | None:
        """The next micro-batch; an empty one (``size == 0``) when nothing came in time, None when
        the source has ended."""
        ...

    def wait(self, running: Future[BatchResult]) -> None:
        """One step of waiting for the batch the pipeline runs (read ahead, serve the broker...)."""
        ...


class Sink(Protocol[B_contra]):
    def write(self, batch: B_contra, result: BatchResult, lost: Collection[int]) -> None:
        """Deliver ``result`` and acknowledge ``batch``. ``lost`` names partitions the source no
        longer owns: nothing of theirs may be written (empty but for a Kafka rebalance)."""
        ...


@dataclass(frozen=True)
class EventBatch:
    """A micro-batch of already-valid events (a recorded log's)."""

    events: Sequence[Event]

    @property
    def size(self) -> int:
        return len(self.events)


class ListSource:
    """A recorded log in micro-batches of ``size`` events, in the order given. Any iterable will
    do: a generator streams a log larger than memory, a batch at a time."""

    def __init__(self, events: Iterable[Event], size: int) -> None:
        self.events = events
        self.size = size
        self._batches = self._slices()

    def _slices(self) -> Iterator[EventBatch]:
        events = iter(self.events)
        while batch := list(itertools.islice(events, self.size)):
            yield EventBatch(batch)

    def next_batch(self) -> EventBatch | None:
        return next(self._batches, None)

    def wait(self, running: Future[BatchResult]) -> None:
        running.result()


@dataclass
class InFlight(Generic[B]):
    batch: B
    future: Future[BatchResult]
    started: float  # monotonic


class Runner(Generic[B]):
    """Runs ``pipeline`` on ``source`` into ``sink`` until the source ends or :meth:`stop`.

    ``before`` sees each batch before the pipeline learns from it (prequential scoring, drift);
    ``between`` runs before each fetch (housekeeping: checkpoints, new items, progress).
    With ``threaded`` the pipeline runs in a worker thread while the source's :meth:`Source.wait`
    keeps reading; :meth:`finish` may then be called from inside ``wait`` (a rebalance callback),
    which delivers the batch at once. One batch is in flight at a time. ``stopped`` may be an event
    the source watches too (the Kafka fetcher stops reading when it is set).
    """

    def __init__(self, pipeline: Pipeline, source: Source[B], sink: Sink[B], *,
                 before: Callable[[B], None] | None = None, between: Callable[[], None] | None = None,
                 threaded: bool = False, stopped: threading.Event | None = None, learn: bool = True) -> None:
        self.pipeline = pipeline
        self.learn = learn  # False: the pipeline serves a model it does not train (a scorer)
        self.source = source
        self.sink = sink
        self.before = before
        self.between = between
        self.stopped = stopped or threading.Event()  # set: no batch is started any more
        self.in_flight: InFlight[B] | None = None
        self.longest_batch_seconds = 0.0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pipeline") if threaded else None

    def stop(self) -> None:
        """Stop before the next batch; the one in flight is finished. Safe from signal handlers."""
        self.stopped.set()

    def run(self) -> None:
        while not self.stopped.is_set():
            if self.between is not None:
                self.between()
            batch = self.source.next_batch()
            if batch is None:
                break
            if batch.size and not self.stopped.is_set():  # after a stop, left with the source
                self.process(batch)

    def process(self, batch: B) -> None:
        if self.before is not None:
            self.before(batch)
        started = time.monotonic()
        work = partial(self.pipeline.process, batch.events, learn=False) if not self.learn \
            else partial(self.pipeline.process, batch.events)
        if self._executor is not None:
            future = self._executor.submit(work)
        else:
            future = Future()
            future.set_result(work())
        self.in_flight = InFlight(batch, future, started)
        while self.in_flight is not None and not future.done():  # a callback inside wait may finish it
            self.source.wait(future)
        self.finish()

    def finish(self, lost: Collection[int] = ()) -> None:
        """Deliver the batch in flight, if any (``lost``: see :meth:`Sink.write`)."""
        flight, self.in_flight = self.in_flight, None
        if flight is None:
            return
        result = flight.future.result()
        self.longest_batch_seconds = max(self.longest_batch_seconds, time.monotonic() - flight.started)
        self.sink.write(flight.batch, result, lost)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
