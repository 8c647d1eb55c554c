import numpy as np
import pytest

from forgetlab.config import ClassifySpec
from forgetlab.metrics.forgetting import (
    FULL, NOT_FIT, NOT_GENERALIZED, PARTIAL, classify, forget_gap, forget_ratio, task_outcome,
)
from forgetlab.metrics.stats import bootstrap_ci

RULES = ClassifySpec()


def test_gap_and_ratio_by_hand():
    assert forget_gap(0.69) == pytest.approx(0.19)
    assert forget_ratio(0.9, 0.7) == pytest.approx(0.2 / 0.4)
    assert forget_ratio(0.9, 0.5) == pytest.approx(1.0)
    assert forget_ratio(0.9, 0.95) == pytest.approx(-0.125)  # unclipped
    assert forget_ratio(0.9, 0.1, flipped=True) == pytest.approx(0.8 / 0.8)
    assert forget_ratio(0.505, 0.5) is None  # acc_FT at chance: undefined


@pytest.mark.parametrize(
    "pt, ft, f, ftrain, expected",
    [
        (0.6, 0.9, 0.88, 0.5, NOT_GENERALIZED),
        (0.6, 0.9, 0.75, 0.52, PARTIAL),
        (0.6, 0.9, 0.61, 0.5, FULL),
        (0.6, 0.9, 0.5, 0.45, FULL),
        (0.6, 0.9, 0.5, 0.8, NOT_FIT),
    ],
)
def test_categories(pt, ft, f, ftrain, expected):
    assert classify(pt, ft, f, ftrain, RULES) == expected


def test_thresholds_are_options():
    loose = ClassifySpec(same_tolerance=0.2)
    assert classify(0.6, 0.9, 0.75, 0.5, loose) == NOT_GENERALIZED
    assert classify(0.6, 0.9, 0.5, 0.65, ClassifySpec(fit_tolerance=0.2)) == FULL


def test_fit_is_judged_on_the_training_labels_when_known():
    # Random labels that agree with gold on 65 % of the items, fit perfectly: acc vs TRUE labels is 0.65.
    assert classify(0.6, 0.9, 0.7, 0.65, RULES, acc_forget_train_labels=1.0) == PARTIAL
    assert classify(0.6, 0.9, 0.7, 0.5, RULES, acc_forget_train_labels=0.85) == NOT_FIT
    assert classify(0.6, 0.9, 0.7, 0.65, RULES) == NOT_FIT  # fallback: true labels only
    outcome = task_outcome(0.6, 0.9, 0.7, 0.65, RULES, acc_forget_train_labels=0.9)
    assert outcome.forget_set_fit and outcome.category == PARTIAL


def test_outcome_carries_every_field():
    outcome = task_outcome(0.6, 0.9, 0.7, 0.5, RULES).to_dict()
    assert set(outcome) >= {"acc_pretrained", "acc_finetuned", "acc_forget_test", "acc_forget_train", "forget_gap", "forget_ratio", "category"}
    assert outcome["forget_ratio"] == pytest.approx(0.5)


def test_bootstrap_matches_scipy_percentile_interval():
    from scipy import stats

    values = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 5, dtype=float)
    ours = bootstrap_ci(values, n_resamples=4000, seed=1)
    ref = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.03) and ours[1] == pytest.approx(ref.high, abs=0.03)
    assert ours[0] < values.mean() < ours[1]
    assert bootstrap_ci([], n_resamples=10) is None
    assert bootstrap_ci(values, n_resamples=100, seed=3) == bootstrap_ci(values, n_resamples=100, seed=3)
