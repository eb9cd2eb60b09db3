import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.downloads import PinnedFile, downloaded, sha256_of, verify_sha256
from streamrec.errors import ModelLoadError, StreamrecError

CONTENT = b"not really a wheel\n"
RIGHT = hashlib.sha256(CONTENT).hexdigest()
WRONG = hashlib.sha256(b"another file").hexdigest()


def test_sha256_of_reads_the_whole_file(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(CONTENT * 200_000)  # several 1 MiB blocks
    assert sha256_of(big) == hashlib.sha256(CONTENT * 200_000).hexdigest()


def test_the_pinned_sha256_is_accepted_and_another_is_refused_naming_the_file_and_both_hashes(
        tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(CONTENT)
    verify_sha256(wheel, PinnedFile("pkg", "1.0", RIGHT))
    verify_sha256(wheel, PinnedFile("pkg", "1.0", RIGHT.upper()))  # hex digits in either case
    with pytest.raises(StreamrecError, match="does not match the pinned") as refused:
        verify_sha256(wheel, PinnedFile("pkg", "1.0", WRONG))
    message = str(refused.value)
    assert "pkg-1.0-py3-none-any.whl" in message and "pkg==1.0" in message
    assert RIGHT in message and WRONG in message


def test_downloaded_asks_pip_for_the_exact_version_and_yields_the_checked_file(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def run(command: Sequence[str]) -> None:
        calls.append(list(command))
        (Path(command[command.index("--dest") + 1]) / "pkg-1.0.tar.gz").write_bytes(CONTENT)

    with downloaded(PinnedFile("pkg", "1.0", RIGHT, sdist=True), tmp_path, ModelLoadError, run) as (file, folder):
        assert file.read_bytes() == CONTENT and file.parent == folder
    assert calls[0][-6:] == ["--no-deps", "--no-binary", ":all:", "--dest", calls[0][-2], "pkg==1.0"]
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone


def test_downloaded_refuses_a_file_with_another_sha256_before_yielding_it(tmp_path: Path) -> None:
    def run(command: Sequence[str]) -> None:
        (Path(command[command.index("--dest") + 1]) / "pkg-1.0-py3-none-any.whl").write_bytes(CONTENT)

    with (pytest.raises(ModelLoadError, match=f"sha256 {RIGHT} does not match the pinned {WRONG}"),
          downloaded(PinnedFile("pkg", "1.0", WRONG), tmp_path, ModelLoadError, run)):
        pytest.fail("a file with the wrong sha256 was handed out")
    assert list(tmp_path.iterdir()) == []
