import torch

from streamrec.cooccurrence import ItemCooccurrence
from streamrec.reasons import supporting_events


def _lookup(table: dict[int, list[float]]):
    return lambda items: torch.tensor([table[int(i)] for i in items])


def test_cooccurrence_outweighs_affinity_and_the_latest_event_wins_ties() -> None:
    index = ItemCooccurrence(history=3, decay=1.0)
    for _ in range(3):
        index.learn([1], 7)  # item 7 is taken after item 1
    vectors = _lookup({7: [0.0, 5.0], 8: [0.0, 0.0]})
    contexts = _lookup({1: [1.0, 0.0], 2: [0.0, 1.0]})  # by affinity alone, 7 would follow 2
    picks, windows = [[7, 8], [8]], [[1, 2], [2, 2]]
    assert supporting_events(picks, windows, vectors, contexts, None) == [[1, 1], [1]]
    assert supporting_events(picks, windows, vectors, contexts, index) == [[0, 1], [1]]


def test_users_without_picks_or_window_get_no_support() -> None:
    vectors = _lookup({3: [1.0]})
    assert supporting_events([[3], [], [3]], [[], [3], [3]], vectors, vectors, None) == [[], [], [0]]


def test_a_batch_gives_each_user_what_they_would_get_alone() -> None:
    index = ItemCooccurrence(history=3, decay=1.0)
    for recent, item in [([1], 7), ([2], 8), ([3, 1], 9), ([2], 9)]:
        index.learn(recent, item)
    torch.manual_seed(0)
    table = torch.randn(10, 4)
    vectors = lambda items: table[items]  # noqa: E731
    picks, windows = [[7, 8, 9], [9], [8, 7], []], [[1, 2, 3, 1], [2], [3, 3, 2], [1]]
    alone = [supporting_events([p], [w], vectors, vectors, index)[0] for p, w in zip(picks, windows, strict=True)]
    assert supporting_events(picks, windows, vectors, vectors, index) == alone
    assert alone[0][0] == 3 and alone[3] == []  # item 7 follows item 1: its latest event
