from pathlib import Path

import pytest
import torch

from streamrec.config import EncoderSettings
from streamrec.encoding import HFEncoder, resolve_dtype
from streamrec.errors import ModelLoadError


def test_loads_through_from_pretrained_and_pools_the_last_real_token(tiny_encoder: HFEncoder) -> None:
    assert tiny_encoder.causal and tiny_encoder.pooling == "last" and tiny_encoder.dim == 64
    assert tiny_encoder.tokenizer.pad_token is not None and tiny_encoder.tokenizer.padding_side == "right"
    texts = ["viewed Wireless Headphones 3 (Electronics)",
             "viewed Pocket Atlas 7 (Books); purchased Mini Kite 9 (Toys)"]
    batched = tiny_encoder.encode(texts)
    alone = torch.cat([tiny_encoder.encode([t]) for t in texts])
    assert batched.shape == (2, 64) and batched.dtype == torch.float32
    # padding must not leak into the pooled vector: batched == one at a time
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


def test_mean_pooling_option_differs_from_last_token(tiny_model_dir: Path, tiny_encoder: HFEncoder) -> None:
    mean = HFEncoder(EncoderSettings(model=str(tiny_model_dir), pooling="mean"))
    text = ["viewed Pocket Atlas 7 (Books); purchased Mini Kite 9 (Toys)"]
    assert not torch.allclose(mean.encode(text), tiny_encoder.encode(text))


def test_long_texts_keep_the_most_recent_tokens(tiny_model_dir: Path) -> None:
    encoder = HFEncoder(EncoderSettings(model=str(tiny_model_dir), max_length=8))
    recent = "purchased Mini Kite 9 (Toys)"
    old = "viewed Pocket Atlas 7 (Books); " * 20
    torch.testing.assert_close(encoder.encode([old + recent]), encoder.encode(["xyz " * 30 + recent]))


def test_order_is_kept_across_length_sorted_chunks(tiny_model_dir: Path) -> None:
    encoder = HFEncoder(EncoderSettings(model=str(tiny_model_dir), batch_size=2))
    texts = ["a b c d e f g", "a", "a b c", "a b", "a b c d"]
    expected = torch.cat([encoder.encode([t]) for t in texts])
    torch.testing.assert_close(encoder.encode(texts), expected, rtol=1e-4, atol=1e-5)
    assert encoder.encode([]).shape == (0, 64)


def test_missing_model_names_it_and_says_how_to_supply_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"(?s)'gpt2-not-here'.*--encoder"):
        HFEncoder(EncoderSettings(model="gpt2-not-here"))


def test_missing_local_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="cannot load encoder model"):
        HFEncoder(EncoderSettings(model=str(tmp_path / "nothing")))


def test_dtype_choice() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
