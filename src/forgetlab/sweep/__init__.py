"""Sweeps: a base recipe crossed with axes, each cell an ordinary run in the catalog, run on this machine, a Ray
cluster or Slurm, aggregated over seeds into ``<runs dir>/sweeps/<sweep id>/`` (``plan.json``, ``results.json``,
``results.md``, ``report.html``, one log per locally run cell).

Modules in the order of the flow: :mod:`.spec` (the sweep file), :mod:`.plan` (its cells and their needs),
:mod:`.backends` (where cells run), :mod:`.driver` (the scheduler), :mod:`.aggregate` and :mod:`.results`
(the numbers), :mod:`.report` (the HTML).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from forgetlab.config import apply_overrides
from forgetlab.store import RunStore, atomic_write_json
from forgetlab.sweep.backends import BACKENDS
from forgetlab.sweep.driver import Scheduler, SweepState, found_state
from forgetlab.sweep.plan import Plan, cell_config, plan
from forgetlab.sweep.report import write_sweep_report
from forgetlab.sweep.results import collect
from forgetlab.sweep.search import Search, badness_of, search_identity
from forgetlab.sweep.spec import SweepSpec, load_sweep


@dataclass
class SweepOutcome:
    """A finished (or partly failed) sweep: its plan, final state, results and where they are."""

    plan: Plan
    state: SweepState
    results: dict[str, Any]
    folder: Path

    @property
    def failed(self) -> list[str]:
        return [k for k, s in self.state.cells.items() if s.status in ("failed", "blocked")]


def prepare_sweep(path: str | Path, overrides: list[str] | None = None, **choices: Any) -> Plan:
    """Read and check a sweep file (``overrides`` apply to its base recipe) and plan its cells; nothing runs."""
    spec, base, origin = load_sweep(path, **choices)
    if overrides:
        base = apply_overrides(base, overrides)
    if spec.search is None:
        return plan(spec, base, origin)
    probe = {key: dist.draw(np.random.default_rng(0)) for key, dist in spec.search.space.items()}
    cell_config(spec, base, probe, origin)  # a bad key or value is found now, not at the first trial
    badness_of(spec.search, str(base.get("experiment")))
    return Plan(spec, [], identity=search_identity(spec, base), base=base, origin=origin)


def run_sweep(sweep: Plan, runs_dir: str | Path, show: Callable[[SweepState], None] = lambda state: None) -> SweepOutcome:
    """Run every unfinished cell of ``sweep`` on its backend, then write its results and report."""
    configs = [cell_config(sweep.spec, sweep.base, {}, sweep.origin)] if sweep.spec.search else [c.config for c in sweep.cells]
    threads = max((config.cpu_threads or 1 for config in configs), default=1)
    folder = sweep.folder(Path(runs_dir))
    backend = BACKENDS.get(sweep.spec.backend).from_spec(sweep.spec, folder, Path(runs_dir), threads)  # a missing extra: now
    try:
        store = RunStore(runs_dir)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "plan.json", plan_record(sweep))
        if sweep.spec.search is None:
            state, found = Scheduler(sweep, store, backend, sweep.spec.retries, show).run(), None
        else:
            search = Search(sweep, store, backend, show)
            found, state = search.run(), search.state
            atomic_write_json(folder / "plan.json", plan_record(sweep))  # a search's cells are known now
    finally:
        backend.close()
    return _write_results(sweep, state, store, folder, found)


def sweep_results(sweep: Plan, runs_dir: str | Path) -> SweepOutcome:
    """The results and report of the cells of ``sweep`` finished so far (while it runs elsewhere, or after it was
    stopped); nothing is started. ValueError for a search, whose cells only its run knows."""
    if sweep.spec.search is not None:
        raise ValueError("results of a search come from running it (its trials are chosen as it goes)")
    store, folder = RunStore(runs_dir), sweep.folder(Path(runs_dir))
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "plan.json", plan_record(sweep))
    return _write_results(sweep, found_state(sweep, store), store, folder, None)


def _write_results(sweep: Plan, state: SweepState, store: RunStore, folder: Path, found: Any) -> SweepOutcome:
    """``results.json``, ``report.html`` and ``results.md`` in the sweep's folder."""
    results = dict(collect(sweep, state, store), search=found)
    atomic_write_json(folder / "results.json", results)
    write_sweep_report(folder, results)  # and results.md
    return SweepOutcome(sweep, state, results, folder)


def plan_record(sweep: Plan) -> dict[str, Any]:
    """``plan.json``: the sweep file as checked, and every cell with its run id, label, axes and needs."""
    return {
        "sweep": sweep.id,
        "spec": json.loads(sweep.spec.model_dump_json()),
        "cells": [{"run": c.key, "label": c.label, "experiment": c.config.experiment, "axes": c.axes,
                   "needs": list(c.needs), "top": c.top} for c in sweep.cells],
    }


__all__ = ["Plan", "SweepOutcome", "SweepSpec", "load_sweep", "prepare_sweep", "run_sweep", "sweep_results"]
