"""Shared fixtures: a tiny GPT-2 built once per run, loaded through ``from_pretrained``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from transformers.utils import logging as hf_logging

from streamrec.config import Settings, load_settings
from streamrec.encoding import HFEncoder
from streamrec.synthetic import SyntheticLog, generate
from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus

hf_logging.disable_progress_bar()
# Tests that want the /metrics endpoint ask for a free port; the rest must not bind one.
os.environ["STREAMREC_METRICS_ADDRESS"] = ""


@pytest.fixture(scope="session")
def synthetic_log() -> SyntheticLog:
    return generate(n_users=120, n_items=80, events_per_user=(8, 20), seed=7)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, synthetic_log: SyntheticLog) -> Path:
    chinese = generate(n_users=2, n_items=80, language="zh").items
    corpus = tokenizer_corpus(synthetic_log.items) + tokenizer_corpus(chinese)
    return build_tiny_gpt2(corpus, tmp_path_factory.mktemp("tiny-gpt2"), vocab_size=1200)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path) -> HFEncoder:
    return HFEncoder(load_settings(encoder={"model": str(tiny_model_dir)}).encoder)


@pytest.fixture()
def make_settings(tiny_model_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        encoder = {"model": str(tiny_model_dir), **overrides.pop("encoder", {})}
        return load_settings(encoder=encoder, **overrides)

    return make
