"""Recovery: how much of what forgetting removed an attack brings back (issue "Did it really forget?")::

    recovery = (m_attacked − m_forgotten) / (m_original − m_forgotten)

0 = nothing came back, 1 = all of it (it can pass 1, or go below 0 when the attack pushes further away).
The ratio is undefined (None, the raw values still reported) when forgetting did not move the metric beyond
noise: when the paired bootstrap 95 % interval of the per-item ``m_original − m_forgotten`` contains 0 (or,
for a set-level metric without per-item values, when the two are equal). The raw difference
``m_attacked − m_forgotten`` gets its own paired bootstrap interval. A control (the same attack on a model
that never learned the forget set) is reported beside it by the experiment.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from forgetlab.metrics.registry import register_metric
from forgetlab.stats import bootstrap_ci


def recovery_ratio(attacked: float, forgotten: float, original: float) -> float | None:
    """``(attacked − forgotten) / (original − forgotten)``; None when original equals forgotten."""
    removed = original - forgotten
    return None if removed == 0 else (attacked - forgotten) / removed + 0.0  # + 0.0: no "-0.0" when nothing moved


def _paired(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"recovery: per-item values of different sets ({a.size} and {b.size} items)")
    return a - b


def recovery(attacked: float, forgotten: float, original: float, *,
             items: tuple[Sequence[float], Sequence[float], Sequence[float]] | None = None,
             n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Recovery of one metric from its values for the attacked, forgotten and original models.

    With ``items`` (the per-item values behind the metric, the same forget items in the same order for the
    three models), ``difference`` (attacked − forgotten) and ``removed`` (original − forgotten) get paired
    bootstrap 95 % intervals, and ``recovery`` is None when ``removed``'s interval contains 0; without them,
    when ``original == forgotten``.
    """
    out: dict[str, Any] = {"attacked": attacked, "forgotten": forgotten, "original": original,
                           "difference": attacked - forgotten, "removed": original - forgotten}
    ratio = recovery_ratio(attacked, forgotten, original)
    if items is not None:
        difference, removed = _paired(items[0], items[1]), _paired(items[2], items[1])
        removed_ci = bootstrap_ci(removed, n_resamples=n_resamples, seed=seed)
        out["difference_ci"] = _as_list(bootstrap_ci(difference, n_resamples=n_resamples, seed=seed))
        out["removed_ci"] = _as_list(removed_ci)
        if removed_ci is None or removed_ci[0] <= 0 <= removed_ci[1]:
            ratio = None
    out["recovery"] = ratio
    return out


def _as_list(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


register_metric("recovery", "lower", "Zhang et al. 2025 (quantization); Deeb & Roger 2024 (relearning)",
                "(m_attacked - m_forgotten) / (m_original - m_forgotten): the share of what forgetting removed that an attack brings back")
