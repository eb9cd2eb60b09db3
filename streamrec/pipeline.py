"""The transport-agnostic core: a micro-batch of events in, fresh recommendations out.

For each micro-batch:

1. every valid event joins its user's window (duplicates and too-late events are dropped); users
   idle past ``window.idle_ttl_seconds`` (event time) or over ``window.max_users`` are evicted;
2. each positive event becomes a training example: the user's window vector as it was
   before this batch -> the event's item;
3. the ranker (:mod:`streamrec.ranker`) scores each positive event of a known user with the
   signals as they were before the batch, then learns its feature weights from them; then the
   item co-occurrence index learns the events and the head takes one update (plus replay);
4. every user touched by the batch has their new window rendered to text and re-encoded,
   once per user however many of their events arrived;
5. those users get a fresh top-K over the whole catalogue, each item with a reason: the
   ranker's blend of the head, co-occurrence (the last 30 items, and the last 3 alone),
   popularity and text-similarity scores, with weights of their own for the head and the text
   on items nobody has taken yet and on cold ones (``head.ranker_new_items``), and for the
   co-occurrence of the items those read like (:mod:`streamrec.neighbours`).

The Kafka service and the file replay both call :meth:`Pipeline.process`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from streamrec.catalog import Catalog, Item
from streamrec.config import Settings
from streamrec.cooccurrence import ItemCooccurrence
from streamrec.encoding import TextEncoder, WindowEncoder, make_window_encoder
from streamrec.events import ActionVocabulary, Event
from streamrec.head import Example, OnlineHead
from streamrec.item_vectors import ItemVectors
from streamrec.neighbours import TextNeighbours
from streamrec.ranker import OnlineRanker, boost_cold
from streamrec.recommendations import Recommendation, RecommendedItem
from streamrec.retrieval import Retriever
from streamrec.signals import Scores, build_signals, feature_names, score_rows
from streamrec.text import TextTemplate
from streamrec.windows import Added, WindowStore

HEAD_FILE = "head.safetensors"
ITEMS_FILE = "item_vectors.safetensors"
COOCCURRENCE_FILE = "cooccurrence.safetensors"
RANKER_FILE = "ranker.safetensors"
WINDOWS_FILE = "windows.msgpack"


class Checkpointed(Protocol):
    """A component saved to and loaded from one file of the state directory."""

    def save(self, path: Path, item_ids: list[str]) -> None: ...
    def load(self, path: Path, index_of: Callable[[str], int]) -> object: ...


@dataclass
class BatchResult:
    recommendations: list[Recommendation]
    added: int = 0
    duplicates: int = 0
    too_late: int = 0
    examples: int = 0
    loss: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # encode / train / rank
    cold_items: int = 0  # recommended items with fewer than retrieval.cold_below interactions
    evicted: list[str] = field(default_factory=list)  # users whose windows this batch evicted (TTL, cap)


class Pipeline:
    """Windows, encoder, head and retrieval wired together.

    >>> import tempfile
    >>> from streamrec.config import load_settings
    >>> from streamrec.encoding import HFEncoder
    >>> from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus
    >>> items = [Item("1", "Toy Story", "Animation"), Item("2", "Heat", "Crime"), Item("3", "Up", "Animation")]
    >>> model = build_tiny_gpt2(tokenizer_corpus(items), tempfile.mkdtemp(), n_layer=1, n_embd=16, n_head=2)
    >>> settings = load_settings(encoder={"model": str(model)}, retrieval={"k": 2})
    >>> pipeline = Pipeline(settings, HFEncoder(settings.encoder), Catalog(items))
    >>> [rec] = pipeline.process([Event("u1", "1", "view", 1_700_000_000_000)]).recommendations
    >>> rec.user_id, len(rec.items), "1" in [item.item_id for item in rec.items]  # seen items are left out
    ('u1', 2, False)
    >>> rec.text.startswith("Recommended for you: "), rec.items[0].reason
    (True, 'because you viewed Toy Story (Animation)')
    """

    def __init__(self, settings: Settings, encoder: TextEncoder, catalog: Catalog,
                 clock: Callable[[], float] = time.time, window_encoder: WindowEncoder | None = None) -> None:
        self.settings = settings
        self.encoder = encoder
        self.catalog = catalog
        self.clock = clock
        self.vocab = ActionVocabulary.for_domain(settings.domain, settings.actions)
        text = settings.text
        self.template = TextTemplate.for_language(text.language, text.action_words, text.separator,
                                                  text.time_gaps)
        w = settings.window
        self.windows = WindowStore(
            max_events=w.max_events, horizon_ms=int(w.horizon_seconds * 1000), max_users=w.max_users,
            idle_ttl_ms=None if w.idle_ttl_seconds is None else int(w.idle_ttl_seconds * 1000),
            max_lateness_ms=int(w.max_lateness_seconds * 1000), max_seen_items=w.max_seen_items,
            remember_actions=settings.retrieval.exclude_actions)
        self.item_vectors = ItemVectors(encoder, catalog, self.template)
        self.window_encoder = window_encoder or make_window_encoder(settings, encoder, self.template, catalog)
        head = settings.head
        self.head = OnlineHead(encoder.dim, head, capacity=max(1024, len(catalog)))
        self.cooccurrence = (ItemCooccurrence(head.cooccurrence_history, head.cooccurrence_decay,
                                              capacity=max(min(1024, head.cooccurrence_max_items), len(catalog)),
                                              max_items=head.cooccurrence_max_items,
                                              half_life=head.cooccurrence_half_life,
                                              alpha=head.cooccurrence_alpha)
                             if head.cooccurrence_history else None)
        self.neighbours = (TextNeighbours(head.ranker_text_neighbours) if self.cooccurrence is not None
                           and head.ranker_new_items and head.text_features and head.ranker_text_neighbours
                           else None)
        self.signals = build_signals(head, self.cooccurrence, settings.retrieval.cold_below, self.neighbours)
        self.ranker = OnlineRanker(feature_names(self.signals), settings.retrieval.k, head.ranker_learning_rate)
        self.retriever = Retriever(settings.retrieval, catalog)
        self._window_vectors: OrderedDict[str, torch.Tensor] = OrderedDict()

    # -- the batch path ----------------------------------------------------------------------

    def process(self, events: Sequence[Event]) -> BatchResult:
        result = BatchResult([], seconds=(seconds := {"encode": 0.0, "train": 0.0, "rank": 0.0}))
        started = time.perf_counter()
        self._ensure_window_vectors({e.user_id for e in events})
        vectors, recents, items, weights = [], [], [], []
        positives: list[tuple[list[int], list[int], int]] = []  # (co-occurrence recent, seen, item)
        learned: list[tuple[list[int], int]] = []  # applied after the ranker saw the batch
        touched: dict[str, int] = {}
        for event in events:
            before = self._window_vectors.get(event.user_id)
            weight = self.vocab.weights.get(event.action, 0.0)
            recent = self._recent_items(event.user_id)
            positive_recent = self._positive_recent(event.user_id)
            seen = self._seen_index(event.user_id) if before is not None and weight > 0 else []  # ranker's
            outcome = self.windows.add(event)
            if outcome is Added.DUPLICATE:
                result.duplicates += 1
                continue
            if outcome is Added.TOO_LATE:
                result.too_late += 1
                continue
            result.added += 1
            touched[event.user_id] = max(touched.get(event.user_id, -1), event.timestamp)
            item_index = self.catalog.index_of(event.item_id)
            if weight > 0:
                learned.append((positive_recent, item_index))
            if before is not None and weight > 0:
                vectors.append(before)
                recents.append(recent)
                items.append(item_index)
                weights.append(weight)
                positives.append((positive_recent, seen, item_index))
        if touched and self.windows.idle_ttl_ms is not None:  # idle in event time: the batch's newest event
            self.windows.expire(max(touched.values()))
        evicted = self.windows.take_evicted()
        self._forget(evicted)
        result.evicted = [user for user in evicted if user not in self.windows]  # some came back
        touched = {user: t for user, t in touched.items() if user in self.windows}
        item_text = self.item_vectors.matrix()
        seconds["encode"] += time.perf_counter() - started
        started = time.perf_counter()
        if positives:
            self._observe(torch.stack(vectors), torch.tensor(recents), positives, item_text)
        if self.cooccurrence is not None:
            for positive_recent, item_index in learned:
                self.cooccurrence.learn(positive_recent, item_index)
        seconds["train"] += time.perf_counter() - started
        if items:
            started = time.perf_counter()
            examples = Example(torch.stack(vectors), torch.tensor(recents), torch.tensor(items),
                               torch.tensor(weights))
            result.loss = self.head.learn(examples, item_text)
            result.examples = len(items)
            seconds["train"] += time.perf_counter() - started
        started = time.perf_counter()
        self._encode_windows(list(touched))
        seconds["encode"] += time.perf_counter() - started
        started = time.perf_counter()
        result.recommendations = self.recommend(list(touched), touched, item_text)
        result.cold_items = self._cold_items(result.recommendations)
        seconds["rank"] = time.perf_counter() - started
        return result

    def recommend(self, user_ids: Sequence[str], event_times: dict[str, int] | None = None,
                  item_text: torch.Tensor | None = None) -> list[Recommendation]:
        """Fresh top-K for users that have a window."""
        users = [u for u in user_ids if u in self.windows]
        if not users:
            return []
        self._ensure_window_vectors(set(users))
        item_text = self.item_vectors.matrix() if item_text is None else item_text
        item_vecs, bias = self.head.item_vectors(item_text)
        user_vecs = self.head.user_vectors(torch.stack([self._window_vectors[u] for u in users]),
                                           torch.tensor([self._recent_items(u) for u in users]), item_text)
        positive_recent = torch.tensor([self._positive_recent(u) for u in users])
        scores = self.ranker.combine(self._features(user_vecs @ item_vecs.T + bias, positive_recent, item_text))
        boost = self.settings.retrieval.cold_boost
        if boost and (cold := self._cold(scores.shape[1])) is not None:
            scores = boost_cold(scores, cold, boost)
        ranked = self.retriever.rank(scores, [self.windows.seen_items(u) for u in users])
        produced_at = int(self.clock() * 1000)
        recommendations = []
        for user, pairs in zip(users, ranked, strict=True):
            window = self.windows.window(user)
            reasons = self._reasons(window, [i for i, _ in pairs], item_vecs, item_text)
            names = [self.template.item_name(self.catalog.ids[i], self.catalog) for i, _ in pairs]
            recommended = [RecommendedItem(self.catalog.ids[i], round(s, 5), reason, name)
                           for (i, s), reason, name in zip(pairs, reasons, names, strict=True)]
            event_time = (event_times or {}).get(user, window[-1].timestamp if window else 0)
            recommendations.append(Recommendation(
                user_id=user, items=recommended, text=self.template.render_recommendations(names),
                model_version=self.head.version, event_time=event_time, produced_at=produced_at))
        return recommendations

    def _cold(self, n_items: int) -> torch.Tensor | None:
        """Items with fewer than ``retrieval.cold_below`` interactions so far (None: no co-occurrence to count them)."""
        if self.cooccurrence is None:
            return None
        return self.cooccurrence.interactions(n_items) < self.settings.retrieval.cold_below

    def _cold_items(self, recommendations: Sequence[Recommendation]) -> int:
        cold = self._cold(len(self.catalog))
        if cold is None:
            return 0
        return sum(int(cold[self.catalog.index_of(item.item_id)]) for rec in recommendations for item in rec.items)

    def _reasons(self, window: Sequence[Event], picks: list[int], item_vecs: torch.Tensor,
                 item_text: torch.Tensor) -> list[str]:
        """For each pick, the window event whose item supports it most: the one taken most often
        together with it (co-occurrence), else the one whose learned affinity as context is
        highest; the latest event wins ties."""
        if not window or not picks:
            return [self.template.render_reason(None, self.catalog)] * len(picks)
        window_index = torch.tensor([self.catalog.index_of(e.item_id) for e in window])
        affinity = item_vecs[picks] @ self.head.context_vectors(item_text, window_index).T  # (picks, window)
        support = torch.softmax(affinity, dim=1)  # in (0, 1): breaks ties among co-occurrence counts
        if self.cooccurrence is not None:
            support = support + self.cooccurrence.pairs(torch.tensor(picks), window_index)
        best = support.shape[1] - 1 - support.flip(1).argmax(dim=1)
        return [self.template.render_reason(window[int(b)], self.catalog) for b in best]

    # -- user vectors ------------------------------------------------------------------------

    def _recent_items(self, user_id: str) -> list[int]:
        """Indices of the user's last ``context_items`` items, newest first, padded with -1."""
        n = self.settings.head.context_items
        window = self.windows.window(user_id)
        recent = [self.catalog.index_of(e.item_id) for e in reversed(window[-n:])]
        return recent + [-1] * (n - len(recent))

    def _positive_recent(self, user_id: str) -> list[int]:
        """The user's last distinct positively weighted items (newest first, ``-1`` padded), as
        the co-occurrence and text-similarity signals read them."""
        n = self.settings.head.cooccurrence_history or self.settings.head.context_items
        weights = self.vocab.weights
        recent: dict[int, None] = {}
        for event in reversed(self.windows.window(user_id)):
            if len(recent) == n:
                break
            if weights.get(event.action, 0.0) > 0:
                recent.setdefault(self.catalog.index_of(event.item_id))
        return [*recent, *[-1] * (n - len(recent))]

    def _seen_index(self, user_id: str) -> list[int]:
        return [i for i in map(self.catalog.find_index, self.windows.seen_items(user_id)) if i is not None]

    def _features(self, head: torch.Tensor, positive_recent: torch.Tensor,
                  item_text: torch.Tensor) -> list[torch.Tensor]:
        """The signals' rows (:mod:`streamrec.signals`), in the ranker's feature order."""
        return score_rows(self.signals, Scores(head, positive_recent, item_text))

    def _observe(self, window_vectors: torch.Tensor, recent: torch.Tensor,
                 positives: list[tuple[list[int], list[int], int]], item_text: torch.Tensor) -> None:
        """Score each positive event with the signals as they were before this batch, then let
        the ranker learn from them (test-then-train)."""
        n_items = item_text.shape[0]
        item_vecs, bias = self.head.item_vectors(item_text)
        head = self.head.user_vectors(window_vectors, recent, item_text) @ item_vecs.T + bias
        positive_recent = torch.tensor([p[0] for p in positives])
        features = self._features(head, positive_recent, item_text)
        excluded = torch.zeros(len(positives), n_items, dtype=torch.bool)
        for row, (_, seen, _) in enumerate(positives):
            excluded[row, seen] = True
        excluded[:, self.retriever.blocked_mask()] = True
        self.ranker.observe(features, torch.tensor([p[2] for p in positives]), excluded)

    def _ensure_window_vectors(self, user_ids: Iterable[str]) -> None:
        """Encode windows that exist but have no vector yet (after a restore or eviction)."""
        missing = [u for u in user_ids if u in self.windows and u not in self._window_vectors]
        self._encode_windows(missing)

    def _encode_windows(self, user_ids: list[str]) -> None:
        if not user_ids:
            return
        windows = [self.windows.window(u) for u in user_ids]
        for user, vector in zip(user_ids, self.window_encoder.encode_windows(user_ids, windows), strict=True):
            self._window_vectors[user] = vector
            self._window_vectors.move_to_end(user)
        while len(self._window_vectors) > self.settings.window.max_users:
            self._window_vectors.popitem(last=False)

    def window_text(self, user_id: str) -> str:
        return self.template.render_window(self.windows.window(user_id), self.catalog)

    # -- state -------------------------------------------------------------------------------

    def add_items(self, items: Iterable[Item]) -> int:
        """Add or update catalogue items while running; returns how many changed."""
        return sum(self.catalog.upsert(item) for item in items)

    def drop_users(self, user_ids: Iterable[str]) -> None:
        ids = list(user_ids)
        self.windows.drop(ids)
        self._forget(ids)

    def _forget(self, user_ids: list[str]) -> None:  # the state beside their windows
        self.window_encoder.forget(user_ids)
        for user in user_ids:
            self._window_vectors.pop(user, None)

    def restore_users(self, snapshot: bytes) -> int:
        """Restore users' windows from a snapshot; their vectors are recomputed when needed."""
        restored = self.windows.restore(snapshot)
        for user in restored:  # their items need indices before the next item matrix is built
            for event in self.windows.window(user):
                self.catalog.index_of(event.item_id)
        self._forget(restored)
        return len(restored)

    def _checkpointed(self) -> dict[str, Checkpointed]:
        """What a checkpoint holds beside the windows, by file name, in load order."""
        parts: dict[str, Checkpointed] = {ITEMS_FILE: self.item_vectors, HEAD_FILE: self.head}
        if self.cooccurrence is not None:
            parts[COOCCURRENCE_FILE] = self.cooccurrence
        parts[RANKER_FILE] = self.ranker
        return parts

    def save(self, state_dir: str | Path, with_windows: bool = True) -> None:
        """Checkpoint every component (and, optionally, all windows) into ``state_dir``."""
        state = Path(state_dir)
        state.mkdir(parents=True, exist_ok=True)
        for name, part in self._checkpointed().items():
            part.save(state / name, self.catalog.ids)
        if with_windows:
            tmp = state / (WINDOWS_FILE + ".tmp")
            tmp.write_bytes(self.windows.snapshot())
            tmp.replace(state / WINDOWS_FILE)

    def load(self, state_dir: str | Path) -> bool:
        """Load whatever checkpoint files exist in ``state_dir``; returns True if a head was loaded."""
        state = Path(state_dir)
        for name, part in self._checkpointed().items():
            if (state / name).exists():
                part.load(state / name, self.catalog.index_of)
        if (state / WINDOWS_FILE).exists():
            self.restore_users((state / WINDOWS_FILE).read_bytes())
        return (state / HEAD_FILE).exists()
