"""The ``local`` backend: each cell is a ``forgetlab run`` process on this machine, ``workers`` at a time, each
with the torch threads its recipe pins (or one GPU each, where there are GPUs); output goes to a log per cell."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from forgetlab.store import atomic_write_text
from forgetlab.sweep.backends.base import Backend, Job, Outcome, error_line, last_progress
from forgetlab.sweep.plan import Cell
from forgetlab.sweep.spec import SweepSpec
from forgetlab.threads import budget


class LocalJob(Job):
    """A ``forgetlab run CELL.yaml --wait`` process."""

    def __init__(self, cell: Cell, process: subprocess.Popen, log: Path, gpu: int | None) -> None:
        super().__init__(cell)
        self.process, self.log, self.gpu = process, log, gpu

    def done(self) -> bool:
        return self.process.poll() is not None

    def outcome(self) -> Outcome:
        code = self.process.returncode
        if code == 0:
            return Outcome(True)
        died = code < 0 or code >= 128  # killed by a signal (negative), or stopped by one and said so (128 + n)
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return Outcome(False, error_line(self.log) or f"{how} (log: {self.log})", died=died)

    def progress(self) -> str:
        return last_progress(self.log)

    def cancel(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the run records itself interrupted, then exits


class LocalBackend(Backend):
    """Worker processes on this machine."""

    def __init__(self, folder: Path, runs_dir: Path, workers: int | None, threads: int) -> None:
        self.folder, self.runs_dir = folder, runs_dir
        self.gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        default = len(self.gpus) if self.gpus else max(1, budget(None) // threads)
        self.workers = min(workers or default, len(self.gpus)) if self.gpus else workers or default
        self.free_gpus = list(self.gpus)

    @classmethod
    def from_spec(cls, spec: SweepSpec, folder: Path, runs_dir: Path, threads: int) -> "LocalBackend":
        return cls(folder, runs_dir, spec.workers, threads)

    def capacity(self) -> int:
        return self.workers

    def submit(self, cells: list[Cell]) -> list[Job]:
        return [self._start(cell) for cell in cells]

    def _start(self, cell: Cell) -> LocalJob:
        recipe = self.folder / "cells" / f"{cell.key}.yaml"
        atomic_write_text(recipe, yaml.safe_dump(cell.recipe(), sort_keys=False))
        log = self.folder / "logs" / f"{cell.key}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, FORGETLAB_RUNS=str(self.runs_dir))
        gpu = self._take_gpu()
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        command = [sys.executable, "-m", "forgetlab.cli", "run", str(recipe), "--runs-dir", str(self.runs_dir), "--wait"]
        with open(log, "ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        return LocalJob(cell, process, log, gpu)

    def _take_gpu(self) -> int | None:
        if not self.gpus:
            return None
        if not self.free_gpus:  # a job that ended gives its GPU back here
            raise RuntimeError("no free GPU for a new cell; the scheduler started more cells than workers")
        return self.free_gpus.pop(0)

    def ended(self, job: Job) -> None:
        if isinstance(job, LocalJob) and job.gpu is not None:
            self.free_gpus.append(job.gpu)
