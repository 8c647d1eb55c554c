"""Correlations and AUCs with percentile bootstrap intervals, as plain JSON-serialisable values.

* :func:`correlation`: Pearson's r and Spearman's ρ with scipy's p-values (``scipy.stats.pearsonr`` /
  ``spearmanr``, two-sided) and percentile bootstrap intervals over the (x, y) pairs, resampled jointly.
  A resample in which x or y is constant has no correlation and is dropped. Every statistic is None when
  there are fewer than 3 pairs or x or y is constant.
* :func:`auc_with_ci`: ROC-AUC of a score for a binary label (``P(score(pos) > score(neg)) + ½ P(tie)``),
  computed by :func:`forgetlab.metrics.mia.roc_auc` with the positives as "members", and its stratified
  bootstrap interval (:func:`forgetlab.metrics.mia.bootstrap_auc_ci`). None when a class is empty.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy.stats import pearsonr, rankdata, spearmanr

MIN_POINTS = 3


def optional_float(value: Any) -> float | None:
    """``float(value)``, or None for None and NaN (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


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


def _percentile_ci(values: np.ndarray, level: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return [float(low), float(high)]


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
    return _percentile_ci(pearson, level), _percentile_ci(spearman, level)


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
    out["spearman_rho"], out["spearman_p"] = optional_float(spearman[0]), optional_float(spearman[1])
    out["pearson_ci"], out["spearman_ci"] = _bootstrap_cis(xs, ys, n_resamples, seed, level)
    return out


def auc_with_ci(scores: Sequence[float], labels: Sequence[Any], *, n_resamples: int = 1000, seed: int = 0,
                level: float = 0.95) -> dict[str, Any]:
    """ROC-AUC of ``scores`` for the positive class (truthy labels) and its stratified bootstrap interval.

    Returns ``{"auc", "ci", "n_pos", "n_neg"}``; ``auc`` and ``ci`` are None when either class is empty.
    0.5 = the score does not separate the classes; > 0.5: positives score higher.
    """
    # Imported here: forgetlab.metrics.mia imports the scoring engine (torch); this module stays light.
    from forgetlab.metrics.mia import bootstrap_auc_ci, roc_auc

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
