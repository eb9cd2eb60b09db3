"""Encoding: how a user's window, or an item's text, becomes a vector.

======================  ============================================================
``text_encoder``        :class:`TextEncoder`, :class:`HFEncoder`: texts -> vectors; device, dtype
``window_encoder``      :class:`WindowEncoder`, :class:`TextWindowEncoder`, :func:`make_window_encoder`
``incremental``         :class:`IncrementalWindowEncoder`: per-user KV caches, only new events run
``pooled``              :class:`PooledWindowEncoder`: a window as the weighted mean of its items' vectors
``views``               what a user's cache reads, and when a new window extends or resets it
``event_inputs``        what the model reads per event: token chunks (text) or one vector (item)
``kv_cache``            per-user caches: growable buffers, or slots of one preallocated pool
``batch_plan``          which users share a forward, by the cost of their padding
``batches``             one forward over users of different cache lengths (ragged, pooled, padded)
======================  ============================================================

transformers is imported only inside :class:`HFEncoder` and by ``batches`` (loaded when an
incremental encoder is built), so importing this package loads torch but not transformers.
"""

from streamrec.encoding.incremental import EncoderStats, IncrementalWindowEncoder
from streamrec.encoding.pooled import PooledWindowEncoder
from streamrec.encoding.text_encoder import HFEncoder, TextEncoder, resolve_device, resolve_dtype
from streamrec.encoding.window_encoder import TextWindowEncoder, WindowEncoder, make_window_encoder

__all__ = [
    "EncoderStats",
    "HFEncoder",
    "IncrementalWindowEncoder",
    "PooledWindowEncoder",
    "TextEncoder",
    "TextWindowEncoder",
    "WindowEncoder",
    "make_window_encoder",
    "resolve_device",
    "resolve_dtype",
]
