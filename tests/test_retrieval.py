import torch

from streamrec.catalog import Catalog, Item
from streamrec.config import RetrievalSettings
from streamrec.retrieval import Retriever

CATALOG = Catalog([Item(str(i), f"t{i}", "even" if i % 2 == 0 else "odd") for i in range(8)])
SCORES = torch.tensor([[8.0, 7, 6, 5, 4, 3, 2, 1]])  # item i scores 8 - i


def ranked(settings: RetrievalSettings, exclude: tuple[str, ...] = ()) -> list[str]:
    return [CATALOG.ids[i] for i, _ in Retriever(settings, CATALOG).rank(SCORES, [exclude])[0]]


def test_top_k_over_the_whole_catalogue_in_score_order() -> None:
    assert ranked(RetrievalSettings(k=3)) == ["0", "1", "2"]


def test_seen_items_are_excluded() -> None:
    assert ranked(RetrievalSettings(k=3), ("0", "2", "unknown")) == ["1", "3", "4"]


def test_allow_and_deny_lists() -> None:
    assert ranked(RetrievalSettings(k=3, deny=["1"])) == ["0", "2", "3"]
    assert ranked(RetrievalSettings(k=3, allow=["5", "6", "7", "nope"])) == ["5", "6", "7"]
    assert ranked(RetrievalSettings(k=5, allow=["5", "6"])) == ["5", "6"]  # fewer than k is fine


def test_per_category_cap() -> None:
    assert ranked(RetrievalSettings(k=4, max_per_category=1)) == ["0", "1"]
    assert ranked(RetrievalSettings(k=4, max_per_category=2)) == ["0", "1", "2", "3"]


def test_mask_follows_catalogue_growth() -> None:
    catalog = Catalog([Item("a", "A")])
    retriever = Retriever(RetrievalSettings(k=2, deny=["b"]), catalog)
    assert retriever.blocked_mask().tolist() == [False]
    catalog.upsert(Item("b", "B"))
    assert retriever.blocked_mask().tolist() == [False, True]
