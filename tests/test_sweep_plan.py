"""A sweep's plan: one run per assignment with the id ``forgetlab run`` would give it, threads pinned in the
recipe, parts (a cross-task matrix's runs) before the cells that need them, shared parts planned once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from forgetlab.config import ConfigError
from forgetlab.experiments import EXPERIMENTS, build_config, run_id
from forgetlab.sweep import prepare_sweep
from tests.conftest import unlearn_raw_config

GOLDEN_CROSS_TASK = "tests/golden/recipes/cross_task.yaml"


def write(tmp_path, sweep: dict) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return str(path)


def test_each_cell_is_the_run_forgetlab_run_would_make(tmp_path):
    base = unlearn_raw_config()
    plan = prepare_sweep(write(tmp_path, {"base": base, "grid": {"forget.method": ["gradient_ascent", "npo"], "seed": [0, 1]}}))
    assert [c.label for c in plan.cells] == [f"forget.method={m} seed={s}" for m in ("gradient_ascent", "npo") for s in (0, 1)]
    for cell in plan.cells:
        alone = build_config(dict(base, seed=cell.axes["seed"], forget=dict(base["forget"], method=cell.axes["forget.method"])))
        assert cell.key == run_id(alone, EXPERIMENTS.get("unlearn"))
    assert len({c.key for c in plan.cells}) == 4 and plan.id.startswith("sweep-")


def test_threads_are_pinned_in_every_cell_never_left_to_the_environment(tmp_path):
    base = dict(unlearn_raw_config(), cpu_threads=None)
    unpinned = prepare_sweep(write(tmp_path, {"base": base, "grid": {"seed": [0]}}))
    assert unpinned.cells[0].config.cpu_threads == 1
    pinned = prepare_sweep(write(tmp_path, {"base": base, "grid": {"seed": [0]}, "cpu_threads": 2}))
    assert pinned.cells[0].config.cpu_threads == 2
    base_says = prepare_sweep(write(tmp_path, {"base": dict(base, cpu_threads=3), "grid": {"seed": [0]}}))
    assert base_says.cells[0].config.cpu_threads == 3
    axis = prepare_sweep(write(tmp_path, {"base": base, "grid": {"cpu_threads": [1, 2]}, "cpu_threads": 4}))
    assert [c.config.cpu_threads for c in axis.cells] == [1, 2]


def test_a_cross_task_recipe_fans_out_into_its_parts_in_dependency_order():
    plan = prepare_sweep(GOLDEN_CROSS_TASK)
    compare, arith, *cells, matrix = plan.cells
    for task, study_a in (("synth_compare", compare), ("synth_arith", arith)):
        assert study_a.config.experiment == "forget_generalization" and study_a.needs == () and not study_a.top
        assert [t.name for t in study_a.config.tasks] == [task] and study_a.label == f"Study A: {task}"
    assert sorted(c.label for c in cells) == ["forget synth_arith, score synth_compare", "forget synth_compare, score synth_arith"]
    runs = {"synth_compare": compare.key, "synth_arith": arith.key}
    for cell in cells:
        assert set(cell.needs) == {compare.key, arith.key}
        assert (cell.config.forget_run, cell.config.eval_run) == (runs[cell.config.forget_task], runs[cell.config.eval_task])
    assert matrix.top and matrix.config.experiment == "cross_task" and set(matrix.needs) == {compare.key, arith.key, *(c.key for c in cells)}
    assert [c.top for c in plan.top_cells] == [True]


def test_a_run_that_is_both_a_cell_and_another_cells_part_is_planned_once(tmp_path):
    study_a = {"experiment": "forget_generalization", "tasks": ["synth_compare"], "save_models": True}
    sweep = {"base": str(Path(GOLDEN_CROSS_TASK).resolve()), "cells": [{}, study_a]}
    plan = prepare_sweep(write(tmp_path, sweep))
    assert len(plan.cells) == 5  # two Study A runs, two forgetting cells, the matrix: synth_compare's not twice
    first = plan.cells[0]
    assert first.config.experiment == "forget_generalization" and first.top and first.axes == study_a
    assert [c.top for c in plan.cells] == [True, False, False, False, True]


def test_two_assignments_that_are_the_same_run_are_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"cells \[cpu_threads=1\] and \[cpu_threads=1\] are the same run"):
        prepare_sweep(write(tmp_path, {"base": unlearn_raw_config(), "cells": [{"cpu_threads": 1}, {"cpu_threads": 1}]}))


@pytest.mark.parametrize("sweep, fragment", [
    ({"grid": {"forget.lrr": [0.1]}}, "cell [forget.lrr=0.1]: field 'forget.lrr': Extra inputs are not permitted"),
    ({"grid": {"forget.method": ["nope"]}}, "cell [forget.method=nope]: forget.method: unknown method 'nope'"),
    ({"grid": {"seed": [-1]}}, "cell [seed=-1]: field 'seed'"),
])
def test_a_bad_cell_is_named_with_its_assignment(tmp_path, sweep, fragment):
    with pytest.raises((ConfigError, KeyError, ValueError)) as error:
        prepare_sweep(write(tmp_path, {"base": unlearn_raw_config(), **sweep}))
    assert fragment in str(error.value)


def test_overrides_apply_to_the_base(tmp_path):
    plan = prepare_sweep(write(tmp_path, {"base": unlearn_raw_config(), "grid": {"seed": [0]}}), ["forget.lr=0.25"])
    assert plan.cells[0].config.forget.lr == 0.25


def test_a_cell_label_shows_a_task_by_its_name():
    from forgetlab.sweep.plan import label_of

    assert label_of({"tasks": [{"name": "cb", "source": "local"}], "data.finetune_size": 150}) == "tasks=cb data.finetune_size=150"
    assert label_of({"tasks": ["rte", {"name": "boolq"}], "forget.options": {"beta": 0.5}}) == "tasks=rte,boolq forget.options={'beta': 0.5}"
    assert label_of({}) == "base"
