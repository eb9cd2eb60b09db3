"""Tensor files of the model state: safetensors (never pickle), written atomically.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "x.safetensors"
>>> save_tensors(path, {"w": torch.ones(2)}, "streamrec-example-1", {"note": "hi"})
>>> tensors, metadata = load_tensors(path, "streamrec-example-1", "example")
>>> tensors["w"].tolist(), metadata["note"]
([1.0, 1.0], 'hi')
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from streamrec.errors import CheckpointError


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], fmt: str,
                 metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` with ``metadata`` and a ``format`` tag: a temp file, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={**(metadata or {}), "format": fmt})
    tmp.replace(path)


def format_of(path: str | Path) -> str | None:
    """The ``format`` a file written by :func:`save_tensors` declares (None: unreadable or none)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return (fh.metadata() or {}).get("format")
    except (OSError, ValueError, RuntimeError, SafetensorError):
        return None


MALFORMED = (ValueError, KeyError, IndexError, TypeError, RuntimeError, OverflowError, AttributeError,
             RecursionError)
F = TypeVar("F", bound=Callable[..., Any])


def checked(what: str) -> Callable[[F], F]:
    """For a component's ``load(path, ...)``: a file safetensors reads but whose metadata or tensors
    are not what the component wrote raises a :class:`CheckpointError` naming it, nothing else."""
    def wrap(load: F) -> F:
        @functools.wraps(load)
        def checked_load(self: object, path: str | Path, *args: Any, **kwargs: Any) -> Any:
            try:
                return load(self, path, *args, **kwargs)
            except CheckpointError:
                raise
            except MALFORMED as exc:
                raise CheckpointError(f"{what} {str(path)!r} is malformed ({type(exc).__name__}: {exc!s:.200}): "
                                      "restore it from a backup, or start from an empty state_dir") from exc
        return cast(F, checked_load)
    return wrap


def metadata_of(path: str | Path) -> dict[str, str]:
    """The metadata of a file written by :func:`save_tensors` ({} when unreadable)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except (OSError, ValueError, RuntimeError, SafetensorError):
        return {}


def load_tensors(path: str | Path, fmt: str, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a file written by :func:`save_tensors` with format ``fmt``;
    a :class:`CheckpointError` naming ``what`` if it cannot be read or is something else."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        tensors = load_file(str(path))
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise CheckpointError(f"cannot read {what} {str(path)!r}: {exc}") from exc
    found = metadata.get("format")
    if found != fmt:
        family = fmt.rsplit("-", 1)[0]
        if found and found.rsplit("-", 1)[0] == family:
            raise CheckpointError(f"{path} is a {what} in format {found!r}, this streamrec reads {fmt!r}: "
                                  "use the streamrec that wrote it, or another state_dir")
        raise CheckpointError(f"{path} is not a streamrec {what}")
    return tensors, metadata
