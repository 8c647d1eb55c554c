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
    return None if removed == 0 else (attacked - forgotten) / removed


def _paired(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"recovery: per-item values of different sets ({a.size} and {b.size} items)")
    return a - b


def recovery(attacked: Sequence[float], forgotten: Sequence[float], original: Sequence[float], *,
             n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Recovery of a per-item metric (one value per forget item, the same items in the same order in all three).

    Returns the three means, ``difference`` (attacked − forgotten) and ``removed`` (original − forgotten) with
    their paired bootstrap 95 % intervals, and ``recovery`` (None when ``removed``'s interval contains 0).
    """
    difference, removed = _paired(attacked, forgotten), _paired(original, forgotten)
    removed_ci = bootstrap_ci(removed, n_resamples=n_resamples, seed=seed)
    within_noise = removed_ci is None or removed_ci[0] <= 0 <= removed_ci[1]
    means = {name: float(np.mean(values)) for name, values in (("attacked", attacked), ("forgotten", forgotten), ("original", original))}
    return {
        **means,
        "difference": float(difference.mean()),
        "difference_ci": _as_list(bootstrap_ci(difference, n_resamples=n_resamples, seed=seed)),
        "removed": float(removed.mean()),
        "removed_ci": _as_list(removed_ci),
        "recovery": None if within_noise else recovery_ratio(means["attacked"], means["forgotten"], means["original"]),
    }


def _as_list(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


register_metric("recovery", "lower", "Zhang et al. 2025 (quantization); Deeb & Roger 2024 (relearning)",
                "(m_attacked - m_forgotten) / (m_original - m_forgotten): the share of what forgetting removed that an attack brings back")
