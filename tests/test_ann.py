"""The text index: nearest items by cosine, items that move when their text changes, a graph
that survives a restart and is rebuilt when it does not match."""

from __future__ import annotations

from pathlib import Path

import torch

from streamrec.ann import TextIndex


def _vectors(n: int, dim: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def test_finds_the_exact_nearest_items_on_a_small_catalogue() -> None:
    vectors = _vectors(300)
    index = TextIndex(dim=16, threads=1)  # inserted in parallel the graph differs run to run (1 run in 50 here
    index.put(torch.arange(300), vectors)  # missed one query's own item); one thread builds the same graph
    queries = vectors[:20] + 0.05 * _vectors(20, seed=1)
    unit = torch.nn.functional.normalize(vectors, dim=1)
    exact = torch.topk(torch.nn.functional.normalize(queries, dim=1) @ unit.T, 10).indices
    found = index.search(queries, 10)
    recall = sum(len(set(found[i].tolist()) & set(exact[i].tolist())) for i in range(20)) / 200
    assert recall >= 0.95 and found[:, 0].tolist() == list(range(20))


def test_an_item_whose_text_changed_moves() -> None:
    index = TextIndex(dim=2)
    index.put(torch.tensor([0, 1]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert index.search(torch.tensor([[0.0, 1.0]]), 1).tolist() == [[1]]
    index.put(torch.tensor([1]), torch.tensor([[1.0, 0.05]]))  # item 1 now reads like item 0
    assert len(index) == 2 and index.search(torch.tensor([[0.0, 1.0]]), 2).tolist()[0][0] == 1
    assert index.search(torch.tensor([[-1.0, 0.0]]), 5).tolist() == [[1, 0, -1, -1, -1]]  # padded


def test_saved_graph_loads_and_a_mismatched_one_is_refused(tmp_path: Path) -> None:
    index = TextIndex(dim=16)
    index.put(torch.arange(50), _vectors(50))
    index.save(tmp_path / "text.usearch")
    loaded = TextIndex(dim=16)
    assert loaded.load(tmp_path / "text.usearch", expected=50)
    assert torch.equal(loaded.search(_vectors(50)[:5], 3), index.search(_vectors(50)[:5], 3))
    assert not TextIndex(dim=16).load(tmp_path / "text.usearch", expected=51)  # the catalogue moved on
    (tmp_path / "broken.usearch").write_bytes(b"not a graph")
    assert not TextIndex(dim=16).load(tmp_path / "broken.usearch", expected=50)
