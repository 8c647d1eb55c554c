"""The CPU thread budget: how many threads torch uses, and how its waiting threads behave.

* ``OMP_WAIT_POLICY=PASSIVE``, exported by :mod:`forgetlab` before torch loads (a value the user exported
  wins): an OpenMP thread waiting at a barrier sleeps instead of spinning. Spinning threads burn the time
  slices their partners need as soon as a machine has more busy threads than cores: a SmolLM2-135M training
  step beside two busy processes on 2 cores took 10× its idle time spinning, 2.2× passive; passive costs
  nothing on an idle machine.
* The thread count (:func:`budget`): the CPUs this process may run on (its affinity mask, capped by its
  cgroup's CPU quota), shared among the run's processes on this node (``LOCAL_WORLD_SIZE``, set by torchrun
  and ``accelerate launch``), so that a multi-process run never has more busy threads than CPUs; a config's
  ``cpu_threads`` overrides it. torch splits elementwise kernels into one chunk per thread and computes a
  chunk's ragged tail outside its vector loop, so the count changes the last bits of results (SiLU outputs
  differ by 3e-8 between 1 and 3 threads): the count used is part of a run's identity, beside the world size.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Iterator

THREADING_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}


def set_threading_environment() -> None:
    """Export :data:`THREADING_ENVIRONMENT` where the user has not set the variable (before torch loads)."""
    for name, value in THREADING_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (quota / period), the tightest along its path up to the
    root; ``None`` without a quota. Reads cgroup v2 ``cpu.max`` and v1 ``cpu.cfs_quota_us``/``cfs_period_us``."""
    limits = []
    for line in _read(membership).splitlines():
        hierarchy, _, path = line.partition(":")[2].partition(":")
        v2 = hierarchy == ""
        if not v2 and "cpu" not in hierarchy.split(","):
            continue
        base = (root / "unified" if (root / "unified").is_dir() else root) if v2 else root / "cpu"  # hybrid hosts mount v2 at unified/
        folder = base / path.lstrip("/")
        while True:
            limits.append(_v2_limit(folder) if v2 else _v1_limit(folder))
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _v2_limit(folder: Path) -> float | None:
    quota, _, period = _read(folder / "cpu.max").strip().partition(" ")
    if not quota or quota == "max":
        return None
    return int(quota) / int(period or 100_000)


def _v1_limit(folder: Path) -> float | None:
    quota, period = _read(folder / "cpu.cfs_quota_us").strip(), _read(folder / "cpu.cfs_period_us").strip()
    if not quota or not period or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def available_cpus() -> int:
    """The CPUs this process may really use: its affinity mask, capped by its cgroup's quota (at least 1)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_limit()
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def local_processes() -> int:
    """How many processes of this run share this node (``LOCAL_WORLD_SIZE`` of the launcher; 1 without)."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def budget(requested: int | None = None) -> int:
    """torch threads for this process: ``requested``, else its share of :func:`available_cpus`."""
    if requested:
        return requested
    return max(1, available_cpus() // local_processes())


@contextlib.contextmanager
def thread_budget(requested: int | None = None) -> Iterator[int]:
    """torch's intra-op thread count set to :func:`budget` for the duration (restored after); yields it."""
    import torch

    before = torch.get_num_threads()
    threads = budget(requested)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
