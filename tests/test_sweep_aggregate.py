"""Aggregation over seeds: means, bootstrap intervals (against an independent resampling), the trade-off front."""

from __future__ import annotations

import numpy as np
import pytest

from forgetlab.sweep.aggregate import chosen, flatten, group_cells, mean_with_ci, pareto_front, single_matches


def test_flatten_keeps_finite_numbers_by_dotted_key():
    summary = {"a": 1, "b": {"c": 2.5, "d": [1, 2], "e": True, "f": None, "g": {"h": float("nan"), "i": -3}}, "s": "x"}
    assert flatten(summary) == {"a": 1.0, "b.c": 2.5, "b.g.i": -3.0}


def test_chosen_matches_patterns_in_their_order():
    values = {"tasks.rte.forget_ratio": 0.5, "tasks.cola.forget_ratio": 0.25, "tasks.rte.acc": 0.9, "steps": 3.0}
    assert list(chosen(values, ["steps", "tasks.*.forget_ratio"])) == ["steps", "tasks.rte.forget_ratio", "tasks.cola.forget_ratio"]


def test_a_per_task_metric_of_one_task_cells_is_one_column_named_by_its_pattern():
    rte = {"tasks.rte.forget_ratio": 0.5, "tasks.rte.acc": 0.9, "groups.id.steps": 1.0, "groups.ood.steps": 2.0}
    cola = {"tasks.cola.forget_ratio": 0.25, "groups.id.steps": 3.0, "groups.ood.steps": 4.0}
    patterns = ["tasks.*.forget_ratio", "tasks.*.acc", "groups.*.steps", "steps", "tasks.rte.acc"]
    single = single_matches([rte, cola, {}], patterns)
    # tasks.*.acc only rte has, but the cells are one task each (forget_ratio differs): named by its pattern too;
    # groups.*: two per cell; no wildcard
    assert single == ["tasks.*.forget_ratio", "tasks.*.acc"]
    assert chosen(rte, patterns, single) == {"tasks.*.forget_ratio": 0.5, "tasks.*.acc": 0.9, "groups.id.steps": 1.0,
                                             "groups.ood.steps": 2.0, "tasks.rte.acc": 0.9}
    assert chosen(cola, patterns, single) == {"tasks.*.forget_ratio": 0.25, "groups.id.steps": 3.0, "groups.ood.steps": 4.0}
    both = {**rte, **cola}  # a cell over two tasks: a column per task again
    assert single_matches([rte, both], patterns) == []
    seeds = [rte, dict(rte)]  # seeds of one task: the same keys everywhere, named as they are
    assert single_matches(seeds, patterns) == []


def test_mean_ci_is_the_percentile_bootstrap_of_the_mean_over_seeds():
    values = [0.2, 0.5, 0.9]
    found = mean_with_ci(values)
    assert found["mean"] == pytest.approx(np.mean(values), abs=1e-15)
    assert found["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-15)
    rng = np.random.default_rng(0)  # the same resampling, written out
    means = np.asarray(values)[rng.integers(0, 3, size=(10_000, 3))].mean(axis=1)
    assert found["ci"] == pytest.approx(list(np.quantile(means, [0.025, 0.975])), abs=1e-12)
    assert found["ci"][0] >= min(values) and found["ci"][1] <= max(values)
    assert mean_with_ci([0.4]) == {"mean": 0.4, "std": None, "ci": None, "n": 1, "values": [0.4]}


def test_with_more_seeds_the_interval_is_of_the_mean_not_just_the_range():
    values = [0.1, 0.15, 0.3, 0.35, 0.8, 0.95]  # with 3 seeds the 2.5 % tails are the extremes, whatever the statistic
    rng = np.random.default_rng(0)
    means = np.asarray(values)[rng.integers(0, 6, size=(10_000, 6))].mean(axis=1)
    found = mean_with_ci(values)["ci"]
    assert found == pytest.approx(list(np.quantile(means, [0.025, 0.975])), abs=1e-12)
    assert min(values) < found[0] < found[1] < max(values)


def test_groups_pool_seeds_and_keep_conditions_apart():
    cells = [{"run": f"r{m}{s}", "axes": {"method": m, "seed": s}, "values": {"x": float(10 * (m == "b") + s)}}
             for m in ("a", "b") for s in (0, 1, 2)]
    groups = group_cells(cells, ["method", "seed"])
    assert [g["axes"] for g in groups] == [{"method": "a"}, {"method": "b"}]
    assert [g["seeds"] for g in groups] == [[0, 1, 2], [0, 1, 2]]
    assert [g["metrics"]["x"]["mean"] for g in groups] == [1.0, 11.0]
    assert groups[1]["runs"] == ["rb0", "rb1", "rb2"]


def test_pareto_front_respects_each_direction():
    points = [(1.0, 1.0), (2.0, 2.0), (3.0, 1.5), (0.5, 0.5)]
    assert pareto_front(points, ("higher", "lower")) == [0, 2, 3]  # (2, 2) is beaten by (3, 1.5)
    assert pareto_front(points, ("higher", "higher")) == [1, 2]
    assert pareto_front(points, ("lower", "lower")) == [3]
