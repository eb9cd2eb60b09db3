"""One forward of a causal LM for many users, each on top of its own KV cache.

Users whose caches differ in length share one forward: their new positions are right-padded
into one batch with explicit ``position_ids``, so every dense layer runs once for all of them.
Where the caches live, and how attention reads them, is the *layout*:

* ``ragged`` (CPU default): each user owns growable per-layer buffers ``(2, kv_heads,
  capacity, head_dim)``; each user's queries attend straight from them (one SDPA call per user
  and layer: no copy, no padding), through an attention function registered with
  transformers' ``AttentionInterface`` that is plain SDPA for every other use of the model.
* ``pooled`` (GPU default): one preallocated pool per layer ``(2, slots, kv_heads, positions,
  head_dim)``, a slot per user; a forward gathers its users' slots, scatters the new keys and
  values in and back with a handful of kernels per layer whatever the batch size, and
  attends once with a 4-D mask (query i of user b sees keys ``<= past_b + i``).
* ``padded``: per-user buffers copied right-aligned into one scratch buffer (left padding,
  masked by a 2-D attention mask); the plain layout, used with ``torch.compile``.

The caches plug into transformers through its ``Cache`` interface; the model code is the
library's own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import Cache, CacheLayerMixin
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from streamrec.encoding.kv_cache import KVCache, PooledKV, SlotPool, UserKV

RAGGED = "streamrec_ragged"


class _CacheLayer(CacheLayerMixin):
    """One layer of a batched forward, as transformers' ``Cache`` sees it."""

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
        return self.batch.update(self.index, key_states, value_states)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.batch.past_max + query_length, 0

    def get_seq_length(self) -> int:
        return self.batch.past_max

    def get_max_length(self) -> int:
        return -1


class _Batch(ABC):
    """The users of one forward: caches (None: not kept), past and new positions."""

    def __init__(self, caches: Sequence[KVCache | None], pasts: list[int], news: list[int]) -> None:
        self.caches = caches
        self.pasts = pasts
        self.news = news
        self.past_max = max(pasts)
        self.new_max = max(news)

    def model_kwargs(self, device: torch.device) -> dict[str, Any]:
        return {"attention_mask": None}

    @abstractmethod
    def update(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store one layer's new keys/values; return the keys/values attention reads."""

    def _store(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Append each kept user's new keys/values to its own buffers."""
        for row, (kv, past, new) in enumerate(zip(self.caches, self.pasts, self.news, strict=True)):
            if isinstance(kv, UserKV):
                buf = kv.ensure(layer, keys, past + new)
                buf[0, :, past:past + new] = keys[row, :, :new]
                buf[1, :, past:past + new] = values[row, :, :new]


class _RaggedBatch(_Batch):
    def __init__(self, caches: Sequence[KVCache | None], pasts: list[int], news: list[int]) -> None:
        super().__init__(caches, pasts, news)
        self.fresh: tuple[torch.Tensor, torch.Tensor] | None = None
        self._masks: dict[tuple[int, int], torch.Tensor] = {}

    def model_kwargs(self, device: torch.device) -> dict[str, Any]:
        return {"attention_mask": None, "streamrec_batch": self}

    def update(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._store(layer, keys, values)
        self.fresh = (keys, values)  # for users whose cache is not kept
        return keys, values

    def attend(self, layer: int, query: torch.Tensor, scaling: float | None) -> torch.Tensor:
        """Each user's queries against its own keys; ``(batch, new, heads, head_dim)``."""
        assert self.fresh is not None
        keys, values = self.fresh
        out = query.new_zeros(query.shape[0], query.shape[2], query.shape[1], query.shape[3])
        gqa = query.shape[1] != keys.shape[1]
        for row, (kv, past, new) in enumerate(zip(self.caches, self.pasts, self.news, strict=True)):
            if isinstance(kv, UserKV):
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


class _PaddedBatch(_Batch):
    def __init__(self, caches: Sequence[KVCache | None], pasts: list[int], news: list[int],
                 scratch: list[torch.Tensor]) -> None:
        super().__init__(caches, pasts, news)
        self._scratch = scratch  # one reusable buffer for all layers: they run one after another

    def model_kwargs(self, device: torch.device) -> dict[str, Any]:
        mask = torch.zeros(len(self.news), self.past_max + self.new_max, dtype=torch.long)
        for row, (past, new) in enumerate(zip(self.pasts, self.news, strict=True)):
            mask[row, self.past_max - past:self.past_max + new] = 1
        return {"attention_mask": _to_device(mask, device)}

    def update(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._store(layer, keys, values)
        if self.past_max == 0:
            return keys, values
        rows, width = len(self.caches), self.past_max + self.new_max
        need = rows * keys.shape[1] * width * keys.shape[3] * 2
        if (not self._scratch or self._scratch[0].numel() < need or self._scratch[0].dtype != keys.dtype
                or self._scratch[0].device != keys.device):
            self._scratch[:] = [torch.empty(need, dtype=keys.dtype, device=keys.device)]
        out = self._scratch[0][:need].view(2, rows, keys.shape[1], width, keys.shape[3])
        out.zero_()  # padding is masked, but must not hold NaN from old memory
        for row, (kv, past, new) in enumerate(zip(self.caches, self.pasts, self.news, strict=True)):
            start = self.past_max - past
            if isinstance(kv, UserKV):
                out[:, row, :, start:self.past_max + new] = kv.layers[layer][:, :, :past + new]
            else:  # a fresh user whose cache is not kept: nothing past, only this forward's states
                out[0, row, :, start:self.past_max + new] = keys[row, :, :new]
                out[1, row, :, start:self.past_max + new] = values[row, :, :new]
        return out[0], out[1]


class _PooledBatch(_Batch):
    def __init__(self, caches: Sequence[KVCache | None], pasts: list[int], news: list[int], pool: SlotPool,
                 device: torch.device) -> None:
        super().__init__(caches, pasts, news)
        self.pool = pool
        self.width = self.past_max + self.new_max
        assert self.width <= pool.width, "plan_batches(max_width=...) keeps a forward within the slots"
        rows, new_max = len(news), self.new_max
        slots = [kv.slot if isinstance(kv, PooledKV) and kv.slot is not None else 0 for kv in caches]
        past = torch.tensor(pasts)
        positions = past[:, None] + torch.arange(new_max)[None, :]  # where each new position goes
        self.gather = _to_device(torch.tensor(slots), device)
        self.batch_rows = _to_device(torch.arange(rows).repeat_interleave(new_max), device)
        self.batch_positions = _to_device(positions.reshape(-1), device)
        kept = [(row, j) for row, (kv, new) in enumerate(zip(caches, news, strict=True))
                if isinstance(kv, PooledKV) for j in range(new)]
        self.kept = _to_device(torch.tensor([row * new_max + j for row, j in kept], dtype=torch.long), device)
        self.kept_slots = _to_device(torch.tensor([slots[row] for row, _ in kept], dtype=torch.long), device)
        self.kept_positions = _to_device(torch.tensor([pasts[row] + j for row, j in kept], dtype=torch.long), device)
        visible = torch.arange(self.width)[None, None, :] <= positions[:, :, None]  # key j for query i of row b
        self.mask = _to_device(visible[:, None], device)

    def model_kwargs(self, device: torch.device) -> dict[str, Any]:
        return {"attention_mask": self.mask}

    def update(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pool = self.pool.layers[layer]
        batch = pool[:, self.gather, :, :self.width]  # (2, rows, heads, width, dim): a gather, one copy
        new = torch.stack((keys, values), dim=1).permute(0, 3, 1, 2, 4).reshape(-1, 2, keys.shape[1], keys.shape[3])
        batch[:, self.batch_rows, :, self.batch_positions] = new
        if self.kept.numel():
            pool[:, self.kept_slots, :, self.kept_positions] = new[self.kept]
        return batch[0], batch[1]


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t


def make_batch(layout: str, caches: Sequence[KVCache | None], pasts: list[int], news: list[int],
               scratch: list[torch.Tensor], pool: SlotPool | None, device: torch.device) -> _Batch:
    if layout == "ragged":
        return _RaggedBatch(caches, pasts, news)
    if layout == "pooled" and pool is not None and pool.n_slots:
        return _PooledBatch(caches, pasts, news, pool, device)
    return _PaddedBatch(caches, pasts, news, scratch)  # also a pooled layout with nothing kept: no past to read


def _ragged_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      **kwargs: Any) -> tuple[torch.Tensor, None]:
    batch = kwargs.pop("streamrec_batch", None)
    if batch is None:  # any other forward of the model (e.g. item texts): plain SDPA
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    return batch.attend(module.layer_idx, query, scaling), None


def use_ragged_attention(model: Any) -> bool:
    """Switch ``model`` to the ragged attention function (SDPA for every call without a batch).

    Returns False when the model cannot switch (its attention does not go through
    ``AttentionInterface``); use another layout then.
    """
    AttentionInterface.register(RAGGED, _ragged_attention)
    AttentionMaskInterface.register(RAGGED, sdpa_mask)
    if model.config._attn_implementation != RAGGED:
        model.set_attn_implementation(RAGGED)
    return bool(model.config._attn_implementation == RAGGED)


@dataclass
class BatchInputs:
    """Right-padded inputs of one forward: token ids, or input embeddings (item mode)."""

    input_ids: torch.Tensor | None
    inputs_embeds: torch.Tensor | None


def forward_batch(model: Any, n_layers: int, batch: _Batch, inputs: BatchInputs, max_positions: int,
                  device: torch.device) -> torch.Tensor:
    """Run the new positions of ``batch``'s users through ``model`` on top of their cached pasts.

    Kept caches receive the new keys/values. Returns the final hidden states ``(batch,
    max(news), hidden)``; row i is valid for its first ``news[i]`` positions.
    """
    positions = torch.arange(batch.new_max)[None, :] + torch.tensor(batch.pasts)[:, None]
    kwargs: dict[str, Any] = {"position_ids": _to_device(positions.clamp(max=max_positions - 1), device),
                              "cache": Cache(layers=[_CacheLayer(i, batch) for i in range(n_layers)]),
                              "use_cache": True, **batch.model_kwargs(device)}
    if inputs.input_ids is not None:
        output = model(input_ids=_to_device(inputs.input_ids, device), **kwargs)
    else:
        output = model(inputs_embeds=inputs.inputs_embeds, **kwargs)
    for kv, past, new in zip(batch.caches, batch.pasts, batch.news, strict=True):
        if kv is not None:
            kv.length = past + new
    hidden: torch.Tensor = output.last_hidden_state
    return hidden
