import math

import pytest
import torch

from streamrec.errors import ConfigError, UsageError
from streamrec.neighbours import TextNeighbours


def angles(*degrees: float) -> torch.Tensor:
    """Unit vectors in the plane at these angles: cosines are known by hand."""
    return torch.tensor([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees])


def as_sets(neighbours: TextNeighbours) -> list[set[int]]:
    return [set(row) for row in neighbours.indices.tolist()]


def test_each_item_lists_the_k_most_alike_other_items_most_alike_first() -> None:
    neighbours = TextNeighbours(k=2)
    lengths = torch.tensor([[1.0], [3.0], [0.5], [2.0], [1.0]])  # ignored: cosine
    neighbours.update(angles(0, 10, 30, 100, 175) * lengths)
    assert neighbours.indices.tolist() == [[1, 2], [0, 2], [1, 0], [2, 4], [3, 2]]
    torch.testing.assert_close(neighbours.similarities[0], torch.cos(torch.deg2rad(torch.tensor([10.0, 30.0]))))
    torch.testing.assert_close(neighbours.similarities[4], torch.cos(torch.deg2rad(torch.tensor([75.0, 145.0]))))


def test_spread_gives_each_item_its_neighbours_scores_weighted_by_positive_similarity() -> None:
    neighbours = TextNeighbours(k=2)
    neighbours.update(angles(0, 10, 30, 100, 175))
    scores = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    cos = lambda d: math.cos(math.radians(d))  # noqa: E731
    by_hand = [
        (cos(10) * 2 + cos(30) * 4) / (cos(10) + cos(30)),  # item 0: items 1 and 2
        (cos(10) * 1 + cos(20) * 4) / (cos(10) + cos(20)),  # item 1: items 0 and 2
        (cos(20) * 2 + cos(30) * 1) / (cos(20) + cos(30)),  # item 2: items 1 and 0
        (cos(70) * 4 + cos(75) * 16) / (cos(70) + cos(75)),  # item 3: items 2 and 4
        8.0,  # item 4: items 3 (cos 75) and 2 (cos 145 < 0: weighs nothing)
    ]
    spread = neighbours.spread(scores)
    torch.testing.assert_close(spread[0], torch.tensor(by_hand))
    torch.testing.assert_close(spread[1], torch.tensor([0.0, 0.0, 0.0, cos(75) / (cos(70) + cos(75)), 0.0]))
    with pytest.raises(UsageError, match="scores for 4 items, neighbours of 5"):
        neighbours.spread(scores[:, :4])


def test_updates_as_items_arrive_or_change_give_the_lists_of_a_fresh_computation() -> None:
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(200, 16, generator=generator)
    live = TextNeighbours(k=5)
    live.update(vectors)
    assert live.recomputed == 200
    for step in range(6):
        vectors = torch.cat([vectors, torch.randn(3, 16, generator=generator)])  # new items
        vectors[7 * step] = torch.randn(16, generator=generator)  # an item's text changed
        before = live.recomputed
        live.update(vectors)
        assert live.recomputed - before < 50  # only the moved rows were computed against everything
        fresh = TextNeighbours(k=5)
        fresh.update(vectors)
        assert as_sets(live) == as_sets(fresh)
        torch.testing.assert_close(live.similarities, fresh.similarities)
        torch.testing.assert_close(live.spread(vectors.T), fresh.spread(vectors.T))
    before = live.recomputed
    live.update(vectors.clone())
    assert live.recomputed == before  # nothing changed, nothing computed


def test_small_catalogues_list_every_other_item_and_grow_into_k() -> None:
    neighbours = TextNeighbours(k=3)
    neighbours.update(torch.zeros(0, 4))
    assert neighbours.spread(torch.zeros(2, 0)).shape == (2, 0)
    neighbours.update(angles(0))
    assert neighbours.indices.shape == (1, 0)
    torch.testing.assert_close(neighbours.spread(torch.tensor([[3.0]])), torch.tensor([[0.0]]))  # nobody alike
    neighbours.update(angles(0, 40, 90))
    assert as_sets(neighbours) == [{1, 2}, {0, 2}, {0, 1}]
    neighbours.update(angles(0, 40, 90, 45, 20))
    assert neighbours.indices.shape == (5, 3) and as_sets(neighbours)[0] == {1, 3, 4}
    with pytest.raises(ConfigError, match="at least 1"):
        TextNeighbours(k=0)
