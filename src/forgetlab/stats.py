"""The statistics forgetlab reports, as pure functions of numbers (numpy/scipy, no models):

* :func:`percentile_interval` and :func:`bootstrap_ci`: percentile bootstrap intervals;
* ROC statistics of a score that should rank positives ("members") above negatives: :func:`roc_auc`
  (``P(pos > neg) + ½ P(tie)``, = scikit-learn's ``roc_auc_score``), :func:`roc_curve`, :func:`tpr_at_fpr`
  and the stratified bootstrap :func:`bootstrap_auc_ci`; :func:`auc_with_ci` for a score and binary labels;
* :func:`correlation`: Pearson's r and Spearman's ρ with two-sided p-values and percentile bootstrap intervals
  over the (x, y) pairs, resampled jointly. Pearson's p is scipy's (``scipy.stats.pearsonr``). Spearman's p is
  exact for up to :data:`EXACT_SPEARMAN_MAX_N` pairs (``scipy.stats.permutation_test`` over every pairing: at
  n = 4 a perfect rank correlation has p = 2/24, where ``spearmanr``'s t approximation says 0), scipy's
  ``spearmanr`` above that.
  A resample in which x or y is constant has no correlation and is dropped. Every statistic is None when
  there are fewer than 3 pairs or x or y is constant.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
from scipy.stats import pearsonr, permutation_test, rankdata, spearmanr

MIN_POINTS = 3
#: Up to this many pairs Spearman's p-value counts all n! pairings (8! = 40,320: a fraction of a second).
EXACT_SPEARMAN_MAX_N = 8


def optional_float(value: Any) -> float | None:
    """``float(value)``, or None for None and NaN (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


# ------------------------------------------------------------------------- bootstrap


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """The central ``level`` interval of the finite ``values`` (percentiles), or None when none is finite."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def _as_list(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``statistic`` over items resampled with replacement.

    Returns None when there are no items or no resamples were asked for.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0 or n_resamples <= 0:
        return None
    rng = np.random.default_rng(seed)
    index = rng.integers(0, data.size, size=(n_resamples, data.size))
    stats = np.array([statistic(data[row]) for row in index]) if statistic is not np.mean else data[index].mean(axis=1)
    return percentile_interval(stats, level)


# ------------------------------------------------------------------------- ROC


def _labels_scores(members: Sequence[float], nonmembers: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    m, n = np.asarray(members, dtype=float), np.asarray(nonmembers, dtype=float)
    if m.size == 0 or n.size == 0:
        raise ValueError(f"need members and non-members, got {m.size} and {n.size}")
    if not (np.isfinite(m).all() and np.isfinite(n).all()):
        raise ValueError("membership scores must be finite")
    return np.concatenate([np.ones(m.size), np.zeros(n.size)]), np.concatenate([m, n])


def roc_auc(members: Sequence[float], nonmembers: Sequence[float]) -> float:
    """``P(member > non-member) + ½ P(tie)`` by average ranks (Mann–Whitney U / (n_m · n_n))."""
    labels, scores = _labels_scores(members, nonmembers)
    ranks = rankdata(scores)
    n_m = int(labels.sum())
    n_n = labels.size - n_m
    return float((ranks[labels == 1].sum() - n_m * (n_m + 1) / 2) / (n_m * n_n))


def roc_curve(members: Sequence[float], nonmembers: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` at every distinct score, highest first, starting at (0, 0) with
    threshold +inf (scikit-learn's ``roc_curve(..., drop_intermediate=False)``); "member" is ``score ≥ threshold``."""
    labels, scores = _labels_scores(members, nonmembers)
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    tps = np.cumsum(labels)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / labels.sum()]
    fpr = np.r_[0.0, fps / (labels.size - labels.sum())]
    return fpr, tpr, np.r_[np.inf, scores[last]]


def tpr_at_fpr(members: Sequence[float], nonmembers: Sequence[float], max_fpr: float, *, strict: bool = False) -> float:
    """The largest TPR among ROC points with ``FPR ≤ max_fpr`` (``strict``: ``FPR < max_fpr``, as LiRA's code).

    The point (0, 0) is always on the curve, so the result is 0 when no threshold qualifies.
    """
    fpr, tpr, _ = roc_curve(members, nonmembers)
    return float(tpr[(fpr < max_fpr) if strict else (fpr <= max_fpr)].max())


def bootstrap_auc_ci(members: Sequence[float], nonmembers: Sequence[float], *, n_resamples: int = 1000,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of the AUC, members and non-members resampled separately (stratified)."""
    if n_resamples <= 0:
        return None
    m, n = np.asarray(members, dtype=float), np.asarray(nonmembers, dtype=float)
    rng = np.random.default_rng(seed)
    mi = m[rng.integers(0, m.size, size=(n_resamples, m.size))]
    ni = n[rng.integers(0, n.size, size=(n_resamples, n.size))]
    ranks = rankdata(np.concatenate([mi, ni], axis=1), axis=1)
    aucs = (ranks[:, : m.size].sum(axis=1) - m.size * (m.size + 1) / 2) / (m.size * n.size)
    return percentile_interval(aucs, level)


def auc_with_ci(scores: Sequence[float], labels: Sequence[Any], *, n_resamples: int = 1000, seed: int = 0,
                level: float = 0.95) -> dict[str, Any]:
    """ROC-AUC of ``scores`` for the positive class (truthy labels) and its stratified bootstrap interval.

    Returns ``{"auc", "ci", "n_pos", "n_neg"}``; ``auc`` and ``ci`` are None when either class is empty.
    0.5 = the score does not separate the classes; > 0.5: positives score higher.
    """
    values = np.asarray(scores, dtype=float).ravel()
    positive = np.array([bool(label) for label in labels], dtype=bool)
    if positive.size != values.size:
        raise ValueError(f"scores and labels differ in length: {values.size} and {positive.size}")
    pos, neg = values[positive], values[~positive]
    out: dict[str, Any] = {"auc": None, "ci": None, "n_pos": int(pos.size), "n_neg": int(neg.size)}
    if pos.size == 0 or neg.size == 0:
        return out
    out["auc"] = roc_auc(pos, neg)
    interval = bootstrap_auc_ci(pos, neg, n_resamples=n_resamples, seed=seed, level=level)
    out["ci"] = None if interval is None else [interval[0], interval[1]]
    return out


# ------------------------------------------------------------------------- correlation


def _pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xs.size != ys.size:
        raise ValueError(f"x and y differ in length: {xs.size} and {ys.size}")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("correlation needs finite values (drop missing ones first)")
    return xs, ys


def _defined(xs: np.ndarray, ys: np.ndarray) -> bool:
    return xs.size >= MIN_POINTS and np.ptp(xs) > 0 and np.ptp(ys) > 0


def _row_pearson(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Pearson's r of every row pair; NaN where a row is constant."""
    xc = xs - xs.mean(axis=1, keepdims=True)
    yc = ys - ys.mean(axis=1, keepdims=True)
    denominator = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / denominator
    r[denominator == 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def _bootstrap_cis(xs: np.ndarray, ys: np.ndarray, n_resamples: int, seed: int,
                   level: float) -> tuple[list[float] | None, list[float] | None]:
    """Percentile intervals of (Pearson r, Spearman ρ) over pairs resampled jointly."""
    if n_resamples <= 0:
        return None, None
    rng = np.random.default_rng(seed)
    index = rng.integers(0, xs.size, size=(n_resamples, xs.size))
    bx, by = xs[index], ys[index]
    pearson = _row_pearson(bx, by)
    spearman = _row_pearson(rankdata(bx, axis=1), rankdata(by, axis=1))
    return _as_list(percentile_interval(pearson, level)), _as_list(percentile_interval(spearman, level))


def exact_spearman_p(xs: np.ndarray, ys: np.ndarray) -> float:
    """Two-sided p-value of Spearman's ρ over all n! pairings (for small n: see :data:`EXACT_SPEARMAN_MAX_N`)."""
    y_ranks = rankdata(ys)

    def rho(x_ranks: np.ndarray, axis: int = -1) -> np.ndarray:
        rows = np.moveaxis(np.atleast_2d(x_ranks), axis, -1)
        return _row_pearson(rows, np.broadcast_to(y_ranks, rows.shape))

    result = permutation_test((rankdata(xs),), rho, permutation_type="pairings", n_resamples=np.inf,
                              vectorized=True, alternative="two-sided")
    return float(result.pvalue)


def correlation(x: Sequence[float], y: Sequence[float], *, n_resamples: int = 2000, seed: int = 0,
                level: float = 0.95) -> dict[str, Any]:
    """Pearson and Spearman correlation of paired values, with p-values and bootstrap intervals.

    Returns ``{"n", "pearson_r", "pearson_p", "pearson_ci", "spearman_rho", "spearman_p",
    "spearman_ci"}``; a ``*_ci`` is ``[low, high]`` or None. With fewer than 3 pairs or constant x or y
    everything but ``n`` is None. Raises ValueError on unequal lengths or non-finite values.
    """
    xs, ys = _pairs(x, y)
    out: dict[str, Any] = {"n": int(xs.size), "pearson_r": None, "pearson_p": None, "pearson_ci": None,
                           "spearman_rho": None, "spearman_p": None, "spearman_ci": None}
    if not _defined(xs, ys):
        return out
    pearson, spearman = pearsonr(xs, ys), spearmanr(xs, ys)
    out["pearson_r"], out["pearson_p"] = optional_float(pearson[0]), optional_float(pearson[1])
    out["spearman_rho"] = optional_float(spearman[0])
    out["spearman_p"] = exact_spearman_p(xs, ys) if xs.size <= EXACT_SPEARMAN_MAX_N else optional_float(spearman[1])
    out["pearson_ci"], out["spearman_ci"] = _bootstrap_cis(xs, ys, n_resamples, seed, level)
    return out
