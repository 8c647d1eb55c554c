"""The ``ray`` backend: each cell is a Ray task declaring the CPUs (its pinned torch threads) and GPUs it uses, on
an existing cluster (``address``: ``auto`` or ``ray://host:port``) or on a local Ray instance. A task whose worker
dies is retried by Ray (``retries``) and resumes from the run's checkpoints. The runs directory must be one
shared filesystem for every node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgetlab.sweep.backends.base import Backend, Job, Outcome, require
from forgetlab.sweep.cell import run_cell
from forgetlab.sweep.plan import Cell
from forgetlab.sweep.spec import RaySpec, SweepSpec


class RayJob(Job):
    """A Ray task running one cell."""

    def __init__(self, cell: Cell, ref: Any, ray: Any) -> None:
        super().__init__(cell)
        self.ref, self.ray = ref, ray

    def done(self) -> bool:
        ready, _ = self.ray.wait([self.ref], timeout=0)
        return bool(ready)

    def outcome(self) -> Outcome:
        try:
            self.ray.get(self.ref)
        except self.ray.exceptions.RayTaskError as error:  # the cell raised: its message, no traceback
            cause = error.cause if getattr(error, "cause", None) is not None else error
            return Outcome(False, " ".join(f"{type(cause).__name__}: {cause}".split()))
        except self.ray.exceptions.RayError as error:  # the worker died more often than Ray retries
            return Outcome(False, " ".join(f"{type(error).__name__}: {error}".split())[:300], died=True)
        return Outcome(True)

    def cancel(self) -> None:
        self.ray.cancel(self.ref, force=False)


class RayBackend(Backend):
    """Cells as Ray tasks."""

    extra = "ray"

    def __init__(self, settings: RaySpec, runs_dir: Path, retries: int) -> None:
        self.ray = require("ray", "ray", "backend ray")
        self.runs_dir, self.settings = str(Path(runs_dir).resolve()), settings
        self.started_here = not self.ray.is_initialized()
        if self.started_here:
            self.ray.init(address=settings.address, include_dashboard=False, log_to_driver=False)
        self.task, self.retries = self.ray.remote(run_cell), retries

    @classmethod
    def from_spec(cls, spec: SweepSpec, folder: Path, runs_dir: Path, threads: int) -> "RayBackend":
        return cls(spec.ray, runs_dir, spec.retries)

    def capacity(self) -> int:
        return 1 << 30  # Ray queues tasks until their declared resources are free

    def submit(self, cells: list[Cell]) -> list[Job]:
        jobs: list[Job] = []
        for cell in cells:
            options = {"num_cpus": cell.config.cpu_threads or 1, "num_gpus": self.settings.gpus_per_cell, "name": cell.key,
                       "max_retries": self.retries, "retry_exceptions": False}
            jobs.append(RayJob(cell, self.task.options(**options).remote(cell.recipe(), self.runs_dir, cell.key), self.ray))
        return jobs

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
