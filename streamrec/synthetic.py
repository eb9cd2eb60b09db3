"""Synthetic behaviour logs with planted sequential structure and a text-bearing catalogue.

Each item has a *successor* in the same category. A user starts on a popular item and then,
with probability ``follow``, moves to the successor of the current item, else to a random
popular item. So "most users who take item A take item B next" holds by construction, and a
model that learns transitions beats popularity by a wide margin. ``drift_at`` re-draws all
successors at that fraction of the log's time span, for drift tests.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack

from streamrec.catalog import Item
from streamrec.errors import ConfigError
from streamrec.events import Event

CATEGORIES = {
    "Electronics": (["Wireless", "Compact", "Smart", "Noise-Cancelling", "Portable", "4K"],
                    ["Headphones", "Speaker", "Camera", "Monitor", "Charger", "Keyboard"]),
    "Kitchen": (["Stainless", "Cast-Iron", "Ceramic", "Electric", "Nonstick", "Bamboo"],
                ["Kettle", "Skillet", "Knife Set", "Blender", "Cutting Board", "Teapot"]),
    "Books": (["Illustrated", "Pocket", "Collected", "Annotated", "Beginner's", "Complete"],
              ["Cookbook", "Atlas", "Novel", "Poetry", "Field Guide", "History"]),
    "Sports": (["Lightweight", "Waterproof", "Pro", "Trail", "Foldable", "Insulated"],
               ["Running Shoes", "Tent", "Yoga Mat", "Water Bottle", "Backpack", "Bike Helmet"]),
    "Toys": (["Wooden", "Magnetic", "Glow", "Classic", "Mini", "Giant"],
             ["Puzzle", "Train Set", "Blocks", "Robot", "Kite", "Doll House"]),
    "Garden": (["Solar", "Copper", "Raised", "Self-Watering", "Heirloom", "Hanging"],
               ["Lantern", "Planter", "Hose", "Seed Kit", "Bird Feeder", "Trowel"]),
}
ECOMMERCE_ACTIONS = (("view", 0.7), ("click", 0.15), ("cart", 0.1), ("purchase", 0.05))


@dataclass(frozen=True)
class SyntheticLog:
    events: list[Event]
    items: list[Item]
    successor: dict[str, str]  # the planted structure (before any drift)


def make_catalog(n_items: int, rng: random.Random, language: str = "en") -> list[Item]:
    items = []
    names = list(CATEGORIES)
    for i in range(n_items):
        category = names[i % len(names)]
        if language == "zh":
            items.append(Item(str(i), f"商品{i}", f"类目{i % len(names)}"))
            continue
        adjectives, nouns = CATEGORIES[category]
        title = f"{rng.choice(adjectives)} {rng.choice(nouns)} {i}"
        items.append(Item(str(i), title, category, {"brand": f"Brand{rng.randrange(20)}"}))
    return items


def _successors(items: Sequence[Item], rng: random.Random) -> dict[str, str]:
    by_category: dict[str, list[str]] = {}
    for item in items:
        by_category.setdefault(item.category, []).append(item.item_id)
    successor = {}
    for ids in by_category.values():
        shuffled = ids[:]
        rng.shuffle(shuffled)
        for a, b in zip(shuffled, shuffled[1:] + shuffled[:1], strict=True):
            successor[a] = b
    return successor


def generate(
    n_users: int = 300,
    n_items: int = 200,
    events_per_user: tuple[int, int] = (10, 40),
    follow: float = 0.8,
    actions: Sequence[tuple[str, float]] = ECOMMERCE_ACTIONS,
    drift_at: float | None = None,
    language: str = "en",
    seed: int = 0,
    start_ms: int = 1_700_000_000_000,
    duplicate_rate: float = 0.0,
) -> SyntheticLog:
    """Generate a time-ordered log. ``duplicate_rate`` re-sends some events with the same id."""
    rng = random.Random(seed)
    items = make_catalog(n_items, rng, language)
    ids = [item.item_id for item in items]
    popularity = [1.0 / (rank + 1) ** 0.8 for rank in range(n_items)]  # Zipf-like
    successor = _successors(items, rng)
    names, probs = zip(*actions, strict=True)
    timeline: list[tuple[int, str, str]] = []
    span_ms = n_users * 5 * 60_000  # about a dozen users active at once
    drifted = _successors(items, random.Random(seed + 1)) if drift_at is not None else successor
    drift_ms = start_ms + int(span_ms * drift_at) if drift_at is not None else None
    for u in range(n_users):
        t = start_ms + rng.randrange(span_ms)
        current = rng.choices(ids, popularity)[0]
        for _ in range(rng.randint(*events_per_user)):
            timeline.append((t, f"u{u}", current))
            t += rng.randint(5_000, 600_000)
            follows = drifted if drift_ms is not None and t >= drift_ms else successor
            current = follows[current] if rng.random() < follow else rng.choices(ids, popularity)[0]
    timeline.sort()
    events: list[Event] = []
    for n, (t, user, item) in enumerate(timeline):
        event = Event(user, item, rng.choices(names, probs)[0], t, event_id=f"e{n}")
        events.append(event)
        if rng.random() < duplicate_rate:
            events.append(event)
    return SyntheticLog(events, items, successor)


def write_events(events: Sequence[Event], path: str | Path) -> Path:
    """Write events as .csv, .jsonl or .msgpack (by extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["user_id", "item_id", "action", "timestamp", "event_id"])
            for e in events:
                writer.writerow([e.user_id, e.item_id, e.action, e.timestamp, e.event_id or ""])
    elif suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for e in events:
                fh.write(json.dumps(e.to_dict(), ensure_ascii=False) + "\n")
    elif suffix in (".msgpack", ".mpk"):
        with path.open("wb") as fh:
            for e in events:
                fh.write(msgpack.packb(e.to_dict(), use_bin_type=True))
    else:
        raise ConfigError(f"unknown log extension {suffix!r}: use .csv, .jsonl or .msgpack")
    return path


def write_items(items: Sequence[Item], path: str | Path) -> Path:
    """Write a catalogue as .csv (item_id,title,category,brand...) or .jsonl."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for item in items:
                fh.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
        return path
    extra = sorted({k for item in items for k in item.attributes})
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["item_id", "title", "category", *extra])
        for item in items:
            writer.writerow([item.item_id, item.title, item.category, *(item.attributes.get(k, "") for k in extra)])
    return path
