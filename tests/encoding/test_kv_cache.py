"""Per-user KV caches: growable buffers that keep what they hold, and a slot pool that hands slots out and back."""

from __future__ import annotations

import pytest
import torch

from streamrec.encoding.kv_cache import PooledKV, SlotPool, UserKV

HEADS, HEAD_DIM = 2, 4


def like(positions: int = 1) -> torch.Tensor:
    """Keys as a layer produces them: ``(batch, kv_heads, positions, head_dim)``."""
    return torch.zeros(1, HEADS, positions, HEAD_DIM)


def test_a_user_buffer_is_allocated_with_headroom_and_grows_keeping_its_positions() -> None:
    kv = UserKV(max_positions=100, growth=1.5)
    buf = kv.ensure(0, like(), 10)
    assert buf.shape == (2, HEADS, 15, HEAD_DIM)  # needed * growth
    buf[:, :, :10] = torch.arange(10, dtype=torch.float32)[None, None, :, None]
    kv.length = 10
    assert kv.ensure(0, like(), 14) is buf  # still fits: the same buffer
    grown = kv.ensure(0, like(), 40)
    assert grown.shape[2] == 60 and kv.layers[0] is grown
    assert torch.equal(grown[:, :, :10], buf[:, :, :10])  # the filled positions moved along
    assert kv.ensure(0, like(), 90).shape[2] == 100  # headroom stops at max_positions ...
    assert kv.ensure(0, like(), 130).shape[2] == 130  # ... but what is needed is always there


def test_layers_are_added_in_order_and_bytes_count_what_is_allocated() -> None:
    kv = UserKV(max_positions=64, growth=1.0)
    assert kv.nbytes == 0
    kv.ensure(0, like(), 8)
    kv.ensure(1, like().to(torch.float16), 8)  # each layer in its own dtype
    assert [layer.dtype for layer in kv.layers] == [torch.float32, torch.float16]
    assert kv.nbytes == 2 * HEADS * 8 * HEAD_DIM * (4 + 2)
    with pytest.raises(IndexError):
        kv.ensure(3, like(), 8)  # layer 2 was never written
    kv.release()
    assert kv.layers == [] and kv.nbytes == 0


def test_a_pool_holds_as_many_slots_as_its_budget_pays_for() -> None:
    slot = SlotPool.bytes_per_slot(n_layers=3, kv_heads=HEADS, head_dim=HEAD_DIM, width=16, dtype=torch.bfloat16)
    assert slot == 3 * 2 * HEADS * 16 * HEAD_DIM * 2
    pool = SlotPool(3, HEADS, HEAD_DIM, 16, torch.bfloat16, torch.device("cpu"), budget_bytes=4 * slot - 1)
    assert pool.n_slots == pool.free_slots == 3 and pool.slot_bytes == slot
    assert [layer.shape for layer in pool.layers] == [(2, 3, HEADS, 16, HEAD_DIM)] * 3
    assert all(layer.dtype == torch.bfloat16 and not layer.any() for layer in pool.layers)  # zeros, never NaN


def test_slots_are_handed_out_once_and_come_back_on_release() -> None:
    slot = SlotPool.bytes_per_slot(1, HEADS, HEAD_DIM, 8, torch.float32)
    pool = SlotPool(1, HEADS, HEAD_DIM, 8, torch.float32, torch.device("cpu"), budget_bytes=2 * slot)
    first, second = pool.acquire(), pool.acquire()
    assert isinstance(first, PooledKV) and isinstance(second, PooledKV)
    assert {first.slot, second.slot} == {0, 1} and pool.acquire() is None and pool.free_slots == 0
    assert first.nbytes == slot
    first.release()
    assert first.slot is None and first.nbytes == 0 and pool.free_slots == 1
    first.release()  # releasing twice does not free the slot twice
    assert pool.free_slots == 1
    third = pool.acquire()
    assert third is not None and third.slot != second.slot and third.length == 0


def test_a_budget_below_one_slot_allocates_nothing() -> None:
    pool = SlotPool(2, HEADS, HEAD_DIM, 1024, torch.float32, torch.device("cpu"), budget_bytes=1000)
    assert pool.n_slots == 0 and pool.layers == [] and pool.acquire() is None
