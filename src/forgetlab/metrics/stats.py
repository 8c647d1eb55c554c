"""Small statistics shared by the metrics: percentile bootstrap intervals."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


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
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)
