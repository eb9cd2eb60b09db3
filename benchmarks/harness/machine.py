"""The machine a benchmark ran on, as every benchmark's JSON records it under ``"machine"``.

:func:`machine_info` is the one place that reads it: CPU model, cores, torch threads, GPU, platform,
Python, package versions, load average and date. It imports nothing heavy at module level (torch
only inside the call, and only if installed), so ``from harness.machine import machine_info`` works
on a GPU image that lacks the harness's other dependencies (river, matplotlib).

Results written before this module kept some of it under other keys (``"torch"`` and
``"transformers"`` at the top level, ``"load_average_at_start"``/``"load_average_at_end"``);
:func:`version` and :func:`load_average` read both layouts, so old reports still render.

>>> version({"torch": "2.3.0"}, "torch"), version({"versions": {"torch": "2.4.0"}}, "torch")
('2.3.0', '2.4.0')
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

#: The packages every benchmark records; a caller names more with ``extra_packages``.
PACKAGES = ("torch", "transformers", "river", "numpy")
#: The keys :func:`machine_info` returns (``load_average_end`` is added by :func:`mark_end`).
KEYS = ("cpu", "cores", "torch_threads", "gpu", "platform", "python", "versions", "load_average", "date")


def _librdkafka() -> str:
    import confluent_kafka

    return str(confluent_kafka.libversion()[0])


#: Versions that no distribution's metadata holds, by the name a caller asks for.
LIBRARIES: dict[str, Callable[[], str]] = {"librdkafka": _librdkafka}


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name`` (or of a library in :data:`LIBRARIES`);
    ``None`` when it is not installed."""
    try:
        return LIBRARIES[name]() if name in LIBRARIES else metadata.version(name)
    except (ImportError, metadata.PackageNotFoundError):
        return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def current_load_average() -> list[float] | None:
    """The 1/5/15-minute load average (``None`` where the OS has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_info(extra_packages: Iterable[str] = ()) -> dict[str, Any]:
    """The machine, now: the keys of :data:`KEYS`. ``versions`` holds :data:`PACKAGES` and
    ``extra_packages`` (``None`` for one not installed); torch's is its build (``2.3.0+cu121``),
    and with a GPU, ``versions["cuda"]`` is the CUDA torch was built with. ``torch_threads`` and
    ``gpu`` are ``None`` without torch, ``gpu`` also without CUDA."""
    versions = {name: package_version(name) for name in dict.fromkeys([*PACKAGES, *extra_packages])}
    threads, gpu = None, None
    try:
        import torch
    except ImportError:
        pass
    else:
        versions["torch"] = torch.__version__
        threads = torch.get_num_threads()
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
            versions["cuda"] = torch.version.cuda
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": threads, "gpu": gpu,
            "platform": platform.platform(), "python": platform.python_version(), "versions": versions,
            "load_average": current_load_average(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def mark_end(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with the load average at the end of the run (``load_average_end``) added."""
    info["load_average_end"] = current_load_average()
    return info


def version(info: Mapping[str, Any], package: str) -> str | None:
    """``package``'s version in a recorded ``info``: from ``versions``, or the top-level key that
    results written before :func:`machine_info` used."""
    versions = info.get("versions") or {}
    return versions[package] if package in versions else info.get(package)


def load_average(info: Mapping[str, Any], end: bool = False) -> list[float] | None:
    """The load average recorded at the start (or ``end``) of the run, in either layout."""
    keys = ("load_average_end", "load_average_at_end") if end else ("load_average", "load_average_at_start")
    return next((list(info[key]) for key in keys if info.get(key) is not None), None)
