import streamrec


def test_exported_names() -> None:
    assert set(streamrec.__all__) == {
        "ActionVocabulary", "BatchResult", "Catalog", "CatalogError", "CheckpointError", "ConfigError",
        "DecodeError", "Event", "EventError", "Item", "MicroBatcher", "ModelLoadError", "Pipeline",
        "Recommendation", "RecommendedItem", "SchemaError", "Settings", "SourceError", "StreamrecError",
        "TextTemplate", "UnknownActionError", "WindowStore", "__version__", "decode_event", "encode_event",
        "load_settings", "replay", "replay_files", "EventBatch", "ListSource", "Runner", "Sink", "Source",
        "RecommendationError", "UsageError",
    }
    for name in streamrec.__all__:
        assert getattr(streamrec, name) is not None


def test_every_error_is_a_streamrec_error_with_a_reason() -> None:
    for name in ("CatalogError", "CheckpointError", "ConfigError", "DecodeError", "EventError",
                 "ModelLoadError", "RecommendationError", "SchemaError", "SourceError", "UnknownActionError",
                 "UsageError"):
        error = getattr(streamrec, name)
        assert issubclass(error, streamrec.StreamrecError) and error.reason
