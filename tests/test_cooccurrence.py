import itertools
import json
from pathlib import Path

import pytest
import torch

from streamrec.checkpoint import load_tensors
from streamrec.cooccurrence import FORMAT, ItemCooccurrence
from streamrec.errors import ConfigError


def reference_scores(sequences: list[list[int]], recent: list[int], history: int, decay: float,
                     n_items: int, alpha: float = 0.5) -> list[float]:
    """Brute force: co-occurrence within ``history`` positions, (asymmetric) cosine, decayed sum."""
    counts = [0.0] * n_items
    pairs: dict[tuple[int, int], float] = {}
    for seq in sequences:
        for pos, item in enumerate(seq):
            counts[item] += 1
            before = list(dict.fromkeys(reversed(seq[max(0, pos - history):pos])))  # newest first, distinct
            for other in before[:history]:
                if other != item:
                    pairs[other, item] = pairs.get((other, item), 0) + 1
                    pairs[item, other] = pairs.get((item, other), 0) + 1
    out = []
    for j in range(n_items):
        total = 0.0
        for p, i in enumerate(recent):
            c = pairs.get((i, j), 0.0)
            total += decay ** p * c / (max(counts[i], 1) ** alpha * max(counts[j], 1) ** (1 - alpha))
        out.append(total)
    return out


def learn_sequences(index: ItemCooccurrence, sequences: list[list[int]]) -> None:
    for seq in sequences:
        recent: list[int] = []
        for item in seq:
            index.learn(recent, item)
            recent = [item, *[i for i in recent if i != item]]


def test_scores_equal_the_brute_force_cosine_knn() -> None:
    sequences = [[0, 1, 2, 3], [1, 2, 4], [4, 0, 2, 5, 1], [3, 3, 5]]
    index = ItemCooccurrence(history=2, decay=0.5, capacity=2)  # grows while learning
    learn_sequences(index, sequences)
    for recent in ([1, 2], [5, 0], [3, -1]):
        got = index.scores(torch.tensor([recent]), 6)[0].tolist()
        present = [i for i in recent if i >= 0]
        assert got == pytest.approx(reference_scores(sequences, present, 2, 0.5, 6), abs=1e-6)


def test_alpha_gives_the_brute_force_asymmetric_cosine() -> None:
    sequences = [[0, 1, 2, 3], [1, 2, 4], [4, 0, 2, 5, 1], [3, 3, 5], [2, 1], [2, 5]]
    for alpha in (0.0, 0.8, 1.0):
        index = ItemCooccurrence(history=3, decay=0.7, alpha=alpha)
        learn_sequences(index, sequences)
        got = index.scores(torch.tensor([[2, 0, -1]]), 6)[0].tolist()
        assert got == pytest.approx(reference_scores(sequences, [2, 0], 3, 0.7, 6, alpha), abs=1e-6)


def test_scores_for_candidates_equal_the_full_scores_gathered() -> None:
    sequences = [[0, 1, 2, 3], [1, 2, 4], [4, 0, 2, 5, 1], [3, 3, 5], [2, 1], [2, 5]]
    index = ItemCooccurrence(history=3, decay=0.7, alpha=0.8, half_life=4.0)
    learn_sequences(index, sequences)
    recent = torch.tensor([[2, 0, -1], [5, 1, 4], [-1, -1, -1]])
    candidates = torch.tensor([[1, 3, -1, 5], [0, 2, 3, 4000], [0, 1, 2, 3]])  # 4000: beyond the index
    full = index.scores(recent, 6)
    expected = full.gather(1, candidates.clamp(0, 5)) * (candidates >= 0) * (candidates < 6)
    assert torch.allclose(index.scores_for(recent, candidates), expected, atol=1e-6)
    assert index.scores_for(recent, candidates)[1, 3] == 0 and index.scores_for(recent, candidates)[0, 2] == 0


def test_items_further_apart_than_the_history_do_not_cooccur() -> None:
    index = ItemCooccurrence(history=2)
    learn_sequences(index, [[0, 1, 2, 3]])
    assert index.matrix[0, 2] == 1 and index.matrix[0, 3] == 0 and index.matrix[1, 3] == 1


def test_a_half_life_forgets_old_cooccurrences() -> None:
    # Item 0 went with item 1 long ago, with item 2 lately, equally often.
    old_then_new = [[0, 1]] * 20 + [[0, 2]] * 20
    plain, forgetful = ItemCooccurrence(history=1), ItemCooccurrence(history=1, half_life=10)
    for index in (plain, forgetful):
        learn_sequences(index, old_then_new)
    plain_scores = plain.scores(torch.tensor([[0]]), 3)[0]
    forgetful_scores = forgetful.scores(torch.tensor([[0]]), 3)[0]
    assert plain_scores[1] == pytest.approx(plain_scores[2])
    assert forgetful_scores[2] > 2 * forgetful_scores[1]


def test_growth_keeps_counts_and_stops_at_max_items(caplog: pytest.LogCaptureFixture) -> None:
    index = ItemCooccurrence(history=3, capacity=2, max_items=10)
    learn_sequences(index, [[0, 1, 5]])
    assert index.capacity >= 6 and index.matrix[0, 5] == 1 and index.counts[5] == 1
    learn_sequences(index, [[0, 12, 1]])  # item 12 is beyond the cap: skipped, counted, logged once
    assert index.capacity == 10 and index.ignored == 1 and index.matrix[0, 1] == 2
    assert "cooccurrence_max_items=10" in caplog.text
    scores = index.scores(torch.tensor([[12, 0, -1]]), 14)
    assert scores.shape == (1, 14) and scores[0, 10:].abs().sum() == 0 and scores[0, 1] > 0
    assert index.popularity(14).shape == (1, 14)
    assert index.pairs(torch.tensor([1, 12]), torch.tensor([0, 13])).tolist() == [[2.0, 0.0], [0.0, 0.0]]


def test_a_catalogue_larger_than_the_cap_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cooccurrence_max_items=10"):
        ItemCooccurrence(capacity=11, max_items=10)


def test_save_and_load_move_rows_to_the_live_catalogue(tmp_path: Path) -> None:
    ids = ["a", "b", "c", "d"]
    index = ItemCooccurrence(history=3)
    learn_sequences(index, [[0, 1, 2], [2, 3], [1, 3, 0]])
    index.save(tmp_path / "c.safetensors", ids)
    live = ["d", "c", "b", "a", "e"]  # another order, one new item
    loaded = ItemCooccurrence(history=3)
    loaded.load(tmp_path / "c.safetensors", live.index)
    _, metadata = load_tensors(tmp_path / "c.safetensors", FORMAT, "co-occurrence index")
    assert json.loads(metadata["item_ids"]) == ids
    for (i, a), (j, b) in itertools.product(enumerate(ids), repeat=2):
        assert loaded.matrix[live.index(a), live.index(b)] == index.matrix[i, j]
    assert loaded.counts[live.index("e")] == 0


def test_make_index_follows_the_settings_and_outgrown_moves_to_sparse() -> None:
    from streamrec.config import HeadSettings
    from streamrec.cooccurrence import make_index, outgrown
    from streamrec.sparse_cooccurrence import SparseCooccurrence

    auto = HeadSettings(cooccurrence_max_items=100, cooccurrence_slots=7)
    assert isinstance(make_index(auto, 100), ItemCooccurrence)
    big = make_index(auto, 101)
    assert isinstance(big, SparseCooccurrence) and big.slots == 7 and big.capacity >= 101
    assert isinstance(make_index(HeadSettings(cooccurrence_index="sparse"), 10), SparseCooccurrence)
    assert make_index(HeadSettings(cooccurrence_history=0), 10) is None
    dense = make_index(auto, 50)
    assert isinstance(dense, ItemCooccurrence)
    dense.learn([], 3)
    dense.learn([3], 4)
    assert outgrown(dense, auto, 100) is None  # still fits
    moved = outgrown(dense, auto, 101)
    assert isinstance(moved, SparseCooccurrence) and moved.slots == 7
    assert moved.pairs(torch.tensor([3]), torch.tensor([4])).item() == 1.0
    assert outgrown(dense, HeadSettings(cooccurrence_index="dense", cooccurrence_max_items=100), 101) is None
