import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from harness.datasets import load_dataset
from harness.pipeline_model import ZeroEncoder
from harness.quality import SLICES
from harness.report import build_report, markdown, write_report
from harness.suite import (
    MODEL_NAMES,
    PROTOCOLS,
    build_models,
    harness_settings,
    pipeline_encoder,
    run_suite,
)
from streamrec.config import Settings
from streamrec.encoding import HFEncoder
from streamrec.errors import ConfigError

MakeSettings = Callable[..., Settings]


def benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py``, imported as a module (the scripts are not a package)."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_run_scores_every_model_on_every_protocol_and_writes_the_report(
    make_settings: MakeSettings, tiny_encoder: HFEncoder, tmp_path: Path
) -> None:
    dataset = load_dataset("synthetic:n_users=20,n_items=30,seed=3", limit=160)
    settings = make_settings(batch={"max_size": 32}, window={"max_events": 10},
                             head={"replay_sample": 32, "negatives": 64, "steps_per_batch": 1})
    suite = run_suite(dataset, settings, tiny_encoder)
    assert set(suite.protocols) == set(PROTOCOLS)
    for name, result in suite.protocols.items():
        expected = [m for m in MODEL_NAMES if not (name == "prequential-per-event" and m.startswith("streamrec"))
                    and not (name != "leave-last-out" and m.endswith("-warm"))]
        assert list(result.ranks) == expected
        assert {len(r) for r in result.ranks.values()} == {result.scored} and result.scored > 0
    assert suite.protocols["prequential-per-event"].extra["batch_size"] == 1
    assert suite.encoder_cache["hits"] > 0  # the text-only pipeline reuses the full one's item encodings

    report = build_report(suite, {"description": "tiny GPT-2 (test)", "model": "tiny"}, command=["quality.py"])
    paths = write_report(report, suite, tmp_path)
    assert sorted(p.name for p in paths.values()) == [
        "quality-synthetic.json", "quality-synthetic.md", "quality-synthetic.png"]
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    saved = json.loads(paths["json"].read_text())
    prequential = saved["protocols"]["prequential"]
    assert set(prequential["models"]["streamrec"]) >= {"all", *SLICES, "coverage@10", "seconds", "cpu_seconds"}
    assert prequential["pipelines"]["streamrec"]["exclusion_mismatches"] == 0
    assert set(saved["targets"]) == {"all hit@10", "all ndcg@10", "cold_item hit@10", "text beats ids-only",
                                     "replay within 30 min"}
    assert saved["machine"]["cores"] and saved["dataset"]["events"] == 160
    ci = saved["targets"]["all hit@10"]["ci"]  # bootstrapped over users from the run's ranks
    assert ci["groups"] == len(set(suite.protocols["prequential"].groups.tolist())) > 1
    assert ci["difference_low"] <= ci["difference"] <= ci["difference_high"]
    assert "ci" in saved["targets"]["text beats ids-only"]
    text = paths["md"].read_text()
    for name in MODEL_NAMES:
        assert f"| {name} |" in text
    assert "cold items hit / ndcg" in text and "unseen items hit / ndcg" in text
    assert "![hit@10 over the stream](quality-synthetic.png)" in text
    assert "95% CI" in text and "bootstrap over users" in text
    assert "mode `pooled` (a window is its items' vectors averaged, pool_decay 0.9), at most 512 tokens" \
        in text and "texts encoded" in text
    assert markdown(saved) == markdown(report)  # the markdown can be rebuilt from the JSON alone


def test_harness_settings_cover_every_history_and_publish_k_items(make_settings: MakeSettings) -> None:
    dataset = load_dataset("synthetic:n_users=5,n_items=10,seed=1")
    settings = harness_settings(make_settings(window={"max_seen_items": 3}, retrieval={"k": 5}), dataset, k=10)
    longest = max(sum(e.user_id == u for e in dataset.events) for u in {e.user_id for e in dataset.events})
    assert settings.window.max_seen_items == longest and settings.retrieval.k == 10
    assert settings.domain == "ecommerce"


def test_ablations_flip_the_head_switches_and_unknown_names_fail(
    make_settings: MakeSettings, tiny_encoder: HFEncoder
) -> None:
    dataset = load_dataset("synthetic:n_users=5,n_items=10,seed=1")
    models = build_models(["streamrec", "streamrec-ids-only", "streamrec-text-only"], dataset, make_settings(),
                          tiny_encoder)
    heads = [m.pipeline.head.settings for m in models]  # type: ignore[attr-defined]
    assert [(h.text_features, h.id_features) for h in heads] == [(True, True), (False, True), (True, False)]
    with pytest.raises(ConfigError, match="unknown model"):
        build_models(["sasrec"], dataset, make_settings(), tiny_encoder)
    with pytest.raises(ConfigError, match="needs an encoder"):
        build_models(["streamrec"], dataset, make_settings(), None)
    with pytest.raises(ConfigError, match="unknown protocol"):
        run_suite(dataset, make_settings(), None, ["popularity"], ["offline"])


def test_a_head_without_text_reads_zero_vectors_instead_of_encoding(
    make_settings: MakeSettings, tiny_encoder: HFEncoder
) -> None:
    settings = make_settings(encoder={"mode": "item"})
    assert pipeline_encoder(settings, tiny_encoder) == (settings, tiny_encoder)
    ids_only = settings.model_copy(update={"head": settings.head.model_copy(update={"text_features": False})})
    variant, encoder = pipeline_encoder(ids_only, tiny_encoder)
    assert isinstance(encoder, ZeroEncoder) and encoder.dim == tiny_encoder.dim
    assert variant.encoder.mode == "text" and variant.head == ids_only.head


def test_item_and_incremental_modes_run_in_the_harness_without_the_text_cache(
    make_settings: MakeSettings, tiny_encoder: HFEncoder
) -> None:
    dataset = load_dataset("synthetic:n_users=12,n_items=20,seed=2", limit=120)
    for mode in ("item", "incremental"):
        settings = make_settings(batch={"max_size": 32}, encoder={"mode": mode},
                                 head={"replay_sample": 16, "negatives": 32, "steps_per_batch": 1})
        suite = run_suite(dataset, settings, tiny_encoder, ["streamrec", "streamrec-ids-only"], ["prequential"])
        result = suite.protocols["prequential"]
        assert set(result.ranks) == {"streamrec", "streamrec-ids-only"} and result.scored > 0
        assert suite.encoder_cache == {}  # each pipeline keeps its own per-user caches
        assert suite.settings.encoder.mode == mode
        text = markdown(build_report(suite, {"description": "tiny GPT-2 (test)", "model": "tiny"}))
        assert f"mode `{mode}`" in text and "Nothing is shared between pipelines" in text
        assert "texts encoded" not in text
        counts = suite.diagnostics["prequential"]["streamrec"]["window_encoder"]
        assert counts["forwards"] > 0 and counts["appended_positions"] + counts["reset_positions"] > 0
        assert counts["resets"]["new"] > 0  # every user's first window is encoded from scratch
        assert "prequential, streamrec: the window encoder ran" in text
        assert "window_encoder" not in suite.diagnostics["prequential"]["streamrec-ids-only"]  # reads no text


def test_benchmark_command_runs_baselines_without_an_encoder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMREC_HEAD__SEED", "7")  # overrides are part of the command that reproduces a report
    quality = benchmark("quality")
    assert quality.main(["synthetic:n_users=12,n_items=15", "--models", "popularity", "markov",
                         "--protocols", "prequential", "leave-last-out", "--out-dir", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "quality-synthetic.json").read_text())
    assert saved["encoder"]["description"] == "none" and saved["targets"] == {}
    assert "STREAMREC_HEAD__SEED=7" in saved["command"]
    assert saved["settings"]["head"]["seed"] == 7
    assert list(saved["protocols"]) == ["prequential", "leave-last-out"]
    assert "| prequential (batch 64) | markov |" in capsys.readouterr().out


def test_headroom_benchmark_hindsight_knn_scores_at_least_the_streaming_one(tmp_path: Path) -> None:
    headroom = benchmark("headroom")
    assert headroom.main(["synthetic:n_users=40,n_items=30,seed=3", "--batch-size", "16",
                          "--out-dir", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "headroom-synthetic.json").read_text())
    assert [row["batch_size"] for row in saved["rows"]] == [16, 1]
    for row in saved["rows"]:
        # the hindsight model has seen every pair it is scored on, so it can only do better
        assert row[headroom.HINDSIGHT]["hit@10"] > row[headroom.ONLINE]["hit@10"]
    assert "| per event (batch 1) |" in (tmp_path / "headroom-synthetic.md").read_text()
    assert headroom.main(["synthetic:n_users=40,n_items=30,seed=3", "--batch-size", "16", "--alpha", "0.8",
                          "--tag", "asym", "--out-dir", str(tmp_path)]) == 0
    asym = json.loads((tmp_path / "headroom-synthetic-asym.json").read_text())
    assert asym["alpha"] == 0.8 and asym["rows"] != saved["rows"]  # another similarity, other lists
    assert "asymmetric cosine, alpha 0.8" in (tmp_path / "headroom-synthetic-asym.md").read_text()


def test_warm_models_train_on_the_history_before_the_held_out_users_are_ranked(
    make_settings: MakeSettings, tiny_encoder: HFEncoder
) -> None:
    dataset = load_dataset("synthetic:n_users=30,n_items=30,seed=3", limit=400)
    settings = make_settings(batch={"max_size": 32}, head={"replay_sample": 16, "negatives": 32})
    suite = run_suite(dataset, settings, tiny_encoder, ["markov", "streamrec", "streamrec-warm"],
                      ["prequential", "leave-last-out"], warm_epochs=3)
    assert list(suite.protocols["prequential"].ranks) == ["markov", "streamrec"]  # no history to start from
    held_out = suite.protocols["leave-last-out"]
    assert list(held_out.ranks) == ["markov", "streamrec", "streamrec-warm"]
    training = suite.diagnostics["leave-last-out"]["streamrec-warm"]["training"]
    assert 1 <= len(training["epochs"]) <= 3 and training["validation_events"] > 0  # its own split of the history
    assert training["trained_events"] + training["validation_events"] == len(dataset.events) - held_out.scored
    # the warm model ranks from a head trained on the history: it has a version, and lists for every user
    assert suite.diagnostics["leave-last-out"]["streamrec-warm"]["model_version"] > 0
    assert held_out.coverage["streamrec-warm"] > 0


@pytest.mark.slow  # about 20 s on 2 cores
def test_sasrec_peer_learns_the_planted_successors_and_stops_early(tmp_path: Path) -> None:
    sasrec = benchmark("sasrec")
    data = "synthetic:n_users=150,n_items=40,seed=3"
    assert sasrec.main([data, "--epochs", "24", "--eval-every", "2", "--patience", "1",
                        "--out-dir", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "sasrec-synthetic.json").read_text())
    test, curve = saved["test"], saved["curve"]
    # the planted successor, when it is the target, comes first: at random a hit would sit anywhere in the
    # top 10 (ndcg about 0.44 of hit@10); a model that learned nothing would not put it at the top
    assert test["ndcg@10"] > 0.8 * test["hit@10"] > 0.2
    assert test["hit@10_low"] <= test["hit@10"] <= test["hit@10_high"]
    assert saved["best_epoch"] == max(curve, key=lambda row: row["valid_ndcg@10"])["epoch"]
    assert curve[-1]["epoch"] < 24 or saved["best_epoch"] == 24  # early stopping ends it once it stalls
    assert sasrec.main([data, "--epochs", "2", "--shuffle-ties", "0", "--tag", "ties", "--out-dir", str(tmp_path)]) == 0
    assert "same-day ties shuffled (seed 0)" in (tmp_path / "sasrec-synthetic-ties.md").read_text()


def test_sasrec_batches_of_cut_windows_score_as_full_windows() -> None:
    import torch

    headroom = benchmark("headroom")
    torch.manual_seed(0)
    model = headroom.SASRec(20, dim=16, dropout=0.0).eval()
    history = [[3, 1, 4], [1, 5, 9, 2, 6]]
    full = torch.zeros(2, model.length, dtype=torch.long)
    for row, items in enumerate(history):
        full[row, model.length - len(items):] = torch.tensor(items) + 1
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            expected = model.logits(model(full)[:, -1]).numpy()
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    # next_scores cuts the padding to the longest history; positions count from the right, so nothing moves
    assert abs(model.next_scores(history) - expected).max() < 1e-4
    lengths = torch.tensor([1, 7, 3, 7, 2, 9, 4, 4])
    batches = headroom._batches(lengths, 2, torch.Generator().manual_seed(0), pool=4)
    assert sorted(torch.cat(batches).tolist()) == list(range(8))  # every row once
    assert all(len(b) == 2 for b in batches)


def test_cold_boost_benchmark_runs_every_model_at_every_boost_in_one_pass(tmp_path: Path, tiny_model_dir: Path) -> None:
    cold_boost = benchmark("cold_boost")
    config = tmp_path / "small.yaml"
    config.write_text("batch: {max_size: 16}\nwindow: {max_events: 10}\n"
                      "head: {replay_sample: 16, negatives: 32, steps_per_batch: 1}\n")
    assert cold_boost.main(["synthetic:n_users=40,n_items=60,seed=3", "--limit", "600", "--encoder",
                            str(tiny_model_dir), "--config", str(config), "--boosts", "0", "3",
                            "--out-dir", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "cold-boost-synthetic.json").read_text())
    assert set(saved["models"]) == {f"{f} @{b}" for f in cold_boost.FAMILIES for b in ("0", "3")}
    assert [c["boost"] for c in saved["comparisons"]] == [0.0, 3.0] and saved["cold_events"] > 0
    for family in cold_boost.FAMILIES:  # exposure lifts cold items into the lists
        plain, boosted = (saved["models"][f"{family} @{b}"]["cold_item"]["hit@10"] for b in ("0", "3"))
        assert boosted > plain, family
    assert (tmp_path / "cold-boost-synthetic.png").stat().st_size > 0
    assert "| streamrec | 3 |" in (tmp_path / "cold-boost-synthetic.md").read_text()


def test_ablation_benchmark_pairs_two_pipelines_event_by_event(tmp_path: Path, tiny_model_dir: Path) -> None:
    ablation = benchmark("ablation")
    config = tmp_path / "small.yaml"
    config.write_text("batch: {max_size: 16}\nwindow: {max_events: 10}\n"
                      "head: {replay_sample: 16, negatives: 32, steps_per_batch: 1}\n")
    common = ["synthetic:n_users=40,n_items=60,seed=3", "--limit", "500", "--encoder", str(tiny_model_dir),
              "--config", str(config), "--out-dir", str(tmp_path)]

    def rows(tag: str) -> dict[tuple[str, str], dict[str, float]]:
        saved = json.loads((tmp_path / f"ablation-synthetic-{tag}.json").read_text())
        return {(r["scope"], r["metric"]): r for r in saved["rows"]}

    # the same settings on both sides: identical lists, so every difference and interval is zero
    assert ablation.main([*common, "--set", "head.seed=0", "--tag", "same"]) == 0
    same = rows("same")
    scopes = {scope for scope, _ in same}
    actions = {scope for scope in scopes if scope.startswith("action:")}
    assert scopes - actions == {"all", "cold_item", "new_user", "long_tail", "unseen_item"}
    # the synthetic shop's events are of several kinds: one slice each, together every scored event
    assert len(actions) > 1
    assert sum(same[(a, "hit@10")]["events"] for a in actions) == same[("all", "hit@10")]["events"]
    for row in same.values():
        assert row["streamrec"] == row["variant"] and row["difference_low"] == row["difference_high"] == 0
    # without the co-occurrence the variant is another model: the pairing shows it
    assert ablation.main([*common, "--set", "head.cooccurrence_history=0", "--tag", "head-only"]) == 0
    head_only = rows("head-only")[("all", "hit@10")]
    assert head_only["streamrec"] == same[("all", "hit@10")]["streamrec"] != head_only["variant"]
    assert head_only["difference_low"] <= head_only["difference"] <= head_only["difference_high"]
    assert "| all | hit@10 |" in (tmp_path / "ablation-synthetic-head-only.md").read_text()
    with pytest.raises(SystemExit, match=r"head\.nope=1"):
        ablation.main([*common, "--set", "head.nope=1"])


def test_ablation_settings_take_new_action_weights_but_not_unknown_fields(make_settings: MakeSettings) -> None:
    ablation = benchmark("ablation")
    settings = make_settings(domain="video")
    variant = ablation.variant_settings(settings, ["actions.like=1", "head.dim=32"])
    assert variant.actions == {"like": 1.0} and variant.head.dim == 32
    assert settings.actions == {} and settings.head.dim != 32  # the original is untouched
    with pytest.raises(SystemExit, match=r"retrieval\.like=1"):
        ablation.variant_settings(settings, ["retrieval.like=1"])
    with pytest.raises(SystemExit, match=r"expected SECTION\.FIELD=VALUE"):
        ablation.variant_settings(settings, ["actions=1"])
