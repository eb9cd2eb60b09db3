from streamrec.batching import MicroBatcher


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_closes_on_size() -> None:
    batcher: MicroBatcher[int] = MicroBatcher(max_size=2, max_wait_ms=1000, clock=Clock())
    assert batcher.add(1) is None
    assert batcher.add(2) == [1, 2]
    assert len(batcher) == 0


def test_closes_on_deadline_counted_from_the_first_item() -> None:
    clock = Clock()
    batcher: MicroBatcher[int] = MicroBatcher(max_size=10, max_wait_ms=100, clock=clock)
    assert batcher.poll() is None  # nothing open
    batcher.add(1)
    clock.now = 0.05
    batcher.add(2)
    assert batcher.poll() is None and abs(batcher.time_left() - 0.05) < 1e-9
    clock.now = 0.1
    assert batcher.poll() == [1, 2]
    assert batcher.time_left() == 0.1 and batcher.flush() == []
