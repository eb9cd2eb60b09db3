import json
from pathlib import Path

from typer.testing import CliRunner

from streamrec.cli import app

runner = CliRunner()


def test_generate_then_replay_from_the_command_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", str(tmp_path), "--users", "40", "--items", "30", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [
        "replay", str(tmp_path / "events.jsonl"), "--catalog", str(tmp_path / "items.csv"),
        "--encoder", str(tiny_model_dir), "--out", str(tmp_path / "recs.jsonl"),
        "--metrics-out", str(tmp_path / "metrics.json"), "--batch-size", "16", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "hit@10" in result.output and "events_per_second" in result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["events"] > 0 and metrics["encoder"] == str(tiny_model_dir)
    assert (tmp_path / "recs.jsonl").read_text().count("\n") == metrics["recommendations"]


def test_chinese_template_from_the_command_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    runner.invoke(app, ["generate", str(tmp_path), "--users", "10", "--items", "12", "--language", "zh"])
    result = runner.invoke(app, [
        "replay", str(tmp_path / "events.csv"), "--catalog", str(tmp_path / "items.csv"), "--encoder",
        str(tiny_model_dir), "--language", "zh", "--out", str(tmp_path / "recs.jsonl"), "--no-progress"])
    assert result.exit_code == 0, result.output
    rec = json.loads((tmp_path / "recs.jsonl").read_text().splitlines()[-1])
    assert rec["text"].startswith("推荐给您的商品有：商品")


def test_replay_reads_a_recbole_dataset_with_its_item_text(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, [
        "replay", str(Path(__file__).parent / "fixtures" / "sources" / "recbole"), "--column",
        "default_action=purchase", "--encoder", str(tiny_model_dir), "--out", str(tmp_path / "recs.jsonl"),
        "--metrics-out", str(tmp_path / "metrics.json"), "--batch-size", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["events"], metrics["rejected_records"]) == (3, 2)  # a short row, an item without title
    texts = [json.loads(line)["text"] for line in (tmp_path / "recs.jsonl").read_text().splitlines()]
    assert any("Copper Kettle (Kitchen, Tea)" in text for text in texts)


def test_errors_are_reported_without_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["replay", str(tmp_path / "missing.csv"), "--encoder", "x", "--no-progress"])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    for command in ("replay", "demo", "generate", "tiny-model", "run", "produce", "tail"):
        assert command in result.output


def test_generate_rejects_an_unknown_format_with_a_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", str(tmp_path), "--users", "5", "--items", "5", "--format", "xml"])
    assert result.exit_code == 2 and "unknown log extension '.xml'" in result.output
