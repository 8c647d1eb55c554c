"""The ``slurm`` backend (submitit): each cell is a Slurm job asking for its pinned CPU threads (and GPUs); the
cells that become ready together are submitted as one job array. ``cluster: local`` runs the very same jobs as
local processes through submitit's local executor (no scheduler needed: how the tests run this path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgetlab.sweep.backends.base import Backend, Job, Outcome, last_progress, require
from forgetlab.sweep.cell import run_cell
from forgetlab.sweep.plan import Cell
from forgetlab.sweep.spec import SlurmSpec, SweepSpec


class SlurmJob(Job):
    """A submitit job running one cell."""

    def __init__(self, cell: Cell, job: Any, submitit: Any) -> None:
        super().__init__(cell)
        self.job, self.submitit = job, submitit

    def done(self) -> bool:
        return bool(self.job.done())

    def outcome(self) -> Outcome:
        try:
            self.job.result()
        except self.submitit.core.utils.FailedJobError as error:  # the cell raised: the last line of the traceback
            lines = [line for line in str(error).splitlines() if line.strip()]
            return Outcome(False, lines[-1].strip() if lines else "failed")
        except self.submitit.core.utils.UncompletedJobError as error:  # killed, timed out, node lost
            return Outcome(False, " ".join(str(error).split())[:300], died=True)
        return Outcome(True)

    def progress(self) -> str:
        return last_progress(Path(self.job.paths.stderr))

    def cancel(self) -> None:
        self.job.cancel(check=False)


class SlurmBackend(Backend):
    """Cells as Slurm jobs (or local processes with ``cluster: local``)."""

    extra = "slurm"

    def __init__(self, settings: SlurmSpec, folder: Path, runs_dir: Path) -> None:
        self.submitit = require("submitit", "slurm", "backend slurm")
        self.runs_dir = str(Path(runs_dir).resolve())
        self.executor = self.submitit.AutoExecutor(folder=settings.folder or folder / "slurm", cluster=settings.cluster)
        self.settings = settings

    @classmethod
    def from_spec(cls, spec: SweepSpec, folder: Path, runs_dir: Path, threads: int) -> "SlurmBackend":
        return cls(spec.slurm, folder, runs_dir)

    def capacity(self) -> int:
        return 1 << 30  # the scheduler queues jobs; array_parallelism bounds each array

    def submit(self, cells: list[Cell]) -> list[Job]:
        threads = max(c.config.cpu_threads or 1 for c in cells)
        parameters: dict[str, Any] = {"timeout_min": self.settings.time_min, "cpus_per_task": threads, "name": "forgetlab-sweep"}
        if self.executor.cluster == "slurm":
            parameters.update(slurm_array_parallelism=self.settings.array_parallelism, gpus_per_node=self.settings.gpus_per_job)
            parameters.update({f"slurm_{k}": v for k in ("partition", "account") if (v := getattr(self.settings, k))})
            if self.settings.mem_gb:
                parameters["mem_gb"] = self.settings.mem_gb
        self.executor.update_parameters(**parameters)
        with self.executor.batch():
            submitted = [self.executor.submit(run_cell, cell.recipe(), self.runs_dir, cell.key) for cell in cells]
        return [SlurmJob(cell, job, self.submitit) for cell, job in zip(cells, submitted)]
