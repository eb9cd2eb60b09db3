"""Helpers for the encoding tests: a user's events, and reference vectors computed by hand.

Imported by the tests as ``from encodingkit import ...`` (this directory is on ``sys.path`` under
pytest's default import mode); the fixtures live in ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from streamrec.catalog import Catalog
from streamrec.encoding import HFEncoder, IncrementalWindowEncoder
from streamrec.events import Event
from streamrec.synthetic import SyntheticLog
from streamrec.text import TextTemplate

TEMPLATE = TextTemplate.english()


def user_events(log: SyntheticLog, n: int, user: str = "u", start: int = 0) -> list[Event]:
    """``n`` events of one user with the log's items and actions, 1 s apart."""
    return [Event(user, e.item_id, e.action, 1_000 * (start + i), f"{user}-{start + i}")
            for i, e in enumerate(log.events[start:start + n])]


@torch.inference_mode()
def reference(encoder: HFEncoder, catalog: Catalog, events: Sequence[Event]) -> torch.Tensor:
    """Plain transformers forward over the window's chunked ids; last real token's hidden state."""
    ids: list[int] = []
    for i in range(len(events)):
        before = TEMPLATE.render_window(events[:i], catalog) if i else ""
        chunk = TEMPLATE.render_window(events[:i + 1], catalog)[len(before):]
        ids += encoder.tokenizer(chunk, add_special_tokens=i == 0)["input_ids"]
    hidden = encoder.model(input_ids=torch.tensor([ids])).last_hidden_state
    return hidden[0, -1].float()


@torch.inference_mode()
def item_reference(encoder: HFEncoder, catalog: Catalog, events: Sequence[Event]) -> torch.Tensor:
    """Item mode by hand: mean input embedding of the item text plus of the action word, per event."""
    wte = encoder.model.get_input_embeddings().weight

    def mean(text: str) -> torch.Tensor:
        return wte[torch.tensor(encoder.tokenizer(text, add_special_tokens=False)["input_ids"])].mean(dim=0)

    rows = [mean(TEMPLATE.item_name(e.item_id, catalog)) + mean(TEMPLATE.action_word(e.action)) for e in events]
    return encoder.model(inputs_embeds=torch.stack(rows)[None]).last_hidden_state[0, -1].float()


def view_events(encoder: IncrementalWindowEncoder, user: str) -> list[Event]:
    return [Event(user, item, action, ts, eid) for ts, eid, item, action in encoder.view(user)]


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
