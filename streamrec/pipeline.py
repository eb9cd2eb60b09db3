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
5. those users get a fresh top-K, each item with a reason: the ranker's blend of the head,
   co-occurrence (the last 30 items, and the last 3 alone), popularity and text-similarity
   scores, with weights of their own for the head and the text on items nobody has taken yet
   and on cold ones (``head.ranker_new_items``), and for the co-occurrence of the items those
   read like (:mod:`streamrec.neighbours`). A small catalogue is ranked whole; a large one
   (``retrieval.mode``) on each user's candidates (:mod:`streamrec.scoring`), its items
   encoded as batches need them and in the background, and its co-occurrence index sparse.

The Kafka service and the file replay both call :meth:`Pipeline.process`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from streamrec.ann import TextIndex
from streamrec.candidates import CandidateGenerator, Trending
from streamrec.catalog import Catalog, Item
from streamrec.config import Settings
from streamrec.cooccurrence import ItemCooccurrence, make_index, outgrown
from streamrec.encoding import TextEncoder, WindowEncoder, make_window_encoder
from streamrec.events import ActionVocabulary, Event
from streamrec.head import Example, OnlineHead
from streamrec.item_vectors import ItemVectors
from streamrec.neighbours import TextNeighbours
from streamrec.ranker import OnlineRanker, boost_cold
from streamrec.reasons import explained, supporting_events
from streamrec.recommendations import Recommendation
from streamrec.retrieval import Retriever
from streamrec.scoring import Rows, Scorer
from streamrec.served import Learned, Served, ServedRows, from_served, joined
from streamrec.signals import build_signals, feature_names
from streamrec.sparse_cooccurrence import SparseCooccurrence
from streamrec.state import load_state, save_state
from streamrec.text import TextTemplate
from streamrec.windows import Added, WindowStore

Positive = tuple[list[int], list[int], int, Served | None]  # (co-occurrence recent, seen, item, served rows)


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
    candidates: dict[str, int] = field(default_factory=dict)  # candidates mode: contributed, by source
    candidate_targets: tuple[int, int] = (0, 0)  # candidates mode: positive events scored, their item found
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
        self.window_encoder = window_encoder or make_window_encoder(settings, encoder, self.template, catalog,
                                                                    self.item_vectors, self.vocab.weights)
        head, retrieval = settings.head, settings.retrieval
        lazy = retrieval.mode == "candidates" or (retrieval.mode == "auto" and len(catalog) > retrieval.full_max_items)
        self.head = OnlineHead(encoder.dim, head, capacity=max(1024, len(catalog)), sparse_ids=lazy)
        self.cooccurrence = make_index(head, len(catalog))
        self.text_index = TextIndex(encoder.dim) if lazy and head.text_features else None
        self.trending = Trending(retrieval.trending_half_life) if lazy else None
        self.item_vectors.lazy = lazy
        if self.text_index is not None:
            self.item_vectors.on_encoded = self.text_index.put
        self.neighbours = (TextNeighbours(head.ranker_text_neighbours) if self.cooccurrence is not None and not lazy
                           and head.ranker_new_items and head.text_features and head.ranker_text_neighbours
                           else None)
        self._wire_signals()
        self.ranker = OnlineRanker(feature_names(self.signals), settings.retrieval.k, head.ranker_learning_rate)
        self.retriever = Retriever(settings.retrieval, catalog)
        self.served = ServedRows(retrieval.served_users) if lazy else None
        self._window_vectors: OrderedDict[str, torch.Tensor] = OrderedDict()

    def _wire_signals(self) -> None:
        """The signals and the scorer, on the current co-occurrence index."""
        head, retrieval = self.settings.head, self.settings.retrieval
        self.signals = build_signals(head, self.cooccurrence, retrieval.cold_below, self.neighbours)
        candidates = (CandidateGenerator(retrieval, self.cooccurrence, self.text_index, self.trending)
                      if self.item_vectors.lazy else None)
        self.scorer = Scorer(self.head, self.signals, candidates, head.cooccurrence_decay, self._encode_candidates)

    def _encode_candidates(self, columns: torch.Tensor) -> None:
        """Candidates whose text is not encoded yet (new items, mostly): up to the budget now."""
        self.item_vectors.ensure(columns[columns >= 0].tolist(), self.settings.retrieval.item_encode_budget)

    # -- the batch path ----------------------------------------------------------------------

    def process(self, events: Sequence[Event], learn: bool = True, serve: bool = True) -> BatchResult:
        result = BatchResult([], seconds=(seconds := {"encode": 0.0, "train": 0.0, "rank": 0.0}))
        started = time.perf_counter()
        stats = self.scorer.candidates.stats if self.scorer.candidates is not None else None
        before_stats = (dict(stats.contributed), stats.targets, stats.targets_found) if stats is not None else None
        self._ensure_window_vectors({e.user_id for e in events})
        vectors, recents, items, weights = [], [], [], []
        positives: list[Positive] = []
        learned: list[tuple[list[int], int]] = []  # applied after the ranker saw the batch
        touched: dict[str, int] = {}
        met: set[str] = set()
        for event in events:
            before = self._window_vectors.get(event.user_id)
            # what the user was last shown describes their window before their first event here only
            served = self.served.take(event.user_id) if self.served is not None and event.user_id not in met else None
            met.add(event.user_id)
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
                positives.append((positive_recent, seen, item_index, served))
        if touched and self.windows.idle_ttl_ms is not None:  # idle in event time: the batch's newest event
            self.windows.expire(max(touched.values()))
        evicted = self.windows.take_evicted()
        self._forget(evicted)
        result.evicted = [user for user in evicted if user not in self.windows]  # some came back
        touched = {user: t for user, t in touched.items() if user in self.windows}
        self._outgrow_cooccurrence()
        item_text = self._item_text(touched)
        seconds["encode"] += time.perf_counter() - started
        started = time.perf_counter()
        if positives and learn:  # a scorer (kafka.role) serves a model it reads, learning nothing
            self._observe(torch.stack(vectors), torch.tensor(recents), positives, item_text)
        for positive_recent, item_index in learned if learn else ():
            if self.cooccurrence is not None:
                self.cooccurrence.learn(positive_recent, item_index)
            if self.trending is not None:
                self.trending.learn(item_index)
        seconds["train"] += time.perf_counter() - started
        if items and learn:
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
        result.recommendations = self.recommend(list(touched), touched, item_text) if serve else []
        result.cold_items = self._cold_items(result.recommendations)
        seconds["rank"] = time.perf_counter() - started
        if stats is not None and before_stats is not None:
            result.candidates = {k: v - before_stats[0].get(k, 0) for k, v in stats.contributed.items()}
            result.candidate_targets = (stats.targets - before_stats[1], stats.targets_found - before_stats[2])
        return result

    def _item_text(self, users: Iterable[str]) -> torch.Tensor:
        """The item text matrix for a batch: every item encoded (full mode), or the items of
        ``users``' windows now and ``retrieval.item_encode_budget`` more in the background."""
        if not self.item_vectors.lazy:
            return self.item_vectors.matrix()
        self.item_vectors.ensure(self.catalog.index_of(e.item_id) for u in users for e in self.windows.window(u))
        self.item_vectors.encode_pending(self.settings.retrieval.item_encode_budget)
        return self.item_vectors.current()

    def _outgrow_cooccurrence(self) -> None:
        """`auto`: an outgrown dense co-occurrence index becomes sparse; outgrown whole ranking warns."""
        self.scorer.check_size(len(self.catalog), self.settings.retrieval.mode, self.settings.retrieval.full_max_items)
        sparse = outgrown(self.cooccurrence, self.settings.head, len(self.catalog))
        if sparse is not None:
            self.use_cooccurrence(sparse)

    def use_cooccurrence(self, index: ItemCooccurrence | SparseCooccurrence) -> None:
        """Swap the co-occurrence index (the signals follow; the ranker's weights stay)."""
        self.cooccurrence = index
        self._wire_signals()

    def recommend(self, user_ids: Sequence[str], event_times: dict[str, int] | None = None,
                  item_text: torch.Tensor | None = None) -> list[Recommendation]:
        """Fresh top-K for users that have a window."""
        users = [u for u in user_ids if u in self.windows]
        if not users:
            return []
        self._ensure_window_vectors(set(users))
        item_text = self._item_text(users) if item_text is None else item_text
        self.head.ensure_capacity(item_text.shape[0])
        user_vecs = self.head.user_vectors(torch.stack([self._window_vectors[u] for u in users]),
                                           torch.tensor([self._recent_items(u) for u in users]), item_text)
        positive_recent = torch.tensor([self._positive_recent(u) for u in users])
        excluded = [set(self._seen_index(u)) for u in users] if self.item_vectors.lazy else [set() for _ in users]
        rows = self.scorer.rows(user_vecs, positive_recent, item_text, excluded, self.retriever.blocked_mask())
        if self.served is not None and rows.columns is not None:
            self.served.keep(users, rows.columns, rows.features)
        scores = self.ranker.combine(rows.features)
        boost = self.settings.retrieval.cold_boost
        if boost and (cold := self._cold(item_text.shape[0])) is not None:
            scores = boost_cold(scores, cold if rows.columns is None else cold[rows.columns.clamp(min=0)], boost)
        ranked = self.retriever.rank(scores, [self.windows.seen_items(u) for u in users], rows.columns)
        produced_at = int(self.clock() * 1000)
        windows = [self.windows.window(user) for user in users]
        supports = supporting_events(
            [[i for i, _ in pairs] for pairs in ranked],
            [[self.catalog.index_of(e.item_id) for e in window] for window in windows],
            lambda items: self._head_item_vectors(rows, items, item_text),
            lambda items: self.head.context_vectors(item_text, items), self.cooccurrence)
        recommendations = []
        for user, pairs, window, support in zip(users, ranked, windows, supports, strict=True):
            recommended, names = explained(pairs, window, support, self.template, self.catalog)
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
        return int(cold[[self.catalog.index_of(i.item_id) for rec in recommendations for i in rec.items]].sum())

    def _head_item_vectors(self, rows: Rows, items: torch.Tensor, item_text: torch.Tensor) -> torch.Tensor:
        """The head's vectors of ``items`` (as the ranking computed them, when it did)."""
        vectors = rows.vectors_of(items)
        return self.head.model.items(item_text[items], items)[0] if vectors is None else vectors

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

    def _observe(self, window_vectors: torch.Tensor, recent: torch.Tensor, positives: list[Positive],
                 item_text: torch.Tensor) -> None:
        """Score each positive event with the signals as they were before this batch, then let
        the ranker learn from them (test-then-train). In candidates mode, an event whose user's
        last recommendation is still kept (:mod:`streamrec.served`) is scored on those rows."""
        targets = torch.tensor([p[2] for p in positives])
        fresh = [i for i, p in enumerate(positives) if p[3] is None]
        groups: list[Learned] = []
        if fresh:
            index = torch.tensor(fresh)
            self.head.ensure_capacity(item_text.shape[0])
            users = self.head.user_vectors(window_vectors[index], recent[index], item_text)
            blocked = self.retriever.blocked_mask()
            rows = self.scorer.rows(users, torch.tensor([positives[i][0] for i in fresh]), item_text,
                                    [set(positives[i][1]) for i in fresh], blocked, targets[index])
            if rows.columns is None or rows.targets is None or rows.found is None:  # the whole catalogue
                excluded = self.retriever.excluded([p[1] for p in positives], item_text.shape[0])
                self.ranker.observe(rows.features, targets, excluded)
                return
            groups.append(Learned(rows.features, rows.targets, rows.found, rows.columns))
        served = [p[3] for p in positives if p[3] is not None]
        if served and self.served is not None and self.scorer.candidates is not None:
            items = torch.tensor([p[2] for p in positives if p[3] is not None])
            groups.append(from_served(served, items))
            self.scorer.candidates.observe_targets(groups[-1].columns, items)  # the recall of what was served
        if self.served is not None:  # reported by the replay
            self.served.taken, self.served.scored = self.served.taken + len(served), self.served.scored + len(fresh)
        features, target_columns, padding, missed = joined(groups)
        self.ranker.observe(features, target_columns, padding, missed=missed)

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
        if self.served is not None:
            self.served.forget(user_ids)
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

    def save(self, state_dir: str | Path, with_windows: bool = True) -> None:
        """Checkpoint every component (and, optionally, all windows) into ``state_dir``."""
        save_state(self, Path(state_dir), with_windows)

    def load(self, state_dir: str | Path) -> bool:
        """Load whatever checkpoint files exist in ``state_dir``; returns True if a head was loaded."""
        return load_state(self, Path(state_dir))
