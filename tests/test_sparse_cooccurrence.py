"""The sparse co-occurrence index: the dense index's numbers while rows have room, bounded memory
when they do not, the heavy neighbours kept, and a checkpoint that survives re-indexing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from streamrec.cooccurrence import ItemCooccurrence
from streamrec.sparse_cooccurrence import SparseCooccurrence


def _stream(n_items: int, n_events: int, seed: int = 0) -> list[tuple[list[int], int]]:
    """(recent, item) pairs of 40 users; half the takes follow the user's last item by one."""
    rng = random.Random(seed)
    users: dict[int, list[int]] = {u: [] for u in range(40)}
    out = []
    for _ in range(n_events):
        user = rng.randrange(40)
        recent = users[user]
        item = (recent[0] + 1) % n_items if recent and rng.random() < 0.5 else rng.randrange(n_items)
        out.append((list(recent), item))
        users[user] = [item, *recent[:9]]
    return out


def _recent(stream: list[tuple[list[int], int]], width: int) -> torch.Tensor:
    rows = [[item, *recent][:width] for recent, item in stream[-30:]]  # newest first
    return torch.tensor([row + [-1] * (width - len(row)) for row in rows])


def test_with_room_for_every_neighbour_it_equals_the_dense_index() -> None:
    n = 50
    dense = ItemCooccurrence(history=6, decay=0.8, capacity=n, half_life=300, alpha=0.3)
    sparse = SparseCooccurrence(history=6, decay=0.8, slots=n, capacity=4, half_life=300, alpha=0.3)
    stream = _stream(n, 3000)
    for recent, item in stream:
        dense.learn(recent, item)
        sparse.learn(recent, item)
    recent = _recent(stream, 6)
    every = torch.arange(n).repeat(len(recent), 1)
    assert torch.allclose(sparse.scores_for(recent, every), dense.scores(recent, n), rtol=1e-5, atol=1e-6)
    assert torch.allclose(sparse.interactions(n), dense.interactions(n))
    items, others = torch.tensor([0, 5, 9]), torch.tensor([1, 6, 10, 49])
    assert torch.allclose(sparse.pairs(items, others), dense.pairs(items, others))
    batched_items, batched_others = torch.tensor([[0, 5, -1], [9, -1, -1]]), torch.tensor([[1, 6, 10], [49, 1, -1]])
    batched = sparse.pairs(batched_items, batched_others)  # (users, items, others), -1 padding scores 0
    assert torch.allclose(batched, dense.pairs(batched_items, batched_others))
    assert torch.allclose(batched[0, :2], dense.pairs(items[:2], others[:3]))
    assert batched[0, 2].abs().sum() == 0 and batched[1, :, 2].abs().sum() == 0 and batched.abs().sum() > 0
    for user in range(len(recent)):  # the neighbours are the dense index's top items
        expected = dense.scores(recent[user:user + 1], n)[0]
        got = sparse.neighbours(recent[user:user + 1], 5)[0]
        assert set(got.tolist()) == set(torch.topk(expected, 5).indices.tolist())


def test_a_full_row_keeps_its_heavy_neighbours_and_memory_stays_linear() -> None:
    sparse = SparseCooccurrence(history=1, decay=1.0, slots=4, capacity=2)
    rng = random.Random(1)
    for _ in range(2000):  # item 0 is taken after 1 (often) and after a long tail of others (once each)
        sparse.learn([1], 0) if rng.random() < 0.3 else sparse.learn([rng.randrange(2, 5000)], 0)
    row = dict(zip(sparse.ids[0].tolist(), (sparse.values[0] - sparse.errors[0]).tolist(), strict=True))
    assert 1 in row and row[1] >= 0.25 * 2000 * 0.9  # the heavy neighbour, with its guaranteed count
    assert sparse.capacity < 2 * 5000 and sparse.memory_bytes() == sparse.capacity * (4 + 4 * 12)


def test_scores_ignore_padding_and_unknown_candidates() -> None:
    sparse = SparseCooccurrence(history=2, decay=0.5, slots=8)
    sparse.learn([], 0)
    sparse.learn([0], 1)
    scores = sparse.scores_for(torch.tensor([[0, -1], [-1, -1]]), torch.tensor([[1, -1, 3000], [1, 0, 2]]))
    assert scores[0, 0] > 0 and scores[0, 1] == 0 and scores[0, 2] == 0
    assert scores[1].tolist() == [0.0, 0.0, 0.0]  # no recent items, no evidence


def test_save_and_load_move_rows_and_neighbours_to_new_indices(tmp_path: Path) -> None:
    sparse = SparseCooccurrence(history=3, decay=0.9, slots=6, half_life=100)
    stream = _stream(30, 800, seed=3)
    for recent, item in stream:
        sparse.learn(recent, item)
    ids = [f"i{n}" for n in range(30)]
    sparse.save(tmp_path / "cooc.safetensors", ids)
    order = list(reversed(ids))  # the live catalogue indexed the items the other way round
    loaded = SparseCooccurrence(history=3, decay=0.9, slots=6)
    loaded.load(tmp_path / "cooc.safetensors", order.index)
    recent = _recent(stream, 3)
    moved = torch.where(recent >= 0, 29 - recent, recent)
    every = torch.arange(30).repeat(len(recent), 1)
    assert torch.allclose(loaded.scores_for(moved, 29 - every), sparse.scores_for(recent, every), atol=1e-6)


def test_from_dense_keeps_each_rows_top_neighbours() -> None:
    dense = ItemCooccurrence(history=4, decay=0.9, capacity=40)
    for recent, item in _stream(40, 2000, seed=4):
        dense.learn(recent, item)
    sparse = SparseCooccurrence.from_dense(dense.counts, dense.matrix, dense.increment, 4, 0.9, 8, None, 0.5)
    for row in (0, 7, 21):
        kept = set(sparse.ids[row][sparse.ids[row] >= 0].tolist())
        assert kept <= set(torch.nonzero(dense.matrix[row]).flatten().tolist())
        heaviest = int(dense.matrix[row].argmax())
        assert heaviest in sparse.ids[row].tolist()
    assert torch.equal(sparse.interactions(40), dense.interactions(40))


@pytest.mark.parametrize("slots", [1, 3])
def test_tiny_rows_still_learn(slots: int) -> None:
    sparse = SparseCooccurrence(history=5, decay=1.0, slots=slots)
    for recent, item in _stream(20, 500, seed=slots):
        sparse.learn(recent, item)
    assert ((sparse.ids[:20] >= 0).sum(axis=1) <= slots).all()
    assert (sparse.neighbours(torch.tensor([[0, 1, 2, -1, -1]]), 10) >= 0).any()
