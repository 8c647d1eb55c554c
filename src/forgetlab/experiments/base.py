"""Running an experiment config into a run directory, resumably."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator

from forgetlab.config import ExperimentConfig
from forgetlab.registry import Registry
from forgetlab.store import Run, RunStore

class Experiment(Protocol):
    """An experiment recipe: a cheap up-front check of its config, and the run itself."""

    def validate(self, config: ExperimentConfig) -> None:
        """Raise one clear error for anything unknown (task, method, ...) before any work starts."""

    def run(self, config: ExperimentConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        """Do the work (skipping finished stages) and return the summary."""

    # An experiment may set ``writes_report = False`` (e.g. the many small cells of a sweep) to skip report.html.


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


def run_experiment(config: ExperimentConfig, runs_dir: str | Path, *, command: str = "", accelerator: Accelerator | None = None) -> Run:
    """Run (or find, or resume) the run of ``config`` under ``runs_dir``; returns it finished.

    On any error the run is marked failed and the error propagates; finished stages are kept.
    """
    experiment = EXPERIMENTS.get(config.experiment)
    experiment.validate(config)
    # Without CUDA, cpu=True makes Accelerate use gloo across processes started by torchrun/accelerate launch.
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    store = RunStore(runs_dir) if accelerator.is_main_process else None
    accelerator.wait_for_everyone()
    store = store or RunStore(runs_dir)
    run = store.open(config, world_size=accelerator.num_processes, command=command) if accelerator.is_main_process else None
    accelerator.wait_for_everyone()
    run = run or store.get(store.run_id(config))
    assert run is not None
    if run.finished:
        return run
    try:
        summary = experiment.run(config, run, accelerator)
        _reject_non_finite(summary)
    except BaseException as error:
        if accelerator.is_main_process:
            store.fail(run, f"{type(error).__name__}: {error}")
        raise
    if accelerator.is_main_process:
        store.finish(run, summary)
        if getattr(experiment, "writes_report", True):
            _write_report(run)
    accelerator.wait_for_everyone()
    return store.get(run.id) or run


def _write_report(run: Run) -> None:
    """The run's report.html; a report that cannot be drawn is logged, never a reason to lose the result."""
    from forgetlab.report.html import write_report

    try:
        write_report(run.dir)
    except Exception as error:  # noqa: BLE001  (the run is finished and recorded; say what failed)
        print(f"warning: report for {run.id} not written: {type(error).__name__}: {error}", file=sys.stderr)


def _reject_non_finite(obj: Any, path: str = "summary") -> None:
    """A diverged number must never be recorded as a result."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"{path} is {obj}: not recording a non-finite result")
    if isinstance(obj, dict):
        for key, value in obj.items():
            _reject_non_finite(value, f"{path}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _reject_non_finite(value, f"{path}[{i}]")
