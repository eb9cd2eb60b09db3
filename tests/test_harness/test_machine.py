import importlib.util
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

import harness
from harness.machine import KEYS, PACKAGES, load_average, machine_info, mark_end, package_version, version

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_machine_info_reports_this_machine() -> None:
    import torch

    info = machine_info()
    assert tuple(info) == KEYS
    assert info["cores"] == os.cpu_count()
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    assert info["cpu"] and info["platform"] and info["date"]
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert set(PACKAGES) <= set(info["versions"])
    assert info["versions"]["numpy"] == metadata.version("numpy")
    assert info["versions"]["river"] == metadata.version("river")
    assert info["versions"]["torch"] == torch.__version__  # the build, with its local label (+cu121)
    if hasattr(os, "getloadavg"):
        assert len(info["load_average"]) == 3
    json.dumps(info)  # every benchmark writes it as JSON


def test_a_gpu_is_named_with_the_cuda_torch_was_built_with(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 (test)")
    info = machine_info()
    assert info["gpu"] == "NVIDIA H100 (test)" and info["versions"]["cuda"] == torch.version.cuda


def test_extra_packages_are_recorded_and_missing_ones_are_none() -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    info = machine_info(extra_packages=["confluent_kafka", "librdkafka", "no-such-package-xyz", "numpy"])
    versions = info["versions"]
    assert versions["confluent_kafka"] == metadata.version("confluent-kafka")
    assert versions["librdkafka"] == confluent_kafka.libversion()[0]
    assert versions["no-such-package-xyz"] is None and package_version("no-such-package-xyz") is None
    assert list(versions).count("numpy") == 1


def test_mark_end_and_readers_of_both_layouts() -> None:
    info = mark_end(machine_info())
    if hasattr(os, "getloadavg"):
        assert load_average(info, end=True) == info["load_average_end"] and len(info["load_average_end"]) == 3
    assert load_average(info) == info["load_average"]
    assert version(info, "numpy") == metadata.version("numpy")
    # results written before harness.machine (benchmarks/results/encoding.json, kafka-vs-replay.json)
    old = {"torch": "2.15.0+cu132", "confluent_kafka": "2.16.1", "load_average_at_start": [1.0, 2.0, 3.0],
           "load_average_at_end": [0.5, 0.5, 0.5]}
    assert version(old, "torch") == "2.15.0+cu132" and version(old, "transformers") is None
    assert load_average(old) == [1.0, 2.0, 3.0] and load_average(old, end=True) == [0.5, 0.5, 0.5]
    assert load_average({}) is None


def benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py``, imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_recorded_and_fresh_machines_render_in_the_kafka_report() -> None:
    pytest.importorskip("confluent_kafka")
    script = benchmark("kafka_vs_replay")
    recorded = json.loads((BENCHMARKS / "results" / "kafka-vs-replay.json").read_text())
    assert "None" not in script.markdown(recorded)  # the committed report, whichever layout it has
    # the layout written before harness.machine: flat versions, load_average_at_start/_at_end
    old = {"cpu": "Intel Xeon", "cores": 2, "python": "3.11.7", "torch": "2.15.0+cu132", "confluent_kafka": "2.16.2",
           "librdkafka": "2.16.0", "load_average_at_start": [1.25, 1.0, 0.5], "load_average_at_end": [2.5, 1.0, 0.5]}
    text = script.markdown(recorded | {"machine": old})
    assert f"torch {old['torch']}, confluent-kafka {old['confluent_kafka']} (librdkafka {old['librdkafka']})" in text
    assert "1.2 at start, 2.5 at end" in text
    fresh = mark_end(machine_info(extra_packages=script.KAFKA_PACKAGES))
    text = script.markdown(recorded | {"machine": fresh})
    versions = fresh["versions"]
    assert f"confluent-kafka {versions['confluent_kafka']} (librdkafka {versions['librdkafka']})" in text
    assert "None" not in text


def test_recorded_and_fresh_machines_render_in_the_encoding_report(tmp_path: Path) -> None:
    script = benchmark("encoding")
    recorded = json.loads((BENCHMARKS / "results" / "encoding.json").read_text())
    old = recorded["machine"]
    text = script.write_report(recorded, tmp_path).read_text()
    assert f"torch {old['torch']}, transformers {old['transformers']};" in text
    assert "Load average at start ({:.1f}, ".format(old["load_average_at_start"][0]) in text
    fresh = machine_info()
    text = script.write_report(recorded | {"machine": fresh}, tmp_path).read_text()
    assert f"torch {fresh['versions']['torch']}, transformers {fresh['versions']['transformers']};" in text
    assert ("GPU" in text.split("\n")[2]) == (fresh["gpu"] is not None)
    text = script.write_report(recorded | {"machine": fresh | {"gpu": "NVIDIA H100 (test)"}}, tmp_path).read_text()
    assert f"{fresh['cores']} cores, GPU NVIDIA H100 (test); torch" in text


def test_importing_harness_machine_loads_nothing_else() -> None:
    """``from harness.machine import machine_info`` must work where river, matplotlib (and the
    rest of the harness) are not installed: benchmarks/gpu.sh runs encoding.py on such a machine."""
    code = ("import sys; import harness.machine; "
            "print(sorted(m for m in sys.modules if m.startswith(('harness', 'river', 'torch', 'streamrec', "
            "'matplotlib'))))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BENCHMARKS), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(["harness", "harness.machine"])


def test_public_names_resolve_lazily_to_their_modules() -> None:
    modules = harness._MODULES  # type: ignore[attr-defined]
    assert sorted(n for names in modules.values() for n in names) == sorted(harness.__all__)
    for module, names in modules.items():
        for name in names:
            assert getattr(harness, name) is getattr(sys.modules[f"harness.{module}"], name)
    assert set(harness.__all__) <= set(dir(harness))
    with pytest.raises(AttributeError, match="no_such_name"):
        harness.no_such_name  # type: ignore[attr-defined]  # noqa: B018
