"""Per-user KV caches of a causal LM: where each user's keys and values live between calls.

* :class:`UserKV`: growable per-layer buffers ``(2, kv_heads, capacity, head_dim)`` owned by
  one user (the ``ragged`` and ``padded`` layouts, see :mod:`streamrec.encoding.batches`).
* :class:`SlotPool`: one preallocated pool per layer ``(2, slots, kv_heads, positions,
  head_dim)``; each user holds a slot of it, a :class:`PooledKV` (the ``pooled`` layout).
"""

from __future__ import annotations

import torch


class UserKV:
    """One user's cached keys/values: per layer ``(2, kv_heads, capacity, head_dim)``."""

    def __init__(self, max_positions: int, growth: float = 1.25) -> None:
        self.max_positions = max_positions
        self.growth = growth  # capacity allocated = needed * growth (at most max_positions)
        self.layers: list[torch.Tensor] = []
        self.length = 0  # positions filled (all layers)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.layers)

    def release(self) -> None:
        self.layers = []

    def ensure(self, layer: int, like: torch.Tensor, needed: int) -> torch.Tensor:
        """The layer's buffer with room for ``needed`` positions (allocated or grown)."""
        if layer == len(self.layers):
            self.layers.append(self._alloc(like, needed))
        buf = self.layers[layer]
        if buf.shape[2] < needed:
            grown = self._alloc(like, needed)
            grown[:, :, :self.length] = buf[:, :, :self.length]
            self.layers[layer] = buf = grown
        return buf

    def _alloc(self, like: torch.Tensor, needed: int) -> torch.Tensor:
        capacity = min(max(needed, int(needed * self.growth)), max(self.max_positions, needed))
        return torch.empty((2, like.shape[1], capacity, like.shape[3]), dtype=like.dtype, device=like.device)


class SlotPool:
    """Preallocated caches for the pooled layout: per layer ``(2, slots, kv_heads, width, head_dim)``."""

    def __init__(self, n_layers: int, kv_heads: int, head_dim: int, width: int, dtype: torch.dtype,
                 device: torch.device, budget_bytes: int) -> None:
        self.width = width
        self.slot_bytes = self.bytes_per_slot(n_layers, kv_heads, head_dim, width, dtype)
        self.n_slots = budget_bytes // self.slot_bytes
        # zeros: positions nobody wrote are read (masked) and must hold no NaN
        self.layers = [torch.zeros((2, self.n_slots, kv_heads, width, head_dim), dtype=dtype, device=device)
                       for _ in range(n_layers)] if self.n_slots else []
        self._free = list(range(self.n_slots - 1, -1, -1))

    @staticmethod
    def bytes_per_slot(n_layers: int, kv_heads: int, head_dim: int, width: int, dtype: torch.dtype) -> int:
        return n_layers * 2 * kv_heads * width * head_dim * torch.empty(0, dtype=dtype).element_size()

    def acquire(self) -> PooledKV | None:
        return PooledKV(self, self._free.pop()) if self._free else None

    @property
    def free_slots(self) -> int:
        return len(self._free)


class PooledKV:
    """One user's slot in a :class:`SlotPool`."""

    def __init__(self, pool: SlotPool, slot: int) -> None:
        self.pool = pool
        self.slot: int | None = slot
        self.length = 0

    @property
    def nbytes(self) -> int:
        return self.pool.slot_bytes if self.slot is not None else 0

    def release(self) -> None:
        if self.slot is not None:
            self.pool._free.append(self.slot)
            self.slot = None


KVCache = UserKV | PooledKV
