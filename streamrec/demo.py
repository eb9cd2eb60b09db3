"""`streamrec demo`: a synthetic shop, a tiny GPT-2, and nothing to download."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from streamrec.synthetic import generate, write_events, write_items
from streamrec.tinymodel import build_tiny_gpt2, tokenizer_corpus


def prepare_demo(out_dir: Path, users: int, items: int, seed: int, language: str,
                 console: Console) -> tuple[Path, Path, Path]:
    """Write the demo's log and catalogue and build its model (once); returns their paths."""
    log = generate(n_users=users, n_items=items, seed=seed, language=language)
    log_path = write_events(log.events, out_dir / "events.csv")
    catalog_path = write_items(log.items, out_dir / "items.csv")
    console.print(f"generated {len(log.events)} events from {users} users over {items} items "
                  f"(planted: most users who take an item take its successor next)")
    model_dir = out_dir / f"tiny-gpt2-{language}"
    if not (model_dir / "config.json").exists():
        build_tiny_gpt2(tokenizer_corpus(log.items), model_dir)
        console.print(f"built a tiny random GPT-2 in {model_dir} (the demo needs no model hub)")
    return log_path, catalog_path, model_dir
