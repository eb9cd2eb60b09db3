"""Incremental window encoding: keep each user's KV cache and run only the new events through the model.

Which events a user's cache reads (its *view*), and when a new window extends it rather than
resetting it, is in :mod:`streamrec.encoding.views`.

Caches live on the model's device, bounded by ``kv_cache_bytes``: allocated bytes, least
recently used users evicted after each call (a call briefly holds the caches of the users it
encodes); the GPU's pooled layout allocates the budget up front as one slot per user and
evicts idle users when a slot is needed. Evictions and bytes are counted in :attr:`stats`.
Users of different cache lengths share forwards (see :mod:`streamrec.encoding.batches`). A
call encodes each user once, however many of the user's events arrived (a user passed twice is
an error), with users bucketed by length into forwards (``bucketing``, see
:mod:`streamrec.encoding.batch_plan`).

>>> encoder = IncrementalWindowEncoder(hf_encoder, TextTemplate.english(), catalog,  # doctest: +SKIP
...                                    max_events=50, slack_events=32, kv_cache_bytes=2**31)
>>> encoder.encode_windows(["u1"], [window]).shape  # doctest: +SKIP
torch.Size([1, 768])
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from streamrec.catalog import Catalog
from streamrec.encoding.batch_plan import CostModel, plan_batches
from streamrec.encoding.event_inputs import ItemEmbeddings, TextChunks
from streamrec.encoding.kv_cache import KVCache, SlotPool, UserKV
from streamrec.encoding.text_encoder import HFEncoder
from streamrec.encoding.views import EventKey, Job, View, event_key, overlap
from streamrec.errors import ConfigError, UsageError
from streamrec.events import Event
from streamrec.text import TextTemplate

if TYPE_CHECKING:  # streamrec.encoding.batches imports transformers: loaded when an encoder is built, not before
    from streamrec.encoding.batches import BatchInputs

LAYOUTS = ("ragged", "pooled", "padded")


@dataclass
class EncoderStats:
    """Counters since construction. ``positions`` are model input positions (tokens in text mode)."""

    calls: int = 0
    users: int = 0
    unchanged: int = 0  # nothing new in the window: the cached vector is returned
    appended_events: int = 0
    appended_positions: int = 0
    reset_positions: int = 0
    resets: Counter[str] = field(default_factory=Counter)  # by reason
    forwards: int = 0
    evictions: int = 0
    evicted_bytes: int = 0
    cache_bytes: int = 0
    peak_cache_bytes: int = 0

    @property
    def positions(self) -> int:
        return self.appended_positions + self.reset_positions


class IncrementalWindowEncoder:
    """A :class:`~streamrec.encoding.window_encoder.WindowEncoder` that reuses each user's KV cache.

    ``mode="text"`` reads windows as chunked text; ``mode="item"`` as one position per event.
    ``kv_cache_bytes=0`` keeps no cache (every call re-encodes the view; the baseline);
    ``bucketing=False`` batches users in the given order instead of by length; ``layout``
    (``ragged``, ``pooled`` or ``padded``, see :mod:`streamrec.encoding.batches`) defaults to
    ragged on CPU, pooled on GPU and padded with ``compile``.
    """

    def __init__(self, encoder: HFEncoder, template: TextTemplate, catalog: Catalog, max_events: int = 50,
                 slack_events: int = 32, kv_cache_bytes: int = 2 << 30, mode: str = "text",
                 bucketing: bool = True, compile: bool = False, max_kv_tokens: int | None = None,
                 layout: str | None = None) -> None:
        from streamrec.encoding.batches import use_ragged_attention

        if not encoder.causal:
            raise ConfigError(f"encoder.mode={mode!r} needs a causal LM (GPT-2, Llama, ...); "
                              f"{encoder.settings.model!r} is bidirectional: use encoder.mode=text")
        if mode not in ("text", "item"):
            raise ConfigError(f"IncrementalWindowEncoder mode {mode!r}: expected 'text' or 'item'")
        if layout is not None and layout not in LAYOUTS:
            raise ConfigError(f"KV-cache layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
        self.encoder = encoder
        self.template = template
        self.catalog = catalog
        self.max_events = max_events
        self.slack_events = slack_events
        self.kv_cache_bytes = kv_cache_bytes
        self.mode = mode
        self.bucketing = bucketing
        # positions of all users' caches one forward may touch (bounds the padded layout's scratch buffer)
        self.max_kv_tokens = max_kv_tokens or (1 << 18 if encoder.device.type == "cuda" else 1 << 16)
        self.dim = encoder.dim
        self.max_positions = encoder.max_length
        self.reset_positions = max(1, self.max_positions * max_events // (max_events + slack_events))
        self.n_layers = int(encoder.model.config.num_hidden_layers)
        # ragged attention loops over users in Python: fine eagerly, but it would make torch.compile retrace
        self.layout = layout or ("padded" if compile else "pooled" if encoder.device.type == "cuda" else "ragged")
        if self.layout == "ragged" and not use_ragged_attention(encoder.model):
            self.layout = "padded"
        self.pool = self._pool() if self.layout == "pooled" and kv_cache_bytes > 0 else None
        if self.pool is not None and not self.pool.n_slots:  # the budget holds not even one view
            self.pool, self.kv_cache_bytes = None, 0
        self.model: Any = torch.compile(encoder.model, dynamic=True) if compile else encoder.model
        self.cost = CostModel.for_device(encoder.device.type, self.layout)
        self.chunks = TextChunks(encoder.tokenizer, template, catalog)
        self.items = ItemEmbeddings(encoder.tokenizer, encoder.model.get_input_embeddings(), template, catalog)
        self.stats = EncoderStats()
        self._views: OrderedDict[str, View] = OrderedDict()
        self._scratch: list[torch.Tensor] = []
        self._active: set[str] = set()

    @property
    def cache_bytes(self) -> int:
        return self.stats.cache_bytes

    def _pool(self) -> SlotPool:
        config = self.encoder.model.config
        heads = int(config.num_attention_heads)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        return SlotPool(self.n_layers, kv_heads, head_dim, self.max_positions, self.encoder.dtype,
                        self.encoder.device, self.kv_cache_bytes)

    # -- the protocol ------------------------------------------------------------------------

    def encode_windows(self, user_ids: Sequence[str], windows: Sequence[Sequence[Event]]) -> torch.Tensor:
        if len(set(user_ids)) != len(user_ids):
            raise UsageError("encode_windows got a user twice in one call; pass each user's latest window once")
        self.stats.calls += 1
        self.stats.users += len(user_ids)
        out = torch.zeros(len(user_ids), self.dim)
        self._active = set(user_ids)  # not evicted while this call runs
        jobs: list[Job] = []
        for row, (user, window) in enumerate(zip(user_ids, windows, strict=True)):
            recent = list(window)[-self.max_events:]
            if not recent:
                self._drop(user)
                continue
            job = self._plan(row, user, recent)
            if job is None:
                self.stats.unchanged += 1
                out[row] = self._views[user].vector
                self._views.move_to_end(user)
            else:
                jobs.append(job)
        self._run(jobs, out)
        self._evict()
        return out

    def forget(self, user_ids: Iterable[str]) -> None:
        for user in user_ids:
            self._drop(user)

    def view(self, user_id: str) -> list[EventKey]:
        """The events the user's current vector reads (empty when nothing is cached)."""
        state = self._views.get(user_id)
        return list(state.keys) if state else []

    # -- planning ----------------------------------------------------------------------------

    def _texts(self, events: Sequence[Event], previous: Event | None) -> list[str]:
        source = self.chunks if self.mode == "text" else self.items
        texts = []
        for event in events:
            texts.append(source.text(event, previous))
            previous = event
        return texts

    def _plan(self, row: int, user: str, window: list[Event]) -> Job | None:
        state = self._views.get(user)
        if state is None:
            return self._reset(row, user, window, "new")
        keys = [event_key(e) for e in window]
        match = overlap(state.keys, keys, state.partial)
        if match is None:
            return self._reset(row, user, window, "not_extension")
        start, offset = match
        if start > self.slack_events:
            return self._reset(row, user, window, "slack")
        if self.catalog.changes != state.catalog_changes:
            cached = [Event(user, item, action, ts, event_id) for ts, event_id, item, action in state.keys]
            if self._texts(cached, None) != state.texts:
                return self._reset(row, user, window, "text_changed")
            state.catalog_changes = self.catalog.changes
        read = offset + len(state.keys) - start  # the window's events the view already reads end here
        new = window[read:]
        if not new:
            return None
        if len(state.keys) + len(new) > self.max_events + self.slack_events:
            return self._reset(row, user, window, "slack")
        texts = self._texts(new, window[read - 1])
        ids = self.chunks.ids(texts, [False] * len(texts)) if self.mode == "text" else None
        job = Job(row, user, new, texts, ids, state, None)
        if state.kv.length + job.positions > self.max_positions:
            return self._reset(row, user, window, "positions")
        return job

    def _reset(self, row: int, user: str, window: list[Event], reason: str) -> Job:
        texts = self._texts(window, None)
        if self.mode == "item":
            events = window[-self.reset_positions:]
            return Job(row, user, events, texts[-len(events):], None, None, reason, len(events) < len(window))
        later = self.chunks.ids(texts[1:], [False] * (len(texts) - 1))  # chunk i+1, after event i
        start, total = len(window) - 1, 0
        while start > 0:  # grow the view backwards while the newest events fit
            first = self.chunks.ids([self._texts([window[start - 1]], None)[0]], [True])[0]
            if total + len(later[start - 1]) + len(first) > self.reset_positions:
                break
            total += len(later[start - 1])
            start -= 1
        first_text = self._texts([window[start]], None)[0]
        ids = [self.chunks.ids([first_text], [True])[0][-self.reset_positions:], *later[start:]]
        return Job(row, user, window[start:], [first_text, *texts[start + 1:]], ids, None, reason, start > 0)

    # -- running -----------------------------------------------------------------------------

    @torch.inference_mode()
    def _run(self, jobs: list[Job], out: torch.Tensor) -> None:
        if not jobs:
            return
        shapes = [(job.positions, job.view.kv.length if job.view and job.view.kv else 0) for job in jobs]
        width = self.max_positions if self.layout == "pooled" else None
        for group in plan_batches(shapes, self.encoder.settings.batch_size, self.max_kv_tokens, self.cost,
                                  self.bucketing, max_width=width):
            self._forward([jobs[i] for i in group], out)

    def _forward(self, jobs: list[Job], out: torch.Tensor) -> None:
        from streamrec.encoding.batches import forward_batch, make_batch

        caches: list[KVCache | None] = []
        for job in jobs:
            if job.view is not None:
                caches.append(job.view.kv)
                self.stats.cache_bytes -= job.view.kv.nbytes
            else:
                self._drop(job.user)
                caches.append(self._new_cache())
        pasts = [job.view.kv.length if job.view is not None else 0 for job in jobs]
        news = [job.positions for job in jobs]
        batch = make_batch(self.layout, caches, pasts, news, self._scratch, self.pool, self.encoder.device)
        hidden = forward_batch(self.model, self.n_layers, batch, self._inputs(jobs, max(news)), self.max_positions,
                               self.encoder.device)
        self.stats.forwards += 1
        device = hidden.device
        count = torch.tensor(news, device=device)
        if self.encoder.pooling == "mean":  # a running sum over the view, so appends stay exact
            real = torch.arange(hidden.shape[1], device=device)[None, :] < count[:, None]
            sums = (hidden.float() * real[..., None]).sum(dim=1)
            for i, job in enumerate(jobs):
                if job.view is not None and job.view.hidden_sum is not None:
                    sums[i] += job.view.hidden_sum
                    count[i] += sum(job.view.sizes)
            pooled = sums / count[:, None]
        else:
            sums = None
            pooled = hidden[torch.arange(len(jobs), device=device), count - 1].float()
        vectors = pooled.cpu()  # one device-to-host copy per forward
        for i, (job, kv) in enumerate(zip(jobs, caches, strict=True)):
            out[job.row] = vectors[i]
            self._record(job, kv, vectors[i], None if sums is None else sums[i])

    def _inputs(self, jobs: list[Job], width: int) -> BatchInputs:
        from streamrec.encoding.batches import BatchInputs

        if self.mode == "text":
            pad = self.encoder.tokenizer.pad_token_id or 0
            ids = torch.full((len(jobs), width), pad, dtype=torch.long)
            for row, job in enumerate(jobs):
                flat = [t for chunk in job.ids or [] for t in chunk]
                ids[row, :len(flat)] = torch.tensor(flat, dtype=torch.long)
            return BatchInputs(ids, None)
        vectors = self.items.vectors([t for job in jobs for t in job.texts])
        embeds = vectors.new_zeros((len(jobs), width, vectors.shape[1]))
        start = 0
        for row, job in enumerate(jobs):
            embeds[row, :len(job.texts)] = vectors[start:start + len(job.texts)]
            start += len(job.texts)
        return BatchInputs(None, embeds)

    def _new_cache(self) -> KVCache | None:
        """A cache for a user being reset, or None when nothing is kept."""
        if self.kv_cache_bytes <= 0:
            return None
        if self.pool is None:
            growth = (self.max_events + self.slack_events) / self.max_events  # room for the slack
            return UserKV(self.max_positions, growth)
        kv = self.pool.acquire()
        idle = (u for u in list(self._views) if u not in self._active)  # least recently used first
        while kv is None and (user := next(idle, None)) is not None:
            self._drop(user, evicted=True)
            kv = self.pool.acquire()
        return kv

    def _record(self, job: Job, kv: KVCache | None, vector: torch.Tensor, hidden_sum: torch.Tensor | None) -> None:
        sizes = [len(i) for i in job.ids] if job.ids is not None else [1] * len(job.events)
        keys = [event_key(e) for e in job.events]
        if job.view is None:
            assert job.reason is not None
            self.stats.resets[job.reason] += 1
            self.stats.reset_positions += sum(sizes)
            if kv is None:
                return
            state = View(keys, list(job.texts), sizes, kv, vector, hidden_sum, self.catalog.changes, job.partial)
            self._views[job.user] = state
        else:
            state = job.view
            self.stats.appended_events += len(keys)
            self.stats.appended_positions += sum(sizes)
            state.keys += keys
            state.texts += job.texts
            state.sizes += sizes
            state.vector, state.hidden_sum = vector, hidden_sum
            assert len(state.keys) <= self.max_events + self.slack_events
        self._views.move_to_end(job.user)
        self.stats.cache_bytes += kv.nbytes if kv else 0
        self.stats.peak_cache_bytes = max(self.stats.peak_cache_bytes, self.stats.cache_bytes)

    def _drop(self, user: str, evicted: bool = False) -> None:
        state = self._views.pop(user, None)
        if state is None:
            return
        freed = state.kv.nbytes
        state.kv.release()
        self.stats.cache_bytes -= freed
        if evicted:
            self.stats.evictions += 1
            self.stats.evicted_bytes += freed

    def _evict(self) -> None:
        while self.stats.cache_bytes > self.kv_cache_bytes and self._views:
            self._drop(next(iter(self._views)), evicted=True)
