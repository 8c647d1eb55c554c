"""The cross-task forgetting matrix: forget task A with random labels, measure how much task B is forgotten.

``cell[A][B] = (reference[B] − accuracy[A][B]) / (reference[B] − chance)``, where ``reference[B]`` is the
accuracy on B of the model fine-tuned on B and ``accuracy[A][B]`` the accuracy on B after that model forgot
A (1 = B fully forgotten, 0 = untouched; unclipped). The cell is None when ``reference[B] − chance < guard``
(nothing above chance to forget) and in the whole column of a task B that was not learned (its Study A
category is ``not_learned``: acc_FT not above chance and acc_PT by its interval); those are listed.

Rows (forgetting task A) and columns (evaluation task B) are ordered by UPGMA clustering (average linkage,
Euclidean distance). A two-way ANOVA decomposition without replication says how much of the matrix's
variation the row task, the column task and neither (residual: interaction) explain; Study A finds the
evaluation task B explains most of it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage

from forgetlab.stats import optional_float

CHANCE = 0.5
GUARD = 0.01


def _ratio(reference: float | None, accuracy: float | None, chance: float, guard: float) -> float | None:
    if reference is None or accuracy is None or reference - chance < guard:
        return None
    return optional_float((reference - accuracy) / (reference - chance))


def forget_ratio_matrix(reference: dict[str, float], accuracy: dict[str, dict[str, float]], *,
                        chance: float = CHANCE, guard: float = GUARD,
                        not_learned: Sequence[str] = ()) -> dict[str, dict[str, float | None]]:
    """``cell[A][B]``, the forget ratio of evaluation task B after forgetting task A, for every measured pair.

    None when B has no reference, the accuracy is None, ``reference[B] − chance < guard``, or B is in
    ``not_learned``.
    """
    unlearned = set(not_learned)
    return {
        a: {b: None if b in unlearned else _ratio(optional_float(reference.get(b)), optional_float(acc), chance, guard)
            for b, acc in row.items()}
        for a, row in accuracy.items()
    }


def _fill_missing(matrix: np.ndarray) -> np.ndarray:
    """NaNs replaced by their column's mean (by the overall mean for an all-NaN column, 0 if all are NaN)."""
    filled = np.array(matrix, dtype=float)
    missing = np.isnan(filled)
    if not missing.any():
        return filled
    overall = float(np.nanmean(filled)) if not missing.all() else 0.0
    counts = (~missing).sum(axis=0)
    sums = np.where(missing, 0.0, filled).sum(axis=0)
    column_means = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
    filled[missing] = np.broadcast_to(column_means, filled.shape)[missing]
    return filled


def _leaf_order(rows: np.ndarray) -> list[int]:
    if rows.shape[0] < 2:
        return list(range(rows.shape[0]))
    return [int(i) for i in leaves_list(linkage(rows, method="average", metric="euclidean"))]


def cluster_order(matrix: np.ndarray) -> tuple[list[int], list[int]]:
    """Row and column leaf orders of UPGMA (average-linkage, Euclidean) clustering of the rows and the columns.

    Missing cells (NaN, i.e. None ratios) are first replaced by their column's mean, so they neither pull an
    item towards nor away from the others in that column. Fewer than 2 rows (columns) keep their order.
    """
    filled = _fill_missing(np.atleast_2d(np.asarray(matrix, dtype=float)))
    return _leaf_order(filled), _leaf_order(filled.T)


def _complete_part(matrix: np.ndarray) -> np.ndarray:
    """The matrix without rows and columns that are entirely NaN."""
    missing = np.isnan(matrix)
    return matrix[~missing.all(axis=1)][:, ~missing.all(axis=0)]


def variance_explained(matrix: np.ndarray) -> dict[str, float | None]:
    """Fractions of the total sum of squares explained by rows (forgetting task), columns (evaluation task), residual.

    Two-way ANOVA without replication: ``SS_rows = n_cols·Σ(row mean − grand)²``,
    ``SS_cols = n_rows·Σ(col mean − grand)²``, ``residual = SS_total − SS_rows − SS_cols``; the three
    fractions sum to 1. Rows or columns that are entirely NaN are dropped first; if any NaN remains, or the
    matrix is empty or constant (``SS_total = 0``), all three are None.
    """
    none: dict[str, float | None] = {"rows": None, "columns": None, "residual": None}
    m = _complete_part(np.atleast_2d(np.asarray(matrix, dtype=float)))
    if m.size == 0 or np.isnan(m).any() or np.ptp(m) == 0:
        return none
    grand = m.mean()
    ss_total = float(((m - grand) ** 2).sum())
    ss_rows = float(m.shape[1] * ((m.mean(axis=1) - grand) ** 2).sum())
    ss_cols = float(m.shape[0] * ((m.mean(axis=0) - grand) ** 2).sum())
    residual = ss_total - ss_rows - ss_cols
    return {"rows": ss_rows / ss_total, "columns": ss_cols / ss_total, "residual": residual / ss_total}


def cross_task_summary(reference: dict[str, float], accuracy: dict[str, dict[str, float]], tasks: Sequence[str], *,
                      chance: float = CHANCE, guard: float = GUARD, not_learned: Sequence[str] = ()) -> dict[str, Any]:
    """Everything the report shows about the cross-task matrix, rows and columns in the order of ``tasks``.

    Returns ``{"tasks", "reference", "accuracy", "forget_ratio", "not_learned", "row_order", "col_order",
    "variance_explained"}``: the inputs restricted to ``tasks`` (None where unmeasured), the forget-ratio
    matrix (None in the columns of ``not_learned`` tasks, listed in ``tasks`` order), the UPGMA orders
    as task names, and :func:`variance_explained`.
    """
    tasks = list(tasks)
    ref = {b: optional_float(reference.get(b)) for b in tasks}
    acc = {a: {b: optional_float(accuracy.get(a, {}).get(b)) for b in tasks} for a in tasks}
    ratios = forget_ratio_matrix(ref, acc, chance=chance, guard=guard, not_learned=not_learned)
    matrix = np.array([[np.nan if ratios[a][b] is None else ratios[a][b] for b in tasks] for a in tasks], dtype=float)
    row_order, col_order = cluster_order(matrix) if tasks else ([], [])
    return {
        "tasks": tasks,
        "reference": ref,
        "accuracy": acc,
        "forget_ratio": ratios,
        "not_learned": [b for b in tasks if b in set(not_learned)],
        "row_order": [tasks[i] for i in row_order],
        "col_order": [tasks[i] for i in col_order],
        "variance_explained": variance_explained(matrix.reshape(len(tasks), len(tasks))),
    }
