"""Cross-task matrix: forget ratios, UPGMA orders, two-way variance decomposition."""

import json

import numpy as np
import pytest
from scipy.cluster.hierarchy import leaves_list, linkage

from forgetlab.analysis.cross_task import cluster_order, cross_task_summary, forget_ratio_matrix, variance_explained


def test_forget_ratio_matrix():
    reference = {"a": 0.9, "b": 0.7, "c": 0.505}
    accuracy = {"a": {"a": 0.5, "b": 0.6, "c": 0.5}, "b": {"a": 0.8, "b": 0.9, "c": 0.4}}
    out = forget_ratio_matrix(reference, accuracy)
    assert out["a"]["a"] == pytest.approx(1.0)
    assert out["a"]["b"] == pytest.approx(0.5)
    assert out["b"]["a"] == pytest.approx(0.25)
    assert out["b"]["b"] == pytest.approx(-1.0)  # unclipped
    assert out["a"]["c"] is None and out["b"]["c"] is None  # reference within the guard of chance
    assert forget_ratio_matrix({"a": 0.45}, {"x": {"a": 0.4}})["x"]["a"] is None  # below chance: None
    assert forget_ratio_matrix({"a": 0.8}, {"x": {"a": 0.65}}, chance=0.5, guard=0.4)["x"]["a"] is None


def test_variance_explained_by_hand():
    # rows: means 2 and 5; columns: means 2.5, 3.5, 4.5; grand 3.5
    m = np.array([[1.0, 2.0, 3.0],
                  [4.0, 5.0, 6.0]])
    # SS_total = Σ(x − 3.5)² = 17.5; SS_rows = 3·(1.5² + 1.5²) = 13.5; SS_cols = 2·(1 + 0 + 1) = 4; residual 0
    out = variance_explained(m)
    assert out["rows"] == pytest.approx(13.5 / 17.5)
    assert out["columns"] == pytest.approx(4 / 17.5)
    assert out["residual"] == pytest.approx(0.0, abs=1e-12)


def test_variance_explained_matches_manual_anova():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(5, 4)) + np.arange(4)  # a strong column effect
    grand = m.mean()
    ss_total = sum((v - grand) ** 2 for v in m.ravel())
    ss_rows = sum(4 * (row.mean() - grand) ** 2 for row in m)
    ss_cols = sum(5 * (col.mean() - grand) ** 2 for col in m.T)
    ss_res = sum((m[i, j] - m[i].mean() - m[:, j].mean() + grand) ** 2 for i in range(5) for j in range(4))
    out = variance_explained(m)
    assert out["rows"] == pytest.approx(ss_rows / ss_total)
    assert out["columns"] == pytest.approx(ss_cols / ss_total)
    assert out["residual"] == pytest.approx(ss_res / ss_total)
    assert sum(out.values()) == pytest.approx(1.0)
    assert out["columns"] > out["rows"]


def test_variance_explained_undefined_and_missing():
    assert variance_explained(np.full((3, 3), 0.4)) == {"rows": None, "columns": None, "residual": None}
    assert variance_explained(np.zeros((0, 0)))["rows"] is None
    m = np.array([[1.0, np.nan, 3.0], [4.0, np.nan, 6.0]])  # an all-None column is dropped
    assert variance_explained(m) == pytest.approx(variance_explained(np.array([[1.0, 3.0], [4.0, 6.0]])))
    m[0, 0] = np.nan  # a scattered None: no decomposition
    assert variance_explained(m)["rows"] is None


def test_cluster_order_equals_scipy_upgma():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(6, 4))
    rows, cols = cluster_order(m)
    assert rows == list(leaves_list(linkage(m, method="average")))
    assert cols == list(leaves_list(linkage(m.T, method="average")))
    assert all(type(i) is int for i in rows + cols)


def test_cluster_order_groups_similar_rows():
    m = np.array([[0.0, 0.1], [5.0, 5.1], [0.1, 0.0], [5.1, 5.0]])
    rows, _ = cluster_order(m)
    assert {frozenset(rows[:2]), frozenset(rows[2:])} == {frozenset({0, 2}), frozenset({1, 3})}


def test_cluster_order_small_and_missing():
    rows, cols = cluster_order(np.array([[1.0, 2.0, 3.0]]))
    assert rows == [0] and sorted(cols) == [0, 1, 2]
    assert cluster_order(np.array([[1.0], [2.0]]))[1] == [0]
    m = np.array([[0.0, np.nan], [0.2, 1.0], [5.0, 3.0]])
    filled = np.array([[0.0, 2.0], [0.2, 1.0], [5.0, 3.0]])  # NaN -> column mean (1 + 3) / 2
    assert cluster_order(m) == cluster_order(filled)


def test_cross_task_summary():
    tasks = ["piqa", "rte", "sciq"]
    reference = {"piqa": 0.8, "rte": 0.7, "sciq": 0.9, "extra": 0.9}
    accuracy = {"piqa": {"piqa": 0.5, "rte": 0.5, "sciq": 0.6, "extra": 0.1},
                "rte": {"piqa": 0.75, "rte": 0.52, "sciq": 0.88},
                "sciq": {"piqa": 0.78, "rte": 0.5, "sciq": 0.6}}
    out = cross_task_summary(reference, accuracy, tasks)
    assert out["tasks"] == tasks
    assert out["reference"] == {"piqa": 0.8, "rte": 0.7, "sciq": 0.9}
    assert list(out["forget_ratio"]) == tasks and list(out["forget_ratio"]["piqa"]) == tasks
    assert out["forget_ratio"]["sciq"]["rte"] == pytest.approx(1.0)
    matrix = np.array([[out["forget_ratio"][a][b] for b in tasks] for a in tasks])
    rows, cols = cluster_order(matrix)
    assert out["row_order"] == [tasks[i] for i in rows] and out["col_order"] == [tasks[i] for i in cols]
    assert sorted(out["row_order"]) == sorted(tasks)
    assert out["variance_explained"] == pytest.approx(variance_explained(matrix))
    assert json.loads(json.dumps(out)) == out


def test_not_learned_columns_have_no_ratio_and_are_listed():
    """Column b's reference (0.7) would give ratios; b was not learned, so its whole column is None."""
    tasks = ["a", "b", "c"]
    reference = {"a": 0.8, "b": 0.7, "c": 0.9}
    accuracy = {x: {"a": 0.6, "b": 0.55, "c": 0.7} for x in tasks}
    out = cross_task_summary(reference, accuracy, tasks, not_learned=["b", "zzz"])
    assert out["not_learned"] == ["b"]
    assert [out["forget_ratio"][x]["b"] for x in tasks] == [None, None, None]
    assert [out["forget_ratio"][x]["a"] for x in tasks] == pytest.approx([0.2 / 0.3] * 3)
    assert [out["forget_ratio"][x]["c"] for x in tasks] == pytest.approx([0.5] * 3)
    assert cross_task_summary(reference, accuracy, tasks)["forget_ratio"]["a"]["b"] == pytest.approx(0.75)
    assert cross_task_summary(reference, accuracy, tasks)["not_learned"] == []


def test_cross_task_summary_with_unmeasured_cells():
    out = cross_task_summary({"a": 0.9, "b": 0.505}, {"a": {"a": 0.5, "b": 0.5}}, ["a", "b"])
    assert out["accuracy"]["b"] == {"a": None, "b": None}
    assert out["forget_ratio"]["a"]["b"] is None and out["forget_ratio"]["b"]["a"] is None
    assert sorted(out["row_order"]) == ["a", "b"]
    json.dumps(out)
    assert cross_task_summary({}, {}, [])["row_order"] == []
