"""Every backend gives every cell exactly the run it gives alone: a 2×2 tiny sweep (method × seed) on ``local``
with two workers, on a local Ray instance, and through submitit's local executor (the Slurm path), each cell's
summary.json and metrics.jsonl compared byte for byte with the same recipe run alone in its own runs directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from forgetlab.experiments import build_config, run_experiment
from forgetlab.store import RunStore
from forgetlab.sweep import prepare_sweep, run_sweep
from tests.conftest import unlearn_raw_config

pytestmark = pytest.mark.slow


def tiny_sweep(tmp_path: Path, **options) -> str:
    path = tmp_path / "sweep.yaml"
    sweep = {"name": "tiny2x2", "base": unlearn_raw_config(), "grid": {"forget.method": ["gradient_ascent", "npo"], "seed": [0, 1]}}
    path.write_text(yaml.safe_dump({**sweep, **options}))
    return str(path)


def result_files(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in ("summary.json", "metrics.jsonl")}


def assert_each_cell_as_alone(outcome, runs: Path, alone: Path) -> None:
    assert outcome.failed == [] and len(outcome.state.cells) == 4
    for cell in outcome.plan.cells:
        by_itself = run_experiment(build_config(cell.recipe()), alone)
        assert by_itself.id == cell.key
        assert result_files(runs / cell.key) == result_files(by_itself.dir), cell.label


@pytest.fixture(scope="module")
def alone(tmp_path_factory) -> Path:
    """One runs directory for the cells run alone (each is run once, the later backends find it)."""
    return tmp_path_factory.mktemp("alone")


def test_local_backend_with_two_workers(tmp_path, alone):
    outcome = run_sweep(prepare_sweep(tiny_sweep(tmp_path), workers=2), tmp_path / "runs")
    assert_each_cell_as_alone(outcome, tmp_path / "runs", alone)
    groups = outcome.results["groups"]
    assert [g["axes"] for g in groups] == [{"forget.method": "gradient_ascent"}, {"forget.method": "npo"}]
    assert all(g["seeds"] == [0, 1] and g["metrics"]["selected.forget_loss"]["ci"] is not None for g in groups)
    assert (outcome.folder / "report.html").is_file() and (outcome.folder / "logs").is_dir()


def test_ray_local_instance(tmp_path, alone):
    pytest.importorskip("ray", reason="the ray extra: pip install 'forgetlab[ray]'")
    outcome = run_sweep(prepare_sweep(tiny_sweep(tmp_path), backend="ray"), tmp_path / "runs")
    assert_each_cell_as_alone(outcome, tmp_path / "runs", alone)


def test_slurm_path_through_submitits_local_executor(tmp_path, alone):
    pytest.importorskip("submitit", reason="the slurm extra: pip install 'forgetlab[slurm]'")
    outcome = run_sweep(prepare_sweep(tiny_sweep(tmp_path, backend="slurm", slurm={"cluster": "local", "time_min": 10})), tmp_path / "runs")
    assert_each_cell_as_alone(outcome, tmp_path / "runs", alone)
    assert (outcome.folder / "slurm").is_dir()


def test_the_cross_task_matrix_as_a_sweep_gives_the_golden_numbers(tmp_path):
    """The golden cross-task recipe fanned out (a Study A run per task and the two cells on two workers, then the matrix) makes
    the very runs, with the very numbers, that ``forgetlab run`` makes in one process (tests/golden/cross_task)."""
    from tests.test_golden import GOLDEN, assert_golden, results_of

    outcome = run_sweep(prepare_sweep(GOLDEN / "recipes" / "cross_task.yaml", workers=2), tmp_path)
    assert outcome.failed == [] and len(outcome.plan.cells) == 5
    store, (top,) = RunStore(tmp_path), outcome.plan.top_cells
    assert outcome.results["combined"] == store.find(top.key).summary()  # the matrix is what the runs say together
    parts = outcome.results["parts"]  # the runs the matrix started: its Study A runs and its cells, with their costs
    assert [p["run"] for p in parts] == [c.key for c in outcome.plan.cells if not c.top] and len(parts) == 4
    for part in parts:
        assert part["status"] == "finished" and part["cost"]["seconds"] == round(sum(store.find(part["run"]).stage_seconds().values()), 1) > 0
    assert_golden("cross_task", results_of(tmp_path))  # last: it skips on a machine kind the golden files were not made on


def test_one_task_cells_together_are_the_study_a_run_over_all_tasks(tmp_path):
    """The golden Study A recipe swept one task per cell (on two workers): ``results.json``'s ``combined`` holds
    every task's row and the correlations across tasks exactly as one run over both tasks has them."""
    from tests.test_golden import GOLDEN, normalize

    base = yaml.safe_load((GOLDEN / "recipes" / "cross_task.yaml").read_text())
    base.update(experiment="forget_generalization", name="study", analysis=dict(base["analysis"], probes=False))
    path = tmp_path / "per_task.yaml"
    path.write_text(yaml.safe_dump({"name": "per_task", "base": base, "cells": [{"tasks": [t]} for t in base["tasks"]]}))
    outcome = run_sweep(prepare_sweep(path, workers=2), tmp_path / "runs")
    assert outcome.failed == []
    combined = outcome.results["combined"]
    assert combined["study_a_runs"] == {c.config.tasks[0].name: c.key for c in outcome.plan.cells}
    one_run = run_experiment(build_config(base), tmp_path / "one_run").summary()
    assert list(combined["tasks"]) == base["tasks"] and normalize(combined["tasks"]) == normalize(one_run["tasks"])
    assert combined["analysis"] == one_run["analysis"]
    figures = {p.name for p in (outcome.folder / "report").glob("*.png")}
    assert {"behaviour.png", "trajectories.png"} <= figures  # the cells' trajectories in one
    assert "cannot be read" not in (outcome.folder / "report.html").read_text()
    for planned, cell in zip(outcome.plan.cells, outcome.results["cells"]):  # its cost: its stages' seconds, as saved
        run, task = RunStore(tmp_path / "runs").find(cell["run"]), planned.config.tasks[0].name
        assert list(cell["cost"]["stages"])[:2] == [f"{task}/data", f"{task}/pretrained"] and cell["cost"]["cpu_threads"] == 1
        assert cell["cost"]["stages"][f"{task}/forget"] == round(run.stage(f"{task}/forget")["seconds"], 1)
        assert cell["cost"]["seconds"] == round(sum(run.stage_seconds().values()), 1) > 0


def test_results_only_reports_the_cells_finished_so_far_and_starts_nothing(tmp_path):
    from forgetlab.sweep import sweep_results

    planned = prepare_sweep(tiny_sweep(tmp_path))
    runs = tmp_path / "runs"
    first = planned.cells[0]
    assert run_experiment(build_config(first.recipe()), runs).id == first.key  # finished outside the sweep
    outcome = sweep_results(planned, runs)
    assert outcome.results["counts"] == {"finished": 1, "running": 0, "failed": 0, "blocked": 0, "waiting": 3}
    assert [c["status"] for c in outcome.results["cells"]] == ["finished", "waiting", "waiting", "waiting"]
    assert outcome.results["cells"][0]["values"] and outcome.results["cells"][1]["cost"] is None
    assert [r["id"] for r in RunStore(runs).list()] == [first.key]  # nothing started
    assert {"results.json", "results.md", "report.html", "plan.json"} <= {p.name for p in outcome.folder.iterdir()}
    with pytest.raises(ValueError, match="search"):
        search = dict(yaml.safe_load(Path(tiny_sweep(tmp_path)).read_text()), grid=None,
                      search={"objective": "selected.forget_loss", "trials": 2, "space": {"forget.lr": {"log_uniform": [1e-4, 1e-2]}}})
        (tmp_path / "search.yaml").write_text(yaml.safe_dump({k: v for k, v in search.items() if v is not None}))
        sweep_results(prepare_sweep(tmp_path / "search.yaml"), runs)
