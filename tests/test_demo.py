"""``prepare_demo``: the demo's log, catalogue and model, written once (the CLI's ``demo`` replays them)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from transformers import AutoModel, AutoTokenizer

from streamrec.catalog import read_items
from streamrec.demo import prepare_demo
from streamrec.events import ActionVocabulary
from streamrec.sources import read_log
from streamrec.synthetic import generate


def test_writes_the_seeded_log_and_catalogue_and_a_loadable_model(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    log_path, catalog_path, model_dir = prepare_demo(tmp_path, 12, 20, 3, "en", console)
    expected = generate(n_users=12, n_items=20, seed=3)
    assert (log_path, catalog_path, model_dir) == (tmp_path / "events.csv", tmp_path / "items.csv",
                                                   tmp_path / "tiny-gpt2-en")
    assert read_log(log_path, ActionVocabulary.for_domain("ecommerce")).events == expected.events
    assert list(read_items(catalog_path)) == expected.items
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert AutoModel.from_pretrained(model_dir).config.vocab_size == len(tokenizer)
    title = expected.items[0].display()
    assert tokenizer.decode(tokenizer(title)["input_ids"]) == title
    shown = console.export_text()
    assert f"generated {len(expected.events)} events from 12 users over 20 items" in shown
    assert f"built a tiny random GPT-2 in {model_dir}" in shown


def test_a_second_run_keeps_the_model_and_rewrites_the_data(tmp_path: Path) -> None:
    _, _, model_dir = prepare_demo(tmp_path, 5, 10, 0, "en", Console(quiet=True))
    weights = next(model_dir.glob("*.safetensors"))
    before = weights.stat().st_mtime_ns
    console = Console(record=True, width=200)
    log_path, _, again = prepare_demo(tmp_path, 8, 10, 1, "en", console)
    assert again == model_dir and weights.stat().st_mtime_ns == before  # not rebuilt
    assert "built a tiny" not in console.export_text()
    users = {e.user_id for e in read_log(log_path, ActionVocabulary.for_domain("ecommerce")).events}
    assert len(users) == 8  # the log is the new run's


def test_chinese_demo_has_its_own_model_and_chinese_titles(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    _, catalog_path, model_dir = prepare_demo(tmp_path, 4, 6, 0, "zh", console)
    assert model_dir.name == "tiny-gpt2-zh" and (model_dir / "config.json").is_file()
    assert [item.title for item in read_items(catalog_path)] == [f"商品{i}" for i in range(6)]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.decode(tokenizer("商品3")["input_ids"]) == "商品3"
