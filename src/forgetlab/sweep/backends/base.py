"""What a backend is to the sweep's scheduler: it starts cells and says when each has ended and how."""

from __future__ import annotations

import abc
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgetlab.config import ConfigError

from forgetlab.sweep.plan import Cell
from forgetlab.sweep.spec import SweepSpec

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class Outcome:
    """How a cell's job ended: ``ok``, else a one-line ``message``; ``died`` when the worker was killed or lost
    (the cell may be started again and resumes from its checkpoints) rather than stopped by an error."""

    ok: bool
    message: str = ""
    died: bool = False


class Job(abc.ABC):
    """One started cell."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell

    @abc.abstractmethod
    def done(self) -> bool:
        """Whether the job has ended (never blocks)."""

    @abc.abstractmethod
    def outcome(self) -> Outcome:
        """How it ended (only once :meth:`done`)."""

    def progress(self) -> str:
        """The worker's latest progress line, if the backend can see it."""
        return ""

    def cancel(self) -> None:
        """Stop the job (the run is marked interrupted and resumes later)."""


class Backend(abc.ABC):
    """Starts cells somewhere: this machine, a Ray cluster, Slurm."""

    #: The ``pip install forgetlab[...]`` extra the backend needs, or None.
    extra: str | None = None

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, spec: SweepSpec, folder: Path, runs_dir: Path, threads: int) -> "Backend":
        """The backend a sweep file asks for; ``folder`` is the sweep's, ``threads`` the most torch threads a cell pins."""

    @abc.abstractmethod
    def capacity(self) -> int:
        """How many cells may run at once (the scheduler starts no more)."""

    @abc.abstractmethod
    def submit(self, cells: list[Cell]) -> list[Job]:
        """Start these cells (all ready: what they need has finished)."""

    def ended(self, job: Job) -> None:
        """``job`` has ended: what it held (a GPU, ...) is free again."""

    def close(self) -> None:
        """Release what the backend holds (a local Ray instance, ...)."""


def require(module: str, extra: str, who: str) -> Any:
    """Import an optional package; ConfigError naming the extra that installs it when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{who}: {module} is not installed; pip install 'forgetlab[{extra}]'") from None


def last_progress(path: Path, size: int = 4096) -> str:
    """The last line a worker wrote to ``path`` (progress bars rewrite theirs with ``\\r``), without colours."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ANSI.sub("", line).strip() for line in re.split(r"[\r\n]", tail)]
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""


def error_line(path: Path) -> str:
    """The ``error: ...`` line a ``forgetlab`` worker printed last, if any."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    errors = [ANSI.sub("", line).strip() for line in text.splitlines() if ANSI.sub("", line).strip().startswith("error:")]
    return errors[-1] if errors else ""
