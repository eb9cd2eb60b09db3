"""Per-user KV caches of a causal LM, and one batched forward over users of different lengths.

Each user's cache is a list of per-layer buffers ``(2, kv_heads, capacity, head_dim)`` filled
to ``length`` positions; spare capacity lets new positions be written in place. Users whose
caches differ in length share one forward: their new positions are right-padded into one
batch with explicit ``position_ids``, so every dense layer runs once for all of them.
Attention then takes one of two layouts:

* ``ragged`` (CPU default): each user's queries attend straight from that user's own buffer
  (one SDPA call per user and layer, no copy, no padding), through an attention function
  registered with transformers' ``AttentionInterface`` that falls back to SDPA for every
  other use of the model;
* ``padded`` (GPU default): the caches are copied right-aligned into one scratch buffer
  (left padding, masked) and attention runs once for the batch.

The buffers plug into transformers through its ``Cache`` interface; the model code is the
library's own.

>>> plan_batches([(12, 700), (12, 80), (600, 0)], max_users=8, max_kv_tokens=10_000,
...              cost=CostModel.for_device("cpu"))
[[1, 0], [2]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import Cache, CacheLayerMixin
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

RAGGED = "streamrec_ragged"


@dataclass(frozen=True)
class CostModel:
    """Rough cost of one forward, in units of one token's dense forward, used to bucket users.

    ``forward``: fixed cost of a forward (reading every weight once; large on GPU, where small
    batches are launch-bound); ``pair``: one query attending one key; ``copy``: one cached
    position copied into the padded batch layout.
    """

    forward: float
    pair: float
    copy: float

    @classmethod
    def for_device(cls, device_type: str, layout: str = "padded") -> CostModel:
        if layout == "ragged":  # attention is per user, unpadded: only the dense layers see padding
            return cls(forward=32.0 if device_type == "cpu" else 4096.0, pair=0.0, copy=0.0)
        if device_type == "cuda":
            return cls(forward=4096.0, pair=2e-4, copy=0.2)
        return cls(forward=32.0, pair=2.2e-4, copy=0.02)

    def batch(self, size: int, new: int, past: int, copies: bool) -> float:
        keys = past + new
        return (self.forward + size * new + self.pair * size * new * keys
                + (self.copy * size * keys if copies else 0.0))


def plan_batches(jobs: Sequence[tuple[int, int]], max_users: int, max_kv_tokens: int, cost: CostModel,
                 bucketing: bool = True) -> list[list[int]]:
    """Split jobs ``(new_positions, past_positions)`` into forwards.

    Without bucketing: chunks of ``max_users`` in the given order. With it: jobs sorted by
    size, then cut where :class:`CostModel` says padding would cost more than another forward
    (an exact partition of the sorted order, by dynamic programming).
    """
    n = len(jobs)
    if not bucketing or n > 1024:
        order = list(range(n)) if not bucketing else sorted(range(n), key=lambda i: jobs[i])
        return [order[i:i + max_users] for i in range(0, n, max_users)]
    order = sorted(range(n), key=lambda i: jobs[i])
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        new_max = jobs[order[end - 1]][0]
        past_max = 0
        for start in range(end - 1, max(-1, end - 1 - max_users), -1):
            past_max = max(past_max, jobs[order[start]][1])
            size = end - start
            if size > 1 and size * (new_max + past_max) > max_kv_tokens:
                break
            total = best[start] + cost.batch(size, new_max, past_max, copies=size > 1 and past_max > 0)
            if total < best[end]:
                best[end], cut[end] = total, start
    groups: list[list[int]] = []
    end = n
    while end > 0:
        groups.append(order[cut[end]:end])
        end = cut[end]
    return groups[::-1]


class UserKV:
    """One user's cached keys/values: per layer ``(2, kv_heads, capacity, head_dim)``."""

    def __init__(self, max_positions: int, growth: float = 1.25) -> None:
        self.max_positions = max_positions
        self.growth = growth  # capacity allocated = needed * growth (at most max_positions)
        self.layers: list[torch.Tensor] = []
        self.length = 0  # positions filled (all layers)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.layers)

    def ensure(self, layer: int, like: torch.Tensor, needed: int) -> torch.Tensor:
        """The layer's buffer with room for ``needed`` positions (allocated or grown)."""
        if layer == len(self.layers):
            self.layers.append(self._alloc(like, needed))
        buf = self.layers[layer]
        if buf.shape[2] < needed:
            grown = self._alloc(like, needed)
            grown[:, :, :self.length] = buf[:, :, :self.length]
            self.layers[layer] = buf = grown
        return buf

    def _alloc(self, like: torch.Tensor, needed: int) -> torch.Tensor:
        capacity = min(max(needed, int(needed * self.growth)), max(self.max_positions, needed))
        return torch.empty((2, like.shape[1], capacity, like.shape[3]), dtype=like.dtype, device=like.device)


class _BatchLayer(CacheLayerMixin):
    """One layer of a batched forward: stores each user's new keys/values into its
    :class:`UserKV` (when kept) and returns the keys/values attention should read."""

    is_sliding = False
    is_compileable = False

    def __init__(self, index: int, batch: _Batch) -> None:
        super().__init__()
        self.index = index
        self.batch = batch
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        return None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.batch
        for row, (kv, past, new) in enumerate(zip(b.caches, b.pasts, b.news, strict=True)):
            if kv is not None:
                buf = kv.ensure(self.index, key_states, past + new)
                buf[0, :, past:past + new] = key_states[row, :, :new]
                buf[1, :, past:past + new] = value_states[row, :, :new]
        if b.ragged:  # attention reads the users' own buffers; keep this layer's new states for the rest
            b.fresh = (key_states, value_states)
            return key_states, value_states
        if b.past_max == 0:
            return key_states, value_states
        if len(b.caches) == 1:  # attend straight from the user's own buffer
            buf = b.caches[0].layers[self.index]  # type: ignore[union-attr]
            end = b.pasts[0] + b.news[0]
            return buf[0, None, :, :end], buf[1, None, :, :end]
        return b.padded(self.index, key_states, value_states)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.batch.past_max + query_length, 0

    def get_seq_length(self) -> int:
        return self.batch.past_max

    def get_max_length(self) -> int:
        return -1


class _Batch:
    """The users of one forward: their caches, past and new lengths, and the padded scratch."""

    def __init__(self, caches: list[UserKV | None], pasts: list[int], news: list[int],
                 scratch: list[torch.Tensor], ragged: bool) -> None:
        self.caches = caches
        self.pasts = pasts
        self.news = news
        self.past_max = max(pasts)
        self.new_max = max(news)
        self.ragged = ragged
        self.fresh: tuple[torch.Tensor, torch.Tensor] | None = None
        self._scratch = scratch  # one reusable buffer for all layers: they run one after another
        self._masks: dict[tuple[int, int], torch.Tensor] = {}

    def attend(self, layer: int, query: torch.Tensor, scaling: float | None) -> torch.Tensor:
        """Ragged layout: each user's queries against its own keys; ``(batch, new, heads, dim)``."""
        assert self.fresh is not None
        keys, values = self.fresh
        out = query.new_zeros(query.shape[0], query.shape[2], query.shape[1], query.shape[3])
        gqa = query.shape[1] != keys.shape[1]
        for row, (kv, past, new) in enumerate(zip(self.caches, self.pasts, self.news, strict=True)):
            if kv is not None:
                buf = kv.layers[layer]
                k, v = buf[0, None, :, :past + new], buf[1, None, :, :past + new]
            else:  # not kept: nothing past
                k, v = keys[row:row + 1, :, :new], values[row:row + 1, :, :new]
            mask = None if past == 0 or new == 1 else self._mask(new, past, query.device)
            o = F.scaled_dot_product_attention(query[row:row + 1, :, :new], k, v, attn_mask=mask,
                                               is_causal=past == 0 and new > 1, scale=scaling, enable_gqa=gqa)
            out[row, :new] = o[0].transpose(0, 1)
        return out

    def _mask(self, new: int, past: int, device: torch.device) -> torch.Tensor:
        """Query i (at position past + i) sees keys 0..past + i."""
        mask = self._masks.get((new, past))
        if mask is None:
            mask = torch.ones(new, past + new, dtype=torch.bool, device=device).tril(diagonal=past)
            self._masks[(new, past)] = mask
        return mask

    def padded(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        like = keys
        rows, width = len(self.caches), self.past_max + self.new_max
        shape = (2, rows, like.shape[1], width, like.shape[3])
        need = rows * like.shape[1] * width * like.shape[3] * 2
        if (not self._scratch or self._scratch[0].numel() < need or self._scratch[0].dtype != like.dtype
                or self._scratch[0].device != like.device):
            self._scratch[:] = [torch.empty(need, dtype=like.dtype, device=like.device)]
        out = self._scratch[0][:need].view(shape)
        out.zero_()  # padding is masked, but must not hold NaN from old memory; one fill, not one per user
        for row, (kv, past, new) in enumerate(zip(self.caches, self.pasts, self.news, strict=True)):
            start = self.past_max - past
            if kv is not None:
                out[:, row, :, start:self.past_max + new] = kv.layers[layer][:, :, :past + new]
            else:  # a fresh user whose cache is not kept: nothing past, only this forward's states
                out[0, row, :, start:self.past_max + new] = keys[row, :, :new]
                out[1, row, :, start:self.past_max + new] = values[row, :, :new]
        return out[0], out[1]


@dataclass
class BatchInputs:
    """Right-padded inputs of one forward: token ids, or input embeddings (item mode)."""

    input_ids: torch.Tensor | None
    inputs_embeds: torch.Tensor | None


def _ragged_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      **kwargs: Any) -> tuple[torch.Tensor, None]:
    batch = kwargs.pop("streamrec_batch", None)
    if batch is None:  # any other forward of the model (e.g. item texts): plain SDPA
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    return batch.attend(module.layer_idx, query, scaling), None


def use_ragged_attention(model: Any) -> None:
    """Switch ``model`` to the ragged attention function (SDPA for every call without a batch)."""
    AttentionInterface.register(RAGGED, _ragged_attention)
    AttentionMaskInterface.register(RAGGED, sdpa_mask)
    if model.config._attn_implementation != RAGGED:
        model.set_attn_implementation(RAGGED)


def forward_batch(model: Any, n_layers: int, caches: list[UserKV | None], pasts: list[int], news: list[int],
                  inputs: BatchInputs, max_positions: int, scratch: list[torch.Tensor],
                  device: torch.device, ragged: bool) -> torch.Tensor:
    """Run the new positions of several users through ``model`` on top of their cached pasts.

    ``caches[i]`` receives user i's new keys/values (None: not kept). Returns the final hidden
    states ``(batch, max(news), hidden)``; row i is valid for its first ``news[i]`` positions.
    ``ragged`` needs :func:`use_ragged_attention` called on the model once.
    """
    batch = _Batch(caches, pasts, news, scratch, ragged)
    rows, width = len(news), batch.past_max + batch.new_max
    positions = torch.empty(rows, batch.new_max, dtype=torch.long)
    mask = None if ragged else torch.zeros(rows, width, dtype=torch.long)
    for row, (past, new) in enumerate(zip(pasts, news, strict=True)):
        positions[row] = torch.arange(past, past + batch.new_max).clamp(max=max_positions - 1)
        if mask is not None:
            mask[row, batch.past_max - past:batch.past_max + new] = 1
    cache = Cache(layers=[_BatchLayer(i, batch) for i in range(n_layers)])
    pin = device.type == "cuda"

    def to_device(t: torch.Tensor) -> torch.Tensor:
        return t.pin_memory().to(device, non_blocking=True) if pin else t

    kwargs: dict[str, Any] = {"position_ids": to_device(positions), "cache": cache, "use_cache": True,
                              "attention_mask": None if mask is None else to_device(mask)}
    if ragged:
        kwargs["streamrec_batch"] = batch
    if inputs.input_ids is not None:
        output = model(input_ids=to_device(inputs.input_ids), **kwargs)
    else:
        output = model(inputs_embeds=inputs.inputs_embeds, **kwargs)
    for kv, past, new in zip(caches, pasts, news, strict=True):
        if kv is not None:
            kv.length = past + new
    hidden: torch.Tensor = output.last_hidden_state
    return hidden
