"""A sweep's results, gathered from the catalog: ``results.json`` in the sweep's folder (every cell with its
axes, run, shown values and cost in stage seconds; the runs the cells started, with their costs; the groups over
seeds with means and intervals; the trade-off front; what the cells say together, ``combined``, e.g. Study A's
correlations across the tasks of one-task cells)."""

from __future__ import annotations

from typing import Any

from forgetlab.experiments import EXPERIMENTS
from forgetlab.store import RunStore
from forgetlab.sweep.aggregate import chosen, flatten, group_cells, pareto_front, single_matches
from forgetlab.sweep.driver import SweepState
from forgetlab.sweep.plan import Plan


def collect(plan: Plan, state: SweepState, store: RunStore) -> dict[str, Any]:
    """The sweep's results: its top cells grouped over seeds, and the runs they started (``parts``: each run, label,
    status and cost)."""
    experiments = {c.config.experiment for c in plan.top_cells}
    experiment = EXPERIMENTS.get(next(iter(experiments))) if len(experiments) == 1 else None
    patterns = plan.spec.metrics or (list(experiment.sweep_metrics) if experiment else [])
    found = [_cell(state.cells[c.key], store) for c in plan.top_cells]
    cells, values = [record for record, _, _ in found], [numbers for _, numbers, _ in found]
    single = single_matches(values, patterns)
    for record, numbers in zip(cells, values):
        record["values"] = chosen(numbers, patterns, single) if patterns else numbers
    parts = [_record(state.cells[c.key], store.get(c.key)) for c in plan.cells if not c.top]
    finished = [(c.config, summary) for c, (record, _, summary) in zip(plan.top_cells, found) if record["status"] == "finished"]
    axes = plan.spec.axes()
    results: dict[str, Any] = {
        "sweep": plan.id,
        "name": plan.spec.name,
        "experiment": experiment and next(iter(experiments)),
        "axes": axes,
        "metrics": patterns,
        "counts": {status: state.count(status) for status in ("finished", "running", "failed", "blocked", "waiting")},
        "cells": cells,
        "parts": parts,
        "groups": group_cells([c for c in cells if c["status"] == "finished"], axes),
        "tradeoff": _tradeoff(experiment, cells, values) if experiment and experiment.tradeoff else None,
        "combined": experiment.combine(finished) if experiment and finished else None,
    }
    return results


def _cell(state: Any, store: RunStore) -> tuple[dict[str, Any], dict[str, float], dict[str, Any]]:
    """A cell's record (its numbers shown are added by :func:`collect`), every number of its run's summary, and
    the summary."""
    cell = state.cell
    run = store.get(cell.key)
    summary = (run.summary() if run is not None and run.finished else None) or {}
    record = dict(_record(state, run), axes=cell.axes, seed=cell.config.seed, message=state.message or None, values={})
    return record, flatten(summary), summary


def _record(state: Any, run: Any) -> dict[str, Any]:
    """What every run of a sweep reports (a part's whole record): its run id, label, status and cost so far."""
    cell = state.cell
    return {"run": cell.key, "label": cell.label, "status": state.status,
            "cost": _cost(run, cell.config.cpu_threads) if run is not None else None}


def _cost(run: Any, cpu_threads: int | None) -> dict[str, Any]:
    """What a cell's run has cost so far: the wall-clock seconds of its finished stages (each from the attempt that
    computed it), their total and the torch threads it ran on."""
    stages = run.stage_seconds()
    return {"seconds": round(sum(stages.values()), 1), "cpu_threads": cpu_threads,
            "stages": {key: round(seconds, 1) for key, seconds in stages.items()}}


def _tradeoff(experiment: Any, cells: list[dict[str, Any]], values: list[dict[str, float]]) -> dict[str, Any] | None:
    """Forgetting against utility per finished cell, and which cells are on the front (no other beats both)."""
    (x_key, x_better), (y_key, y_better) = experiment.tradeoff
    points = [(c["run"], c["label"], v[x_key], v[y_key]) for c, v in zip(cells, values)
              if c["status"] == "finished" and x_key in v and y_key in v]
    if not points:
        return None
    front = pareto_front([(p[2], p[3]) for p in points], (x_better, y_better))
    return {
        "x": {"key": x_key, "better": x_better},
        "y": {"key": y_key, "better": y_better},
        "points": [{"run": p[0], "label": p[1], "x": p[2], "y": p[3], "front": i in front} for i, p in enumerate(points)],
    }
