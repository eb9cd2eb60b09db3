"""Build a tiny GPT-2 with a byte-level BPE tokenizer trained on given texts, saved like a hub model.

Used by the demo and the tests so that nothing needs the model hub: the result loads through
the normal ``from_pretrained`` path. Its weights are random (seeded); it reads text the way
GPT-2 does but knows no language.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from streamrec.catalog import Catalog, Item
from streamrec.text import EN_ACTIONS, ZH_ACTIONS, TextTemplate


def tokenizer_corpus(items: Sequence[Item]) -> list[str]:
    """Texts to train a tiny tokenizer on: every item's text and every action word."""
    template = TextTemplate.english()
    names = [template.render_item(item) for item in items]
    words = list(EN_ACTIONS.values()) + list(ZH_ACTIONS.values())
    catalog = Catalog(items)
    return names + words + [template.recommendation_prefix, " ".join(names[:50])] + [
        TextTemplate.chinese().render_window([], catalog)]


def build_tiny_gpt2(
    texts: Iterable[str],
    out_dir: str | Path,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    vocab_size: int = 2000,
    n_positions: int = 1024,
    seed: int = 0,
) -> Path:
    """Train a tokenizer on ``texts``, build a random GPT-2, save both to ``out_dir``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                  eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                  model_max_length=n_positions)
    tokenizer.save_pretrained(out)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd,
                        n_layer=n_layer, n_head=n_head, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    GPT2Model(config).save_pretrained(out)
    return out
