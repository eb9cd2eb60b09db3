"""The scoring head: a two-tower model on top of frozen encoder vectors, trained on the stream.

* User side: the encoder's vector of the user's window text -> LayerNorm -> 2-layer MLP,
  plus a position-weighted sum over the user's ``context_items`` most recent items (each the
  projection of its text vector plus a learned context-id embedding). With ``sequence:
  attention``, plus one pre-norm self-attention block over those items (learned positions, zero
  at first), read at the newest: which earlier items matter depends on the newest, as in
  SASRec; the items enter as text, so a new item in the sequence is read from its title.
* Item side: the encoder's vector of the item's text -> LayerNorm -> linear, **plus** a learned
  item-id embedding (zero at first, so a brand-new item scores from its text alone), plus a
  learned item bias (popularity).
* Score: dot product + bias.

Training: every positive event is an example (the user's window before the event -> the
item). The loss is sampled softmax over the batch's positive items (in-batch negatives) plus
``negatives`` items drawn uniformly from the catalogue; with a catalogue smaller than that it
is the full softmax. Each update mixes in examples from a replay buffer of recent events and
takes ``steps_per_batch`` Adam steps. Every update bumps ``version``. For a large catalogue
(``sparse_ids``), the id tables get sparse gradients and lazy Adam (SparseAdam: only the rows a
batch touched move, each with its own moments), so a step costs the batch, not the catalogue;
the sampled softmax is the same.

Checkpoints are safetensors (weights, Adam moments, replay buffer) with the model version and
item ids in the metadata; never pickle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from streamrec.checkpoint import checked, load_tensors, save_tensors
from streamrec.config import HeadSettings
from streamrec.errors import CheckpointError

HEAD_FORMAT = "streamrec-head-1"
_GROWABLE = ("item_ids.weight", "item_bias.weight", "context_ids.weight")


class RecentAttention(nn.Module):
    """One transformer block over a user's recent items (newest first), read at the newest."""

    def __init__(self, dim: int, context_items: int, heads: int = 2) -> None:
        super().__init__()
        self.positions = nn.Parameter(torch.zeros(context_items, dim))
        self.block = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                                activation="gelu", batch_first=True, norm_first=True)

    def forward(self, context: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """``context``: (batch, n, dim), zero where ``present`` (batch, n) is False."""
        padding = ~present
        padding[:, 0] = False  # a user with no items yet attends to one zero row, not to nothing (NaN)
        out = self.block(context + self.positions[: context.shape[1]], src_key_padding_mask=padding)
        return out[:, 0] * present[:, :1]


class TwoTower(nn.Module):
    def __init__(self, enc_dim: int, dim: int, capacity: int, context_items: int,
                 text_features: bool = True, id_features: bool = True, sparse_ids: bool = False,
                 sequence: str = "weighted") -> None:
        super().__init__()
        self.sequence = RecentAttention(dim, context_items) if sequence == "attention" else None
        self.text_features = text_features
        self.id_features = id_features
        self.user_tower = nn.Sequential(nn.LayerNorm(enc_dim), nn.Linear(enc_dim, 2 * dim), nn.GELU(),
                                        nn.Linear(2 * dim, dim))
        self.item_text = nn.Sequential(nn.LayerNorm(enc_dim), nn.Linear(enc_dim, dim))
        self.item_ids = nn.Embedding(capacity, dim, sparse=sparse_ids)
        self.item_bias = nn.Embedding(capacity, 1, sparse=sparse_ids)
        # the user's most recent items, as context: their text and a separate id embedding
        self.context_text = nn.Sequential(nn.LayerNorm(enc_dim), nn.Linear(enc_dim, dim))
        self.context_ids = nn.Embedding(capacity, dim, sparse=sparse_ids)
        self.context_weight = nn.Parameter(1.0 / torch.arange(1, context_items + 1, dtype=torch.float))
        nn.init.zeros_(self.item_ids.weight)
        nn.init.zeros_(self.item_bias.weight)
        if not text_features:  # ids only: context ids must start non-zero or nothing learns
            nn.init.normal_(self.context_ids.weight, std=0.1)
            nn.init.normal_(self.item_ids.weight, std=0.1)
        else:
            nn.init.zeros_(self.context_ids.weight)

    def users(self, window_vectors: torch.Tensor, recent: torch.Tensor, item_text: torch.Tensor) -> torch.Tensor:
        """``recent``: (batch, context_items) item indices, newest first, -1 for none."""
        present = recent >= 0
        index = recent.clamp(min=0)
        context = self.contexts(item_text[index], index) * present.unsqueeze(-1)
        weights = self.context_weight[: recent.shape[1]].view(1, -1, 1)
        users = (context * weights).sum(dim=1)
        if self.sequence is not None:
            users = users + self.sequence(context, present)
        return users + self.user_tower(window_vectors) if self.text_features else users

    def contexts(self, text_vectors: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Items as context (what having taken them says about what comes next)."""
        return self._combine(self.context_text, self.context_ids, text_vectors, index)

    def items(self, text_vectors: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vectors = self._combine(self.item_text, self.item_ids, text_vectors, index)
        return vectors, self.item_bias(index).squeeze(-1)

    def _combine(self, text: nn.Module, ids: nn.Embedding, text_vectors: torch.Tensor,
                 index: torch.Tensor) -> torch.Tensor:
        if not self.id_features:
            return text(text_vectors)
        if not self.text_features:
            return ids(index)
        return text(text_vectors) + ids(index)


class ReplayBuffer:
    """A ring buffer of recent examples: window vector, recent items, target item, weight."""

    def __init__(self, size: int, enc_dim: int, context_items: int) -> None:
        self.size = size
        self.vectors = torch.zeros(size, enc_dim)
        self.recent = torch.full((size, context_items), -1, dtype=torch.long)
        self.items = torch.zeros(size, dtype=torch.long)
        self.weights = torch.zeros(size)
        self.count = 0  # total ever added; position = count % size

    def fields(self) -> dict[str, torch.Tensor]:
        return {"vectors": self.vectors, "recent": self.recent, "items": self.items, "weights": self.weights}

    def add(self, batch: Example) -> None:
        if self.size == 0:
            return
        n_total = len(batch.items)
        for start in range(0, n_total, self.size):
            n = min(self.size, n_total - start)
            slots = (torch.arange(n) + self.count) % self.size
            for name, column in self.fields().items():
                column[slots] = getattr(batch, name)[start:start + n]
            self.count += n

    def sample(self, n: int, generator: torch.Generator) -> Example | None:
        filled = min(self.count, self.size)
        if filled == 0 or n == 0:
            return None
        pick = torch.randint(filled, (min(n, filled),), generator=generator)
        return Example(**{name: column[pick] for name, column in self.fields().items()})


@dataclass
class Example:
    """Training examples: the window as it was before the event, and the event's item."""

    vectors: torch.Tensor  # (n, enc_dim) encoder vectors of the windows
    recent: torch.Tensor  # (n, context_items) recent item indices, newest first, -1 padded
    items: torch.Tensor  # (n,) target item indices
    weights: torch.Tensor  # (n,) action weights

    @staticmethod
    def concat(parts: list[Example]) -> Example:
        return Example(*(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Example)))


class HeadOptimizer:
    """Adam on every weight; with ``sparse_ids``, Adam on the dense weights and SparseAdam on the
    id tables (which then have sparse gradients). One interface over both for the head."""

    def __init__(self, model: TwoTower, learning_rate: float, sparse_ids: bool) -> None:
        tables = [getattr(model, name.split(".")[0]).weight for name in _GROWABLE]
        if sparse_ids:
            dense = [p for p in model.parameters() if all(p is not t for t in tables)]
            self.parts: list[torch.optim.Optimizer] = [torch.optim.Adam(dense, lr=learning_rate),
                                                       torch.optim.SparseAdam(tables, lr=learning_rate)]
        else:
            self.parts = [torch.optim.Adam(model.parameters(), lr=learning_rate)]

    @property
    def state(self) -> dict[torch.Tensor, dict[str, object]]:
        """Every parameter's optimizer state (read-only view; :meth:`set_state` writes)."""
        return {param: state for part in self.parts for param, state in part.state.items()}

    def _owner(self, param: torch.Tensor) -> torch.optim.Optimizer:
        return next(part for part in self.parts if any(p is param for g in part.param_groups for p in g["params"]))

    def set_state(self, param: torch.Tensor, state: dict[str, object]) -> None:
        owner = self._owner(param)
        if isinstance(owner, torch.optim.SparseAdam) and "step" in state:
            state["step"] = int(torch.as_tensor(state["step"]))  # SparseAdam counts in a plain int
        owner.state[param] = state

    def replace(self, old: torch.Tensor, new: torch.Tensor) -> None:
        """``new`` takes ``old``'s place and state (a grown table)."""
        owner = self._owner(old)
        state = owner.state.pop(old, {})
        for group in owner.param_groups:
            group["params"] = [new if p is old else p for p in group["params"]]
        if state:
            self.set_state(new, state)

    def clear_state(self) -> None:
        for part in self.parts:
            part.state.clear()

    def set_lr(self, learning_rate: float) -> None:
        for part in self.parts:
            for group in part.param_groups:
                group["lr"] = learning_rate

    def zero_grad(self) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=True)

    def step(self) -> None:
        for part in self.parts:
            part.step()


class OnlineHead:
    """The two-tower model plus its optimizer, replay buffer and version."""

    def __init__(self, enc_dim: int, settings: HeadSettings, capacity: int = 1024, sparse_ids: bool = False) -> None:
        self.settings = settings
        self.enc_dim = enc_dim
        torch.manual_seed(settings.seed)
        self.model = TwoTower(enc_dim, settings.dim, capacity, settings.context_items,
                              settings.text_features, settings.id_features, sparse_ids, settings.sequence)
        self.optimizer = HeadOptimizer(self.model, settings.learning_rate, sparse_ids)
        self.replay = ReplayBuffer(settings.replay_size, enc_dim, settings.context_items)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.version = 0
        self.last_loss = float("nan")
        self.lr_scale = 1.0
        self.recorded: list[Example] | None = None  # when a list: every new example learned is appended (training)

    @property
    def capacity(self) -> int:
        return self.model.item_ids.num_embeddings

    def ensure_capacity(self, n_items: int) -> None:
        """Grow the id tables (and their Adam moments) to hold ``n_items`` rows."""
        if n_items <= self.capacity:
            return
        new_capacity = max(n_items, 2 * self.capacity)
        for name in _GROWABLE:
            module = getattr(self.model, name.split(".")[0])
            old = module.weight
            grown = nn.Parameter(torch.zeros(new_capacity, old.shape[1]))
            grown.data[: old.shape[0]] = old.data
            state = self.optimizer.state.get(old, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == old.shape:
                    padded = torch.zeros_like(grown.data)
                    padded[: old.shape[0]] = value
                    state[key] = padded
            self.optimizer.replace(old, grown)
            module.weight = grown
            module.num_embeddings = new_capacity

    def learn(self, new: Example, item_text: torch.Tensor) -> float:
        """One update on new examples (plus replay). ``item_text`` is the (n_items, enc_dim) matrix."""
        n_items = item_text.shape[0]
        self.ensure_capacity(n_items)
        settings = self.settings
        losses = []
        self.optimizer.set_lr(settings.learning_rate * self.lr_scale)
        for _ in range(settings.steps_per_batch):
            old = self.replay.sample(settings.replay_sample, self.generator)
            batch = Example.concat([new, old]) if old is not None else new
            if settings.negatives >= n_items:  # the full softmax
                negatives = torch.arange(n_items)
            else:
                negatives = torch.randint(n_items, (settings.negatives,), generator=self.generator)
            candidates, target = torch.unique(torch.cat([batch.items, negatives]), return_inverse=True)
            target = target[: len(batch.items)]
            users = self.model.users(batch.vectors, batch.recent, item_text)
            item_vectors, bias = self.model.items(item_text[candidates], candidates)
            logits = users @ item_vectors.T + bias
            loss_each = nn.functional.cross_entropy(logits, target, reduction="none")
            loss = (loss_each * batch.weights).sum() / batch.weights.sum().clamp(min=1e-6)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.replay.add(new)
        if self.recorded is not None:
            self.recorded.append(new)
        self.version += 1
        self.last_loss = sum(losses) / len(losses)
        return self.last_loss

    @torch.no_grad()
    def item_vectors(self, item_text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.ensure_capacity(item_text.shape[0])
        return self.model.items(item_text, torch.arange(item_text.shape[0]))

    @torch.no_grad()
    def context_vectors(self, item_text: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.model.contexts(item_text[index], index)

    @torch.no_grad()
    def user_vectors(self, window_vectors: torch.Tensor, recent: torch.Tensor,
                     item_text: torch.Tensor) -> torch.Tensor:
        return self.model.users(window_vectors, recent, item_text)

    # -- checkpoints -------------------------------------------------------------------------

    def save(self, path: str | Path, item_ids: list[str]) -> None:
        """Write a safetensors checkpoint atomically (temp file + rename)."""
        self.ensure_capacity(len(item_ids))  # a row for every item named, learned from or not yet
        tensors = {f"model.{k}": v.detach().contiguous() for k, v in self.model.state_dict().items()}
        names = {id(p): n for n, p in self.model.named_parameters()}
        for param, state in self.optimizer.state.items():
            for key, value in state.items():
                tensors[f"adam.{names[id(param)]}.{key}"] = torch.as_tensor(value).detach().clone()
        filled = min(self.replay.count, self.replay.size)
        for name, column in self.replay.fields().items():
            tensors[f"replay.{name}"] = column[:filled].contiguous()
        metadata = {"version": str(self.version), "enc_dim": str(self.enc_dim), "dim": str(self.settings.dim),
                    "sequence": self.settings.sequence,
                    "replay_count": str(self.replay.count), "item_ids": json.dumps(item_ids)}
        save_tensors(path, tensors, HEAD_FORMAT, metadata)

    @checked("head checkpoint")
    def load(self, path: str | Path, index_of: Callable[[str], int] | None = None) -> list[str]:
        """Load a checkpoint; returns the item ids in the checkpoint's row order.

        Rows are moved to the indices ``index_of`` gives (the live catalogue's), so a checkpoint
        stays valid when the catalogue was loaded in another order.
        """
        tensors, metadata = load_tensors(path, HEAD_FORMAT, "head checkpoint")
        if int(metadata["enc_dim"]) != self.enc_dim or int(metadata["dim"]) != self.settings.dim:
            raise CheckpointError(
                f"{path} was trained for encoder dim {metadata['enc_dim']} / head dim {metadata['dim']}, "
                f"not {self.enc_dim} / {self.settings.dim}: use the same encoder and head.dim")
        sequence = metadata.get("sequence", "weighted")  # checkpoints before the setting had no attention
        if sequence != self.settings.sequence:
            raise CheckpointError(f"{path} was trained with head.sequence {sequence!r}, not "
                                  f"{self.settings.sequence!r}: use the same setting or train a new head")
        item_ids: list[str] = json.loads(metadata["item_ids"])
        rows = torch.tensor([index_of(i) for i in item_ids] if index_of else range(len(item_ids)),
                            dtype=torch.long)
        capacity = max(int(rows.max()) + 1 if len(rows) else 0, self.capacity)
        self.ensure_capacity(capacity)
        own = self.model.state_dict()
        for key, value in own.items():
            saved = tensors[f"model.{key}"]
            if key in _GROWABLE:
                value.zero_()
                value[rows] = saved[: len(rows)]
            else:
                value.copy_(saved)
        params = dict(self.model.named_parameters())
        self.optimizer.clear_state()
        loaded: dict[torch.Tensor, dict[str, object]] = {}
        for key, value in tensors.items():
            if not key.startswith("adam."):
                continue
            pname, slot = key[len("adam."):].rsplit(".", 1)
            param = params[pname]
            if pname in _GROWABLE and value.dim() > 0:
                placed = torch.zeros_like(param.data)
                placed[rows] = value[: len(rows)]
                value = placed
            loaded.setdefault(param, {})[slot] = value
        for weight, state in loaded.items():
            self.optimizer.set_state(weight, state)
        filled = min(len(tensors["replay.items"]), self.replay.size)
        self.replay.count = int(metadata["replay_count"])
        remap = torch.cat([rows, torch.tensor([-1])])  # index -1 (no item) stays -1
        for name, column in self.replay.fields().items():
            saved = tensors[f"replay.{name}"][:filled]
            column[:filled] = remap[saved] if name in ("items", "recent") else saved
        self.version = int(metadata["version"])
        return item_ids
