"""Reader of Amazon reviews (2018 and 2023 releases): reviews as purchases, product metadata as items."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streamrec.catalog import Item, plain_text
from streamrec.errors import CatalogError, SourceError
from streamrec.events import MAX_TIMESTAMP_MS, Event
from streamrec.sources._common import GZIP_ERRORS, _collector, _ColumnSpec, _open_text, _suffix, _to_millis
from streamrec.sources._generic import _jsonl_objects

# The package's logger, as before the readers were split into modules.
logger = logging.getLogger("streamrec.sources")

_AMAZON_ITEM_ATTRIBUTES = ("store", "brand", "price")


def _looks_like_amazon(path: Path) -> bool:
    """Whether the first record of a JSON-lines file is an Amazon review (2018 or 2023 release)."""
    try:
        with _open_text(path) as fh:
            first = next((line for line in fh if line.strip()), "")
        obj = json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, *GZIP_ERRORS):
        return False
    if not isinstance(obj, dict):
        return False
    if "reviewerID" in obj and "asin" in obj:
        return True
    return "parent_asin" in obj and "rating" in obj and "item_id" not in obj


def _amazon_record(review: Mapping[str, Any]) -> dict[str, Any]:
    """A review in our field names: every review is a purchase of the reviewed product."""
    if "reviewerID" in review:  # 2018 release: timestamps in seconds
        user, item, rating = review.get("reviewerID"), review.get("asin"), review.get("overall")
        timestamp = _to_millis(review.get("unixReviewTime"), "s")
    else:  # 2023 release: ms; its metadata is keyed by parent_asin, so events use it too
        user, item, rating = (
            review.get("user_id"),
            review.get("parent_asin") or review.get("asin"),
            review.get("rating"),
        )
        timestamp = _to_millis(review.get("timestamp"), "ms")
    record: dict[str, Any] = {"action": "purchase"}
    for name, value in (("user_id", user), ("item_id", item), ("timestamp", timestamp)):
        if value is not None:
            record[name] = value
    # A timestamp past int64 (validation rejects it) may have too many digits to print.
    if user is not None and item is not None and timestamp is not None and not _huge(timestamp):
        record["event_id"] = f"{user}:{item}:{timestamp}"
    if rating is not None:
        record["attributes"] = {"rating": str(rating)}
    return record


def _huge(value: Any) -> bool:
    return isinstance(value, int) and value > MAX_TIMESTAMP_MS


def _amazon_metadata_path(reviews: Path, spec: _ColumnSpec) -> Path | None:
    """The metadata file given in the column map, else ``meta_<name>.jsonl`` next to the reviews."""
    if spec.metadata is not None:
        if not spec.metadata.is_file():
            raise SourceError(f"Amazon metadata {str(spec.metadata)!r} does not exist; expected a JSON-lines file")
        return spec.metadata
    candidates = sorted(p for p in reviews.parent.glob("meta_*") if p.is_file() and _suffix(p) in (".jsonl", ".json"))
    name = _stem(reviews)
    for base in (name, name.removesuffix("_5")):  # the 2018 release's 5-core files end in _5
        matching = [p for p in candidates if _stem(p) == f"meta_{base}"]
        if matching:
            return matching[0]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        logger.warning(
            "Amazon reviews %s: several metadata files and none named meta_%s; "
            "pass column_map={'metadata': ...} to load item text",
            reviews.name,
            name,
        )
    return None


def _stem(path: Path) -> str:
    """The file name without its extensions: ``All_Beauty`` for ``All_Beauty.jsonl.gz``."""
    return path.name.split(".", 1)[0]


def _amazon_items(reviews: Path, spec: _ColumnSpec, events: list[Event], rejected: list[tuple[str, str]]) -> list[Item]:
    """Metadata of the products the events mention (a category's file lists millions more)."""
    meta = _amazon_metadata_path(reviews, spec)
    if meta is None:
        return []
    wanted = {event.item_id for event in events}
    items: dict[str, Item] = {}
    for location, product in _jsonl_objects(meta, _collector(rejected)):
        item_id = product.get("parent_asin") or product.get("asin")
        if not isinstance(item_id, str) or item_id not in wanted or item_id in items:
            continue
        try:
            items[item_id] = _amazon_item(item_id, product)
        except CatalogError as exc:
            rejected.append((location, str(exc)))
    return list(items.values())


def _amazon_item(item_id: str, product: Mapping[str, Any]) -> Item:
    title = product.get("title")
    if not isinstance(title, str) or not title.strip():
        raise CatalogError(f"product {item_id!r} has no title")
    attributes = {key: str(product[key]) for key in _AMAZON_ITEM_ATTRIBUTES if product.get(key) not in (None, "")}
    return Item(item_id, plain_text(title), _amazon_category(product), attributes)


def _amazon_category(product: Mapping[str, Any]) -> str:
    """``main_category`` (2023), else the category path (2018 ``category``, 2023 ``categories``)."""
    main = product.get("main_category")
    if isinstance(main, str) and main.strip():
        return plain_text(main)
    for key in ("categories", "category"):
        names = product.get(key)
        if isinstance(names, list):
            parts = [plain_text(name) for name in names if isinstance(name, str) and name.strip()]
            if parts:
                return " > ".join(parts)
    return ""
