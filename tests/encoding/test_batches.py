"""One forward for users of different cache lengths gives, in every layout, a plain forward's hidden states."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from encodingkit import close
from transformers import GPT2Model

from streamrec.encoding.batches import BatchInputs, forward_batch, make_batch, use_ragged_attention
from streamrec.encoding.kv_cache import KVCache, SlotPool, UserKV

CPU = torch.device("cpu")
WIDTH = 32  # positions of a pool slot: more than any user below reaches


def load(model_dir: Path) -> GPT2Model:
    return GPT2Model.from_pretrained(model_dir, attn_implementation="sdpa").eval()


def padded(rows: list[list[int]]) -> BatchInputs:
    ids = torch.zeros(len(rows), max(len(r) for r in rows), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
    return BatchInputs(ids, None)


@torch.inference_mode()
def plain(model: GPT2Model, ids: list[int]) -> torch.Tensor:
    return model(input_ids=torch.tensor([ids])).last_hidden_state[0]


@pytest.mark.parametrize("layout", ["ragged", "padded", "pooled"])
@torch.inference_mode()
def test_new_positions_read_each_users_own_past(tiny_model_dir: Path, layout: str) -> None:
    model = load(tiny_model_dir)
    if layout == "ragged":
        assert use_ragged_attention(model)
    config = model.config
    n_layers, max_positions = config.n_layer, config.n_positions
    torch.manual_seed(0)
    sequences = {user: torch.randint(1, config.vocab_size, (n,)).tolist()
                 for user, n in {"a": 8, "b": 7, "c": 6, "d": 3}.items()}
    pasts = {"a": 5, "b": 1, "c": 4}  # d is new and its cache is not kept
    pool = (SlotPool(n_layers, config.n_head, config.n_embd // config.n_head, WIDTH, torch.float32, CPU,
                     budget_bytes=4 * SlotPool.bytes_per_slot(n_layers, config.n_head,
                                                              config.n_embd // config.n_head, WIDTH, torch.float32))
            if layout == "pooled" else None)
    caches: dict[str, KVCache] = {}
    for user in pasts:
        kv = pool.acquire() if pool is not None else UserKV(max_positions)
        assert kv is not None
        caches[user] = kv
    scratch: list[torch.Tensor] = []

    # first forward: the pasts, from position 0
    users = list(pasts)
    batch = make_batch(layout, [caches[u] for u in users], [0] * 3, [pasts[u] for u in users], scratch, pool, CPU)
    first = forward_batch(model, n_layers, batch, padded([sequences[u][:pasts[u]] for u in users]), max_positions,
                          CPU)
    assert [caches[u].length for u in users] == [5, 1, 4]
    for row, user in enumerate(users):
        close(first[row, :pasts[user]], plain(model, sequences[user][:pasts[user]]))

    # second forward: every user's new positions on top of its own past, with a fresh uncached user
    users = ["a", "b", "c", "d"]
    past = [pasts.get(u, 0) for u in users]
    news = [len(sequences[u]) - p for u, p in zip(users, past, strict=True)]
    scratch[:] = [torch.full((1 << 16,), float("nan"))]  # the padded layout's padding must never read old memory
    batch = make_batch(layout, [caches.get(u) for u in users], past, news, scratch, pool, CPU)
    hidden = forward_batch(model, n_layers, batch, padded([sequences[u][p:] for u, p in zip(users, past, strict=True)]),
                           max_positions, CPU)
    assert hidden.shape[:2] == (4, max(news))
    for row, (user, p, new) in enumerate(zip(users, past, news, strict=True)):
        close(hidden[row, :new], plain(model, sequences[user])[p:])
    assert [caches[u].length for u in "abc"] == [8, 7, 6]


def test_make_batch_picks_the_layout_and_falls_back_to_padded_without_slots() -> None:
    kv = UserKV(64)
    assert type(make_batch("ragged", [kv], [0], [2], [], None, CPU)).__name__ == "_RaggedBatch"
    assert type(make_batch("padded", [kv], [0], [2], [], None, CPU)).__name__ == "_PaddedBatch"
    empty = SlotPool(1, 2, 4, 8, torch.float32, CPU, budget_bytes=0)
    assert type(make_batch("pooled", [None], [0], [2], [], empty, CPU)).__name__ == "_PaddedBatch"
    pool = SlotPool(1, 2, 4, 8, torch.float32, CPU, budget_bytes=1 << 20)
    batch = make_batch("pooled", [pool.acquire()], [0], [2], [], pool, CPU)
    assert type(batch).__name__ == "_PooledBatch"
    assert (batch.past_max, batch.new_max) == (0, 2)


@torch.inference_mode()
def test_ragged_attention_leaves_every_other_forward_plain_sdpa(tiny_model_dir: Path) -> None:
    model = load(tiny_model_dir)
    ids = [[5, 17, 42, 8, 99], [3, 3, 7, 1, 0]]
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    before = model(input_ids=torch.tensor(ids), attention_mask=mask).last_hidden_state
    assert use_ragged_attention(model) and use_ragged_attention(model)  # switching twice is harmless
    assert model.config._attn_implementation == "streamrec_ragged"
    after = model(input_ids=torch.tensor(ids), attention_mask=mask).last_hidden_state  # e.g. item texts
    close(after, before)
