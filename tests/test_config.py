from pathlib import Path

import pytest

from streamrec.config import load_settings
from streamrec.errors import ConfigError


def test_sources_in_priority_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "streamrec.yaml"
    config.write_text("window:\n  max_events: 3\n  max_users: 9\nencoder:\n  model: from-yaml\n")
    monkeypatch.setenv("STREAMREC_WINDOW__MAX_EVENTS", "7")
    monkeypatch.setenv("STREAMREC_KAFKA__CONFIG", '{"security.protocol": "SASL_SSL"}')
    settings = load_settings(config, encoder={"model": "from-flag", "device": None})
    assert settings.window.max_events == 7  # env beats YAML
    assert settings.window.max_users == 9  # YAML beats defaults
    assert settings.encoder.model == "from-flag"  # flags beat everything
    assert settings.encoder.device == "auto"  # an unset flag (None) overrides nothing
    assert settings.kafka.config == {"security.protocol": "SASL_SSL"}


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.window.max_events = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides",
    [{"window": {"max_events": 0}}, {"domain": "cooking"}, {"encoder": {"device": "tpu"}},
     {"windw": {"max_events": 1}}, {"retrieval": {"cold_boost": 1.0}, "head": {"cooccurrence_history": 0}}],
)
def test_invalid_settings_raise_config_error(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_settings(**overrides)


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings("/nonexistent.yaml")
