"""The ranker learns a user's next event from the rows their last recommendation was ranked on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from streamrec.catalog import Catalog
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.events import Event
from streamrec.pipeline import Pipeline
from streamrec.served import Learned, ServedRows, from_served, joined
from streamrec.synthetic import SyntheticLog

MakeSettings = Callable[..., Settings]


def test_entries_are_taken_once_forgotten_and_bounded() -> None:
    served = ServedRows(max_users=2)
    columns = torch.tensor([[1, 2, -1], [3, 4, 5], [6, 7, 8]])
    head, shared = torch.tensor([[0.5, 1e6, -1e6], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), torch.tensor([[9.0, 8.0, 7.0]])
    served.keep(["a", "b", "c"], columns, [head, shared])
    assert len(served) == 2 and served.take("a") is None  # the least recently served left first
    entry = served.take("b")
    assert entry is not None and served.take("b") is None
    assert entry.columns.tolist() == [3, 4, 5] and entry.features.dtype == torch.float16
    assert entry.features.tolist() == [[1.0, 2.0, 3.0], [9.0, 8.0, 7.0]]  # the shared row, per user
    served.keep(["a"], columns[:1], [head[:1], shared])
    kept = served.take("a")
    assert kept is not None and kept.features[0].tolist() == [0.5, 64_992.0, -64_992.0]  # clamped to float16
    served.forget(["c"])
    assert len(served) == 0 and served.memory_bytes() == 0


def test_served_and_fresh_rows_join_into_what_the_ranker_learns() -> None:
    served = ServedRows(max_users=10)
    served.keep(["a", "b"], torch.tensor([[1, 2], [3, -1]]), [torch.tensor([[1.0, 2.0], [3.0, 4.0]])] * 2)
    group = from_served([served.take("b"), served.take("a")], torch.tensor([3, 9]))  # type: ignore[list-item]
    assert group.columns.tolist() == [[3, -1], [1, 2]] and group.columns.dtype == torch.long
    assert group.found.tolist() == [True, False] and group.targets.tolist()[0] == 0
    assert group.features[0].tolist() == [[3.0, 4.0], [1.0, 2.0]] and group.features[0].dtype == torch.float32
    fresh = Learned([torch.tensor([[5.0, 6.0]]), torch.tensor([[7.0, 8.0]])], torch.tensor([1]), torch.tensor([True]),
                    torch.tensor([[4, 5]]))
    features, targets, padding, missed = joined([fresh, group])
    assert [f.tolist() for f in features] == [[[5.0, 6.0], [3.0, 4.0]], [[7.0, 8.0], [3.0, 4.0]]]
    assert targets.tolist() == [1, 0] and padding.tolist() == [[False, False], [False, True]] and missed == 1


def _pipeline(make_settings: MakeSettings, encoder: HFEncoder, log: SyntheticLog, **retrieval: Any) -> Pipeline:
    settings = make_settings(retrieval={"mode": "candidates", "candidates_cooccurrence": 40, "candidates_text": 8,
                                        **retrieval})
    return Pipeline(settings, encoder, Catalog(log.items))


def test_the_next_event_is_learned_from_what_was_served(make_settings: MakeSettings, tiny_encoder: HFEncoder,
                                                       synthetic_log: SyntheticLog) -> None:
    pipeline = _pipeline(make_settings, tiny_encoder, synthetic_log)
    for start in range(0, 300, 32):  # some history for every signal
        pipeline.process(synthetic_log.events[start:start + 32])
    items = [item.item_id for item in synthetic_log.items]
    [rec] = pipeline.process([Event("new-user", items[0], "purchase", 10**13)]).recommendations
    assert pipeline.served is not None
    kept = pipeline.served._entries["new-user"]
    shown = rec.items[0].item_id  # the user takes the top pick: it is among the served candidates
    observed: list[tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]] = []
    learn = pipeline.ranker.observe
    pipeline.ranker.observe = lambda f, t, e, missed=0: (observed.append((f, t, e)), learn(f, t, e, missed))[1]
    taken, scored = pipeline.served.taken, pipeline.served.scored
    pipeline.process([Event("new-user", shown, "purchase", 10**13 + 1), Event("new-user", items[1], "purchase",
                                                                               10**13 + 2)])
    assert (pipeline.served.taken, pipeline.served.scored) == (taken + 1, scored + 1)  # the second: afresh
    [(features, targets, excluded)] = observed
    row = [i for i in range(len(targets)) if torch.equal(excluded[i], kept.columns < 0)
           and all(torch.equal(f[i], k.float()) for f, k in zip(features, kept.features, strict=True))]
    assert row and int(kept.columns[targets[row[0]]]) == pipeline.catalog.index_of(shown)
    pipeline.drop_users(["new-user"])
    assert "new-user" not in pipeline.served._entries


@pytest.mark.parametrize("users", [0, 5])
def test_served_users_bounds_what_is_kept(make_settings: MakeSettings, tiny_encoder: HFEncoder,
                                         synthetic_log: SyntheticLog, users: int) -> None:
    pipeline = _pipeline(make_settings, tiny_encoder, synthetic_log, served_users=users)
    for start in range(0, 200, 32):
        pipeline.process(synthetic_log.events[start:start + 32])
    assert pipeline.served is not None and len(pipeline.served) == users  # 0: off, nothing learned from it
    assert (pipeline.served.taken == 0) == (users == 0)
    assert pipeline.served.taken + pipeline.served.scored == pipeline.scorer.candidates.stats.targets > 0  # type: ignore[union-attr]
