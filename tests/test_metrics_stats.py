"""Bootstrap intervals of a mean."""

import numpy as np
import pytest

from forgetlab.metrics.stats import bootstrap_ci


def test_bootstrap_matches_scipy_percentile_interval():
    from scipy import stats

    values = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 5, dtype=float)
    ours = bootstrap_ci(values, n_resamples=4000, seed=1)
    ref = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.03) and ours[1] == pytest.approx(ref.high, abs=0.03)
    assert ours[0] < values.mean() < ours[1]
    assert bootstrap_ci([], n_resamples=10) is None
    assert bootstrap_ci(values, n_resamples=100, seed=3) == bootstrap_ci(values, n_resamples=100, seed=3)
