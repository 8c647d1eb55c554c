"""Searches: the objective's direction from the metric registry, constraints, trials read from their runs, the
best feasible trial, and a rerun that asks the same points and finds them finished."""

from __future__ import annotations

import pytest
import yaml

from forgetlab.config import ConfigError
from forgetlab.store import RunStore
from forgetlab.sweep import prepare_sweep, run_sweep
from forgetlab.sweep.search import badness_of
from forgetlab.sweep.spec import Bound, SearchSpec
from tests.conftest import unlearn_raw_config


def search_spec(**fields) -> SearchSpec:
    return SearchSpec.model_validate({"objective": "selected.forget_loss", "trials": 2, "space": {"forget.lr": {"uniform": [0.1, 0.2]}}, **fields})


def test_direction_comes_from_the_metric_registry_unless_given():
    assert badness_of(search_spec(), "unlearn")(3.0) == -3.0  # a forget loss should rise
    assert badness_of(search_spec(objective="selected.utility_loss"), "unlearn")(3.0) == 3.0  # a utility loss should not
    assert badness_of(search_spec(objective="metrics.final.mia/loss_auc"), "unlearn")(0.7) == pytest.approx(0.2)  # closer to 0.5
    assert badness_of(search_spec(direction="maximize", objective="anything"), "unlearn")(3.0) == -3.0
    assert badness_of(search_spec(direction="minimize", objective="anything"), "forget_generalization")(3.0) == 3.0
    with pytest.raises(ConfigError, match="search.objective: selected.nothing: not a metric of an unlearn summary"):
        badness_of(search_spec(objective="selected.nothing"), "unlearn")
    with pytest.raises(ConfigError, match="give search.direction"):
        badness_of(search_spec(objective="tasks.boolq.forget_ratio"), "forget_generalization")


def test_a_bound_says_how_far_a_value_is_outside():
    assert Bound(key="k", max=3.0).violation(2.5) == 0.0
    assert Bound(key="k", max=3.0).violation(3.5) == 0.5
    assert Bound(key="k", min=1.0, max=3.0).violation(0.25) == 0.75
    assert Bound(key="k", min=1.0).violation(None) == 1.0
    with pytest.raises(ValueError, match="give max, min or both"):
        Bound(key="k")


def test_search_cannot_be_mixed_with_axes(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": unlearn_raw_config(), "grid": {"seed": [0]},
                                    "search": {"objective": "selected.forget_loss", "trials": 2, "space": {"forget.lr": {"uniform": [0.1, 0.2]}}}}))
    with pytest.raises(ConfigError, match="cannot be combined with grid"):
        prepare_sweep(path)


@pytest.mark.slow
def test_a_search_runs_its_trials_reports_the_best_feasible_and_resumes(tmp_path):
    path = tmp_path / "search.yaml"
    search = {"objective": "selected.forget_loss", "trials": 4, "parallel": 2, "seed": 1,
              "space": {"forget.lr": {"log_uniform": [1e-4, 3e-2]}}, "constraints": [{"key": "selected.utility_loss", "max": 1e9}]}
    path.write_text(yaml.safe_dump({"name": "lr", "base": unlearn_raw_config(), "search": search, "workers": 2}))
    runs = tmp_path / "runs"
    first = run_sweep(prepare_sweep(path), runs)
    trials = first.results["search"]["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3] and all(t["feasible"] for t in trials)
    store = RunStore(runs)
    for trial in trials:
        summary = store.finished_run(trial["run"]).summary()
        assert trial["value"] == summary["selected"]["forget_loss"] and trial["badness"] == -trial["value"]
        assert store.finished_run(trial["run"]).summary()["experiment"] == "unlearn"
    best = max(trials, key=lambda t: t["value"])  # a forget loss: higher is better
    assert first.results["search"]["best"] == best
    assert len({t["params"]["forget.lr"] for t in trials}) == 4
    again = run_sweep(prepare_sweep(path), runs)  # same points asked, their runs found finished
    assert again.results["search"] == first.results["search"] and again.folder == first.folder
    assert all(s.seconds is None for s in again.state.cells.values())  # nothing was run again


@pytest.mark.slow
def test_infeasible_trials_are_never_the_best(tmp_path):
    path = tmp_path / "search.yaml"
    search = {"objective": "selected.forget_loss", "trials": 2, "parallel": 2, "sampler": "random",
              "space": {"forget.lr": {"log_uniform": [1e-4, 3e-2]}}, "constraints": [{"key": "selected.utility_loss", "max": 0.0}]}
    path.write_text(yaml.safe_dump({"name": "none", "base": unlearn_raw_config(), "search": search, "workers": 2}))
    outcome = run_sweep(prepare_sweep(path), tmp_path / "runs")
    assert [t["feasible"] for t in outcome.results["search"]["trials"]] == [False, False]
    assert outcome.results["search"]["best"] is None
