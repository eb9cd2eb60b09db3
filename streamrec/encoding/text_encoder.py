"""Text encoder: a Hugging Face model that turns texts into vectors, in micro-batches.

Causal LMs (GPT-2, Llama, ...) pool the hidden state of the last real token, found from the
attention mask with right padding; encoder models (BERT, MiniLM) mean-pool over real tokens.
Texts are truncated on the left, so the most recent behaviour is always kept.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from streamrec.config import EncoderSettings
from streamrec.errors import ModelLoadError

log = logging.getLogger(__name__)


class TextEncoder(Protocol):
    """What the pipeline needs from an encoder."""

    dim: int

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Float32 CPU tensor of shape ``(len(texts), dim)``."""
        ...


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("encoder.device=cuda but no CUDA device is available")
    return torch.device(setting)


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    if setting != "auto":
        dtype: torch.dtype = getattr(torch, setting)
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _model_location(settings: EncoderSettings) -> tuple[str, str | None]:
    """Split a ``path/to/model.gguf`` into (directory, file) for transformers' ``gguf_file``."""
    if settings.model.endswith(".gguf"):
        path = Path(settings.model)
        return str(path.parent), path.name
    return settings.model, settings.gguf_file


def _is_causal(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


class HFEncoder:
    """A transformers model behind :class:`TextEncoder`.

    >>> encoder = HFEncoder(EncoderSettings(model="path/to/tiny-gpt2"))  # doctest: +SKIP
    >>> encoder.encode(["viewed Heat (Crime)"]).shape  # doctest: +SKIP
    torch.Size([1, 64])
    """

    def __init__(self, settings: EncoderSettings) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.settings = settings
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        location, gguf_file = _model_location(settings)
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        kwargs: dict[str, Any] = {"local_files_only": offline}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
            self.model = AutoModel.from_pretrained(location, dtype=self.dtype, attn_implementation="sdpa",
                                                   **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load encoder model {settings.model!r}: {exc}\n"
                "Supply a local copy: download it where the hub is reachable "
                "(e.g. `huggingface-cli download gpt2 --local-dir ./models/gpt2`) and pass "
                "--encoder ./models/gpt2 (or STREAMREC_ENCODER__MODEL=./models/gpt2); a .gguf file "
                "path works too. Set HF_HUB_OFFLINE=1 to never contact the hub."
            ) from exc
        self.model.to(self.device).eval()
        if self.tokenizer.pad_token is None:  # GPT-2 ships without one; padding is masked anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "left"
        self.causal = _is_causal(self.model.config.model_type)
        pooling = settings.pooling
        self.pooling = ("last" if self.causal else "mean") if pooling == "auto" else pooling
        self.dim = int(self.model.config.hidden_size)
        limit = getattr(self.model.config, "n_positions", None) or getattr(
            self.model.config, "max_position_embeddings", None) or settings.max_length
        self.max_length = min(settings.max_length, int(limit))
        self.tokens_encoded = 0
        log.info("encoder %s on %s/%s, dim=%d, pooling=%s", settings.model, self.device,
                 self.dtype, self.dim, self.pooling)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            return torch.empty(0, self.dim)
        # Length-sorted chunks cut padding; results go back in the callers' order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.dim)
        size = self.settings.batch_size
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            out[chunk] = self._encode_chunk([texts[i] for i in chunk])
        return out

    @torch.inference_mode()
    def _encode_chunk(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        mask = batch["attention_mask"]
        self.tokens_encoded += int(mask.sum())
        pin = self.device.type == "cuda"
        inputs = {k: (v.pin_memory() if pin else v).to(self.device, non_blocking=pin)
                  for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        hidden = self.model(**inputs).last_hidden_state.float()
        mask = inputs["attention_mask"]
        if self.pooling == "last":
            last = mask.sum(dim=1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        return pooled.cpu()
