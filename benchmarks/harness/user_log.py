"""The million-users soak's log (benchmarks/million_users.py): many distinct users, generated in time
order as it is read, never held in memory.

Users arrive one after another, each with a session of 1 to 10 events (1.25 on average) minutes
apart; one in ten comes back once, 1.5 to 3 TTLs later. In the first half users arrive slowly enough
that the idle TTL holds about half of ``max_users``; in the second half four times faster, so the TTL
alone would hold twice the cap and the cap evicts. The log ends with the last arrivals' sessions
(returns due later are dropped), so the cap is full at the end. Items: a 1,000-item shop, Zipf-popular;
80 % of later session events take the planted successor (item + 6).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator

from streamrec.events import Event

T0 = 1_700_000_000_000
N_ITEMS = 1000
ACTIONS = ["view"] * 14 + ["click"] * 3 + ["cart"] * 2 + ["purchase"]


def user_log(n_users: int, max_users: int, ttl_ms: int, seed: int = 0) -> Iterator[Event]:
    """The log, in time order (see the module docstring)."""
    rng = random.Random(seed)
    popular = [min(int(rng.paretovariate(1.2)) - 1, N_ITEMS - 1) for _ in range(4096)]
    slow, fast = ttl_ms / (max_users / 2), ttl_ms / (2 * max_users)  # ms between arrivals
    pending: list[tuple[int, int, str, str, str]] = []  # (time, sequence, user, item, action)
    sequence, now = 0, float(T0)

    def push(at: float, user: str, item: int) -> None:
        nonlocal sequence
        heapq.heappush(pending, (int(at), sequence, user, str(item), rng.choice(ACTIONS)))
        sequence += 1

    for n in range(n_users):
        now += slow if n < n_users // 2 else fast
        user, at, item = f"user{n}", now, rng.choice(popular)
        for _ in range(min(1 + int(rng.expovariate(1.0) / 2), 10)):
            push(at, user, item)
            at += rng.uniform(5_000, 600_000)
            item = (item + 6) % N_ITEMS if rng.random() < 0.8 else rng.choice(popular)
        if rng.random() < 0.1:
            push(now + rng.uniform(1.5, 3.0) * ttl_ms, user, rng.choice(popular))
        while pending and pending[0][0] <= now:
            at_ms, number, uid, item_id, action = heapq.heappop(pending)
            yield Event(uid, item_id, action, at_ms, event_id=f"e{number}")
    while pending and pending[0][0] <= now + ttl_ms / 2:  # the last sessions end; later returns are dropped
        at_ms, number, uid, item_id, action = heapq.heappop(pending)
        yield Event(uid, item_id, action, at_ms, event_id=f"e{number}")
