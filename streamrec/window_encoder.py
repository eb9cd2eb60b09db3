"""How a user's window becomes a vector: the seam between the pipeline and the encoder.

:class:`TextWindowEncoder` is the plain path: render the whole window to text and encode it
from scratch, once per touched user per micro-batch. Faster strategies (reusing work from the
user's previous encoding) implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import torch

from streamrec.catalog import Catalog
from streamrec.encoder import TextEncoder
from streamrec.events import Event
from streamrec.text import TextTemplate


class WindowEncoder(Protocol):
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
