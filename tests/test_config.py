import re
from pathlib import Path

import pytest
import yaml

from streamrec.config import Settings, load_settings
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


README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_settings_file_is_valid_and_its_table_names_real_settings() -> None:
    """The README's example `streamrec.yaml` loads as it stands, and every `section.field` its
    settings table names exists (a `*` or a field list after `/` names several)."""
    text = README.read_text(encoding="utf-8")
    block = text[text.index("# streamrec.yaml"):]
    example = yaml.safe_load(block[:block.index("```")])
    assert Settings.model_validate(example).kafka.role == "single"
    named = re.findall(r"^\| `([a-z_]+)\.([a-z_*]+)`", text, flags=re.MULTILINE)
    assert len(named) > 20
    fields = {name: type(section).model_fields for name, section in Settings().__dict__.items()
              if hasattr(type(section), "model_fields")}
    for section, field in named:
        assert section in fields, section
        if not field.endswith("*"):
            assert field in fields[section], f"{section}.{field}"
