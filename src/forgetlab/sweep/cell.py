"""What a worker does with one cell, whichever backend started it: run its recipe into the runs directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgetlab.experiments import build_config, run_experiment


def run_cell(recipe: dict[str, Any], runs_dir: str | Path, origin: str = "sweep cell") -> str:
    """Run (or find finished, or resume) the run of ``recipe`` under ``runs_dir``; returns its id. A cell that
    another process is running is waited for, not run twice. The recipe pins its torch threads, so the run is
    the same whatever the worker's environment says (Ray, for one, sets ``OMP_NUM_THREADS``)."""
    config = build_config(recipe, origin=origin)
    return run_experiment(config, runs_dir, command=f"forgetlab sweep ({origin})", wait=True).id
