import harness
from harness import MODEL_NAMES, StreamingModel, build_models, load_dataset


def test_exported_names() -> None:
    assert set(harness.__all__) == {
        "MODEL_NAMES", "PACKAGED_LOGS", "PRETRAINED", "PROTOCOLS", "BiasedMF", "CachedEncoder", "CooccurrenceKNN",
        "Dataset",
        "LeaveLastOutSplit", "Markov", "PipelineModel", "Popularity", "ProtocolResult", "RecentPopularity",
        "ScoringModel", "StreamingModel", "SuiteResult", "ZeroEncoder", "build_models", "build_report",
        "fetch_log", "fetch_pretrained", "load_dataset", "rank_metrics", "resolve_encoder", "rolling_hit_rate",
        "run_leave_last_out", "run_prequential", "run_suite", "shuffle_ties", "sliced_metrics", "split_leave_last_out",
        "top_k", "write_report",
    }
    for name in harness.__all__:
        assert getattr(harness, name) is not None


def test_every_baseline_obeys_the_model_protocol() -> None:
    baselines = [n for n in MODEL_NAMES if not n.startswith("streamrec")]
    from streamrec.config import load_settings

    models = build_models(baselines, load_dataset("synthetic:n_users=3,n_items=5"), load_settings(), None)
    assert [m.name for m in models] == baselines
    assert all(isinstance(m, StreamingModel) for m in models)
