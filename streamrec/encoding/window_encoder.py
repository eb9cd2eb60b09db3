"""How a user's window becomes a vector: the seam between the pipeline and the encoder.

:class:`TextWindowEncoder` is the plain path: render the whole window to text and encode it
from scratch, once per touched user per micro-batch. Faster strategies (reusing work from the
user's previous encoding, :class:`~streamrec.encoding.incremental.IncrementalWindowEncoder`)
implement the same protocol; :func:`make_window_encoder` picks the one the settings ask for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import torch

from streamrec.catalog import Catalog
from streamrec.config import Settings
from streamrec.encoding.incremental import IncrementalWindowEncoder
from streamrec.encoding.pooled import ItemRows, PooledWindowEncoder
from streamrec.encoding.text_encoder import HFEncoder, TextEncoder
from streamrec.errors import ConfigError
from streamrec.events import Event
from streamrec.text import TextTemplate


class WindowEncoder(Protocol):
    """What the pipeline needs to turn users' windows into vectors."""

    dim: int

    @property
    def cache_bytes(self) -> int:
        """Bytes of per-user state held (KV caches); what ``streamrec_kv_cache_bytes`` shows."""
        ...

    def encode_windows(self, user_ids: Sequence[str], windows: Sequence[Sequence[Event]]) -> torch.Tensor:
        """One vector per user for their current window: ``(len(user_ids), dim)``."""
        ...

    def forget(self, user_ids: Iterable[str]) -> None:
        """Drop any per-user state (the users left this process)."""
        ...


class TextWindowEncoder:
    """Render each window to text and encode it whole."""

    def __init__(self, encoder: TextEncoder, template: TextTemplate, catalog: Catalog) -> None:
        self.encoder = encoder
        self.template = template
        self.catalog = catalog
        self.dim = encoder.dim
        self.cache_bytes = 0  # keeps nothing per user

    def encode_windows(self, user_ids: Sequence[str], windows: Sequence[Sequence[Event]]) -> torch.Tensor:
        return self.encoder.encode([self.template.render_window(w, self.catalog) for w in windows])

    def forget(self, user_ids: Iterable[str]) -> None:
        return None


def make_window_encoder(settings: Settings, encoder: TextEncoder, template: TextTemplate,
                        catalog: Catalog, item_vectors: ItemRows | None = None,
                        action_weights: Mapping[str, float] | None = None) -> WindowEncoder:
    """The window encoder ``settings.encoder.mode`` asks for (``pooled`` reads ``item_vectors``,
    the pipeline's cache of item text vectors, with each action weighing ``action_weights``)."""
    mode = settings.encoder.mode
    if mode == "text":
        return TextWindowEncoder(encoder, template, catalog)
    if mode == "pooled":
        if item_vectors is None or action_weights is None:
            raise ConfigError("encoder.mode='pooled' pools the pipeline's item vectors: build it through Pipeline")
        return PooledWindowEncoder(item_vectors, catalog, action_weights, settings.encoder.pool_decay)
    if not isinstance(encoder, HFEncoder):
        raise ConfigError(f"encoder.mode={mode!r} needs a transformers encoder (HFEncoder), "
                          f"got {type(encoder).__name__}")
    return IncrementalWindowEncoder(
        encoder, template, catalog, max_events=settings.window.max_events,
        slack_events=settings.encoder.slack_events, kv_cache_bytes=settings.encoder.kv_cache_bytes,
        mode="item" if mode == "item" else "text", compile=settings.encoder.compile)
