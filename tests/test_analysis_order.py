"""Learning / forgetting order: crossings, censoring, exclusion, Spearman's rho."""

import itertools
import json

import pytest
from scipy.stats import spearmanr

from forgetlab.analysis.order import first_crossing, order_correlation


def test_first_crossing_up_and_down():
    points = [(30, 0.7), (10, 0.5), (20, 0.6), (0, 0.4)]  # unsorted on purpose
    assert first_crossing(points, 0.6, "up") == 20  # >= threshold
    assert first_crossing(points, 0.6, "down") == 0
    assert first_crossing([(0, 0.9), (5, 0.6), (9, 0.59)], 0.6, "down") == 9  # strictly below
    assert first_crossing([(0, 0.1), (1, 0.2)], 0.6, "up") is None
    assert first_crossing([], 0.6, "up") is None


def test_first_crossing_rejects_unknown_direction():
    with pytest.raises(ValueError, match="direction"):
        first_crossing([(0, 0.5)], 0.6, "sideways")


def _rising(step):
    """A fine-tuning trajectory that crosses 0.6 at ``step`` (evaluated every 10 steps up to 50)."""
    return [(s, 0.9 if s >= step else 0.5) for s in range(0, 60, 10)]


def _falling(step):
    """A forgetting trajectory that falls below 0.6 at ``step`` (None: never)."""
    return [(s, 0.3 if step is not None and s >= step else 0.8) for s in range(0, 60, 10)]


def test_order_correlation_known_rho_with_censoring_and_exclusion():
    learn = {"a": _rising(0), "b": _rising(10), "c": _rising(20), "d": _rising(30), "e": _rising(40),
             "never_learned": [(0, 0.1), (50, 0.5)], "only_learned": _rising(0)}
    forget = {"a": _falling(None), "b": _falling(40), "c": _falling(30), "d": _falling(40), "e": _falling(0),
              "never_learned": _falling(0), "only_forgotten": _falling(10)}
    out = order_correlation(learn, forget, n_resamples=200)
    learn_steps = [0, 10, 20, 30, 40]
    forget_steps = [51, 40, 30, 40, 0]  # "a" never falls: censored at its last step (50) + 1
    rho = spearmanr(learn_steps, forget_steps)[0]
    # n = 5: the exact two-sided p over all 120 pairings
    pairings = [abs(spearmanr(perm, forget_steps)[0]) for perm in itertools.permutations(learn_steps)]
    p = sum(r >= abs(rho) - 1e-12 for r in pairings) / len(pairings)
    assert out["n"] == 5
    assert out["spearman_rho"] == pytest.approx(rho) and out["spearman_rho"] < 0
    assert out["spearman_p"] == pytest.approx(p)
    assert out["n_never_learned"] == 1 and out["n_never_forgotten"] == 1 and out["threshold"] == 0.6
    low, high = out["spearman_ci"]
    assert low <= out["spearman_rho"] <= high
    assert set(out) == {"n", "spearman_rho", "spearman_p", "spearman_ci", "n_never_learned", "n_never_forgotten",
                        "threshold"}
    assert json.loads(json.dumps(out)) == out


def test_censored_items_rank_last():
    # The only item never forgotten is the one learned first: a perfect "learned first, forgotten last".
    learn = {"a": _rising(0), "b": _rising(10), "c": _rising(20)}
    forget = {"a": _falling(None), "b": _falling(30), "c": _falling(10)}
    assert order_correlation(learn, forget, n_resamples=200)["spearman_rho"] == pytest.approx(-1.0)


def test_too_few_items_give_none():
    out = order_correlation({"a": _rising(0), "b": _rising(10)}, {"a": _falling(10), "b": _falling(0)},
                            n_resamples=200)
    assert out["n"] == 2 and out["spearman_rho"] is None and out["spearman_ci"] is None


def test_threshold_is_an_option():
    learn = {"a": [(0, 0.65), (1, 0.9)], "b": [(0, 0.5), (1, 0.75)], "c": [(0, 0.5), (1, 0.6), (2, 0.85)]}
    forget = {k: [(0, 0.9), (1, 0.1)] for k in learn}
    assert order_correlation(learn, forget, threshold=0.8, n_resamples=200)["n"] == 2
    assert order_correlation(learn, forget, threshold=0.6, n_resamples=200)["n"] == 3


def test_empty_forget_trajectory_is_an_error():
    with pytest.raises(ValueError, match="'a'"):
        order_correlation({"a": _rising(0)}, {"a": []})
