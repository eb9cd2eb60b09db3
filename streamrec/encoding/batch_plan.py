"""Which users share a forward: cut a call's users into batches by the cost of their padding.

Users whose caches differ in length can share one forward (see :mod:`streamrec.encoding.batches`),
but each pays for the longest: sorting by size and cutting where padding would cost more than
another forward keeps resets from padding the users who append a few tokens.

>>> plan_batches([(12, 700), (12, 80), (600, 0)], max_users=8, max_kv_tokens=10_000,
...              cost=CostModel.for_device("cpu"))
[[1, 0], [2]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CostModel:
    """Rough cost of one forward, in units of one token's dense forward, used to bucket users.

    ``forward``: fixed cost of a forward (reading every weight once; large on GPU, where small
    batches are launch-bound); ``pair``: one query attending one key; ``copy``: one cached
    position copied into the batch layout.
    """

    forward: float
    pair: float
    copy: float

    @classmethod
    def for_device(cls, device_type: str, layout: str = "padded") -> CostModel:
        forward = 4096.0 if device_type == "cuda" else 32.0
        if layout == "ragged":  # attention is per user, unpadded: only the dense layers see padding
            return cls(forward=forward, pair=0.0, copy=0.0)
        return cls(forward=forward, pair=2e-4, copy=0.2 if device_type == "cuda" else 0.02)

    def batch(self, size: int, new: int, past: int, copies: bool) -> float:
        keys = past + new
        return (self.forward + size * new + self.pair * size * new * keys
                + (self.copy * size * keys if copies else 0.0))


def plan_batches(jobs: Sequence[tuple[int, int]], max_users: int, max_kv_tokens: int, cost: CostModel,
                 bucketing: bool = True, max_width: int | None = None) -> list[list[int]]:
    """Split jobs ``(new_positions, past_positions)`` into forwards.

    Without bucketing: chunks of ``max_users`` in the given order. With it: jobs sorted by
    size, then cut where :class:`CostModel` says padding would cost more than another forward
    (an exact partition of the sorted order, by dynamic programming). ``max_width`` bounds
    ``max(past) + max(new)`` of a forward (the pooled layout's slot width).
    """
    n = len(jobs)
    if not bucketing or n > 1024:
        order = list(range(n)) if not bucketing else sorted(range(n), key=lambda i: jobs[i])
        if max_width is None:
            return [order[i:i + max_users] for i in range(0, n, max_users)]
        groups: list[list[int]] = []
        for i in order:  # greedy, in order, within the width
            g = groups[-1] if groups else None
            if (g is None or len(g) >= max_users
                    or max(jobs[j][1] for j in [*g, i]) + max(jobs[j][0] for j in [*g, i]) > max_width):
                groups.append([i])
            else:
                g.append(i)
        return groups
    order = sorted(range(n), key=lambda i: jobs[i])
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        new_max = jobs[order[end - 1]][0]
        past_max = 0
        for start in range(end - 1, max(-1, end - 1 - max_users), -1):
            past_max = max(past_max, jobs[order[start]][1])
            size = end - start
            if size > 1 and (size * (new_max + past_max) > max_kv_tokens
                             or (max_width is not None and past_max + new_max > max_width)):
                break
            total = best[start] + cost.batch(size, new_max, past_max, copies=size > 1 and past_max > 0)
            if total < best[end]:
                best[end], cut[end] = total, start
    planned: list[list[int]] = []
    end = n
    while end > 0:
        planned.append(order[cut[end]:end])
        end = cut[end]
    return planned[::-1]
