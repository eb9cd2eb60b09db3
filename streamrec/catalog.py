"""The item catalogue: item_id -> text fields, loaded from CSV/JSONL and growing while running.

Every item gets a dense integer index on first sight; the encoder's item-embedding cache and
the head's id embeddings are addressed by it. Items seen in events before their text arrives
are registered with a fallback text (and counted), so they can still be learned and ranked;
when their text arrives later, their ``revision`` goes up and cached embeddings are refreshed.

>>> catalog = Catalog()
>>> catalog.upsert(Item("42", "Toy Story", "Animation"))
True
>>> catalog.display("42"), catalog.display("7")
('Toy Story (Animation)', 'item 7')
>>> catalog.unknown_lookups
1
"""

from __future__ import annotations

import csv
import html
import json
import reprlib
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamrec.errors import CatalogError
from streamrec.events import is_text

ITEM_COLUMNS = ("item_id", "title", "category")


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    title: str
    category: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)

    def display(self) -> str:
        """The item as people read it: ``Title (Category)``."""
        return f"{self.title} ({self.category})" if self.category else self.title

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "title": self.title, "category": self.category,
                "attributes": dict(self.attributes)}


def item_from_mapping(row: Mapping[str, Any], column_map: Mapping[str, str] | None = None) -> Item:
    """Build an :class:`Item` from a record; ``column_map`` maps our names to the record's.

    Raises :class:`CatalogError` for a record that is not a map, lacks an id or a title, or
    holds text that is not valid Unicode or values nested too deeply to print.
    """
    if not isinstance(row, Mapping):
        raise CatalogError(f"item record is not a map: {type(row).__name__} {_shown(row)}")
    names = {name: (column_map or {}).get(name, name) for name in ITEM_COLUMNS}
    try:
        item_id = row.get(names["item_id"])
        if item_id is None or str(item_id) == "":
            raise CatalogError(f"item record without {names['item_id']!r}: {_shown(row)}")
        title = row.get(names["title"])
        shown_title = "" if title is None else plain_text(str(title))  # "&nbsp;" alone is no title either
        if not shown_title:
            raise CatalogError(f"item {_shown(item_id)} has no {names['title']!r}")
        used = set(names.values())
        # keys as text: a msgpack record may carry integer keys, and attributes are sorted by key
        attributes = {str(k): str(v) for k, v in row.items() if k not in used and v not in (None, "")}
        if isinstance(row.get("attributes"), Mapping):
            attributes.pop("attributes", None)
            attributes.update({str(k): str(v) for k, v in row["attributes"].items()})
        item = Item(str(item_id), shown_title, plain_text(str(row.get(names["category"]) or "")), attributes)
    except RecursionError as exc:  # str() of a value nested deeper than the stack (msgpack allows 1024 levels)
        raise CatalogError(f"item record {_shown(row)}: a value is nested too deeply to be text") from exc
    # JSON's \ud800 escapes decode to lone surrogates: such text cannot be encoded or written back.
    for name, text in (("item_id", item.item_id), ("title", item.title), ("category", item.category),
                       *item.attributes.items(), *((key, key) for key in item.attributes)):
        if not is_text(text):
            raise CatalogError(f"item {_shown(item_id)}: {name!r} is not valid Unicode text (a lone surrogate)")
    return item


def _shown(value: Any) -> str:
    """A short printable view of a record value, whatever its depth or size."""
    return reprlib.repr(value)


def plain_text(text: str) -> str:
    """Item text as people read it: HTML entities unescaped (``&amp;`` -> ``&``), ends stripped.

    Scraped catalogues (Amazon's among them) carry entities in about one title in ten.

    >>> plain_text(" Salt &amp; Pepper &quot;Duo&quot; ")
    'Salt & Pepper "Duo"'
    """
    return html.unescape(text).strip() if "&" in text else text.strip()


class ItemIds:
    """Item ids interned to dense indices 0, 1, 2, ... in the order they are first seen.

    >>> ids = ItemIds()
    >>> ids.add("b"), ids.add("a"), ids.add("b"), ids.find("c"), ids.ids
    (0, 1, 0, None, ['b', 'a'])
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def find(self, item_id: str) -> int | None:
        """The item's index, or None if it has none (never adds)."""
        return self._index.get(item_id)

    def add(self, item_id: str) -> int:
        """The item's index, a new one if it is first seen."""
        index = self._index.get(item_id)
        if index is None:
            index = self._index[item_id] = len(self.ids)
            self.ids.append(item_id)
        return index


class Catalog:
    """A growing item catalogue with dense indices and per-item revisions."""

    def __init__(self, items: Iterable[Item] = ()) -> None:
        self._items: dict[str, Item] = {}
        self._ids = ItemIds()
        self._revision: list[int] = []
        self._known: list[bool] = []
        self.unknown_lookups = 0
        self.changes = 0  # bumped on every new index or changed text; caches compare against it
        self.changed = array("q")  # the index of each such change, in order (readers keep a position)
        for item in items:
            self.upsert(item)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __iter__(self) -> Iterator[Item]:
        return iter(self._items.values())

    @property
    def ids(self) -> list[str]:
        """Item ids in index order (the row order of item matrices)."""
        return self._ids.ids

    def get(self, item_id: str) -> Item | None:
        return self._items.get(item_id)

    def upsert(self, item: Item) -> bool:
        """Add or replace an item. Returns True when its text is new or changed."""
        index = self._ensure_index(item.item_id)
        old = self._items.get(item.item_id)
        self._items[item.item_id] = item
        self._known[index] = True
        if old == item:
            return False
        self._revision[index] += 1
        self.changes += 1
        self.changed.append(index)
        return True

    def index_of(self, item_id: str) -> int:
        """The item's dense index, registering an unknown item (fallback text) if needed."""
        index = self._ids.find(item_id)
        return index if index is not None else self._ensure_index(item_id)

    def find_index(self, item_id: str) -> int | None:
        """The item's index if it has one; never registers."""
        return self._ids.find(item_id)

    def revision(self, index: int) -> int:
        return self._revision[index]

    def is_known(self, item_id: str) -> bool:
        return item_id in self._items

    def display(self, item_id: str) -> str:
        """Readable name; unknown items render as ``item <id>`` and are counted."""
        item = self._items.get(item_id)
        if item is None:
            self.unknown_lookups += 1
            return f"item {item_id}"
        return item.display()

    def category(self, item_id: str) -> str:
        item = self._items.get(item_id)
        return item.category if item else ""

    def _ensure_index(self, item_id: str) -> int:
        known = len(self._ids)
        index = self._ids.add(item_id)
        if index == known:  # new
            self._revision.append(0)
            self._known.append(False)
            self.changes += 1
            self.changed.append(index)
        return index

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, column_map: Mapping[str, str] | None = None) -> Catalog:
        return cls(read_items(path, column_map))


def read_items(path: str | Path, column_map: Mapping[str, str] | None = None) -> Iterator[Item]:
    """Read items from a ``.csv`` (header row) or ``.jsonl`` file."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"catalogue file {str(path)!r} does not exist")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        yield from _jsonl_items(path, column_map)
    elif path.suffix.lower() in (".csv", ".tsv"):
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            try:
                for row in reader:
                    yield item_from_mapping(row, column_map)
            except (UnicodeDecodeError, csv.Error) as exc:
                raise CatalogError(f"{path} near line {max(reader.line_num, 1)}: unreadable ({exc}); expected "
                                   "UTF-8 CSV with a header row") from exc
    else:
        raise CatalogError(f"catalogue {str(path)!r}: expected a .csv, .tsv or .jsonl file")


def _jsonl_items(path: Path, column_map: Mapping[str, str] | None) -> Iterator[Item]:
    with path.open(encoding="utf-8") as fh:
        line_no = 0
        try:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the stack
                    raise CatalogError(f"{path}:{line_no}: not JSON ({exc})") from exc
                yield item_from_mapping(row, column_map)
        except UnicodeDecodeError as exc:
            raise CatalogError(f"{path}:{line_no + 1}: not UTF-8 text ({exc})") from exc
