"""The tiny GPT-2: saved like a hub model, loaded through ``from_pretrained``, seeded, with a working tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, GPT2Model

from streamrec.catalog import Item
from streamrec.synthetic import generate
from streamrec.text import EN_ACTIONS, ZH_ACTIONS, TextTemplate
from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus

ITEMS = generate(n_users=1, n_items=30, seed=0).items


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tokenizer_corpus(ITEMS), tmp_path_factory.mktemp("tiny"), n_layer=1, n_embd=24,
                           n_head=3, vocab_size=600, n_positions=128)


def test_the_corpus_holds_every_item_text_action_word_and_the_prefix() -> None:
    items = [*ITEMS[:3], Item("x", "Kettle", "Kitchen", {"colour": "red"})]
    corpus = tokenizer_corpus(items)
    template = TextTemplate.english()
    assert {template.render_item(item) for item in items} <= set(corpus)
    assert "Kettle (Kitchen) colour: red" in corpus
    assert set(EN_ACTIONS.values()) | set(ZH_ACTIONS.values()) <= set(corpus)
    assert template.recommendation_prefix in corpus


def test_the_model_loads_through_from_pretrained_with_the_given_shape(small_model: Path) -> None:
    assert (small_model / "config.json").is_file() and (small_model / "tokenizer.json").is_file()
    model = AutoModel.from_pretrained(small_model)
    tokenizer = AutoTokenizer.from_pretrained(small_model)
    assert isinstance(model, GPT2Model)
    config = model.config
    assert (config.n_layer, config.n_embd, config.n_head, config.n_positions) == (1, 24, 3, 128)
    assert config.vocab_size == len(tokenizer) <= 600
    assert config.bos_token_id == config.eos_token_id == tokenizer.eos_token_id == tokenizer.bos_token_id
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.model_max_length == 128
    ids = tokenizer("viewed " + ITEMS[0].display(), return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        hidden = model(input_ids=ids).last_hidden_state
    assert hidden.shape == (1, ids.shape[1], 24) and torch.isfinite(hidden).all()


def test_the_tokenizer_learned_the_corpus_and_reads_any_text(small_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(small_model)
    title = ITEMS[4].display()
    ids = tokenizer(title)["input_ids"]
    assert len(ids) < len(title.encode()) / 2  # merges learned from the catalogue: fewer tokens than bytes
    assert tokenizer.decode(ids) == title
    unseen = "推荐给您的商品有：Zeppelin Lamp 🚀"  # byte-level BPE: text it never saw still round-trips
    assert tokenizer.decode(tokenizer(unseen)["input_ids"]) == unseen


def test_weights_are_seeded(tmp_path: Path, small_model: Path) -> None:
    corpus = tokenizer_corpus(ITEMS)
    again = build_tiny_gpt2(corpus, tmp_path / "again", n_layer=1, n_embd=24, n_head=3, vocab_size=600,
                            n_positions=128)
    other = build_tiny_gpt2(corpus, tmp_path / "other", n_layer=1, n_embd=24, n_head=3, vocab_size=600,
                            n_positions=128, seed=1)
    weights = {name: GPT2Model.from_pretrained(path).wte.weight for name, path in
               [("first", small_model), ("again", again), ("other", other)]}
    assert torch.equal(weights["first"], weights["again"])
    assert not torch.equal(weights["first"], weights["other"])
