"""Turn a user's window into the text the language model reads, and recommendations into text.

>>> from streamrec.catalog import Catalog, Item
>>> from streamrec.events import Event
>>> catalog = Catalog([Item("1", "Toy Story", "Animation"), Item("2", "Heat", "Crime")])
>>> window = [Event("u", "1", "view", 0), Event("u", "2", "cart", 1000)]
>>> TextTemplate.english().render_window(window, catalog)
'viewed Toy Story (Animation); added to cart Heat (Crime)'
>>> zh = TextTemplate.chinese()
>>> zh.render_window([Event("u", "1", "view", 0), Event("u", "1", "click", 1)], Catalog())
'浏览商品1,点击商品1'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from streamrec.catalog import Catalog, Item
from streamrec.events import Event

EN_ACTIONS = {
    "view": "viewed", "click": "clicked", "cart": "added to cart", "purchase": "purchased",
    "play": "played", "like": "liked", "skip": "skipped", "follow": "followed",
    "comment": "commented on", "watch": "watched",
}
ZH_ACTIONS = {
    "view": "浏览", "click": "点击", "cart": "加购", "purchase": "购买", "play": "播放",
    "like": "喜欢", "skip": "跳过", "follow": "关注", "comment": "评论", "watch": "观看",
}

_GAP_UNITS = ((86_400_000, "day"), (3_600_000, "hour"), (60_000, "minute"))


@dataclass(frozen=True)
class TextTemplate:
    """Wording of windows and recommendations. Every phrase is a field, so a domain or a
    language is a new template, not new code."""

    action_words: Mapping[str, str] = field(default_factory=lambda: dict(EN_ACTIONS))
    event_format: str = "{action} {item}"
    separator: str = "; "
    gap_format: str | None = None  # e.g. "({n} {unit}s later)"; None: no gap wording
    gap_units: Mapping[str, str] = field(default_factory=dict)
    min_gap_ms: int = 3_600_000
    unknown_item: str = "item {item_id}"
    recommendation_prefix: str = "Recommended for you: "
    recommendation_separator: str = ", "
    reason_format: str = "because you {action} {item}"
    fallback_reason: str = "popular right now"

    @classmethod
    def english(cls) -> TextTemplate:
        return cls()

    @classmethod
    def chinese(cls) -> TextTemplate:
        return cls(
            action_words=dict(ZH_ACTIONS), event_format="{action}{item}", separator=",",
            gap_units={"day": "天", "hour": "小时", "minute": "分钟"}, unknown_item="商品{item_id}",
            recommendation_prefix="推荐给您的商品有：", recommendation_separator=",",
            reason_format="因为您{action}了{item}", fallback_reason="近期热门",
        )

    @classmethod
    def for_language(cls, language: str, action_words: Mapping[str, str] | None = None,
                     separator: str | None = None, time_gaps: bool = False) -> TextTemplate:
        template = cls.chinese() if language == "zh" else cls.english()
        words = {**template.action_words, **(action_words or {})}
        gap = None
        if time_gaps:
            gap = "({n}{unit}后)" if language == "zh" else "({n} {unit} later)"
        return replace(template, action_words=words,
                       separator=template.separator if separator is None else separator,
                       gap_format=gap)

    def action_word(self, action: str) -> str:
        return self.action_words.get(action, action)

    def item_name(self, item_id: str, catalog: Catalog) -> str:
        item = catalog.get(item_id)
        if item is None:
            catalog.display(item_id)  # counts the unknown lookup
            return self.unknown_item.format(item_id=item_id)
        return item.display()

    def render_window(self, events: Sequence[Event], catalog: Catalog) -> str:
        parts: list[str] = []
        previous: Event | None = None
        for event in events:
            if previous is not None and self.gap_format:
                gap = self._gap(event.timestamp - previous.timestamp)
                if gap:
                    parts.append(gap)
            parts.append(self.event_format.format(
                action=self.action_word(event.action), item=self.item_name(event.item_id, catalog)))
            previous = event
        return self.separator.join(parts)

    def render_item(self, item: Item) -> str:
        """Text of one item for the item encoder: name plus its free attributes."""
        extras = " ".join(f"{k}: {v}" for k, v in sorted(item.attributes.items()))
        return f"{item.display()} {extras}".strip()

    def render_recommendations(self, names: Sequence[str]) -> str:
        return self.recommendation_prefix + self.recommendation_separator.join(names)

    def render_reason(self, event: Event | None, catalog: Catalog) -> str:
        if event is None:
            return self.fallback_reason
        return self.reason_format.format(action=self.action_word(event.action),
                                         item=self.item_name(event.item_id, catalog))

    def _gap(self, gap_ms: int) -> str:
        if gap_ms < self.min_gap_ms or self.gap_format is None:
            return ""
        for unit_ms, unit in _GAP_UNITS:
            if gap_ms >= unit_ms:
                n = gap_ms // unit_ms
                name = self.gap_units.get(unit, unit + ("s" if n > 1 else ""))
                return self.gap_format.format(n=n, unit=name)
        return ""
