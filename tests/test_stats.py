"""forgetlab.stats: bootstrap intervals, ROC statistics (equal scikit-learn's), correlations (equal scipy's)."""

import itertools
import json

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score, roc_curve as sk_roc_curve

from forgetlab.metrics.mia import mia_summary
from forgetlab.stats import (
    auc_with_ci,
    bootstrap_auc_ci,
    bootstrap_ci,
    correlation,
    optional_float,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)

X = [0.1, 0.4, 0.35, 0.8, 0.55, 0.9, 0.2, 0.65]
Y = [1.0, 2.1, 1.5, 3.9, 2.2, 4.1, 1.1, 2.0]


def _spearman_p_by_enumeration(x, y):
    """Two-sided exact p: the share of all pairings whose |ρ| reaches the observed one (symmetric null)."""
    observed = abs(spearmanr(x, y)[0])
    rhos = [abs(spearmanr(perm, y)[0]) for perm in itertools.permutations(x)]
    return sum(rho >= observed - 1e-12 for rho in rhos) / len(rhos)


def test_correlation_equals_scipy():
    out = correlation(X, Y, n_resamples=200)
    assert out["n"] == len(X)
    assert out["pearson_r"] == pytest.approx(pearsonr(X, Y)[0])
    assert out["pearson_p"] == pytest.approx(pearsonr(X, Y)[1])
    assert out["spearman_rho"] == pytest.approx(spearmanr(X, Y)[0])


def test_spearman_p_is_exact_for_few_pairs():
    # n = 4, ranks in the same order: 2 of the 24 pairings (this one and its reverse) reach |ρ| = 1.
    # spearmanr's t approximation gives p = 0 here.
    assert correlation([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 5.0, 9.0], n_resamples=0)["spearman_p"] == pytest.approx(1 / 12)
    assert correlation(X[:7], Y[:7], n_resamples=0)["spearman_p"] == pytest.approx(_spearman_p_by_enumeration(X[:7], Y[:7]))
    ties = [1.0, 2.0, 2.0, 3.0, 5.0, 4.0]
    assert correlation(ties, Y[:6], n_resamples=0)["spearman_p"] == pytest.approx(_spearman_p_by_enumeration(ties, Y[:6]))


def test_spearman_p_is_scipys_for_many_pairs():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=12), rng.normal(size=12)
    assert correlation(x, y, n_resamples=0)["spearman_p"] == pytest.approx(spearmanr(x, y)[1])


def test_correlation_returns_plain_json_values():
    out = correlation(X, Y, n_resamples=200)
    assert json.loads(json.dumps(out)) == out
    assert all(type(v) in (int, float, list) for v in out.values())
    assert all(type(v) is float for key in ("pearson_ci", "spearman_ci") for v in out[key])


def test_correlation_ci_contains_estimate_on_clear_case():
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    y = 2 * x + rng.normal(scale=0.3, size=40)
    out = correlation(x, y, n_resamples=200, seed=3)
    for stat, ci in (("pearson_r", "pearson_ci"), ("spearman_rho", "spearman_ci")):
        low, high = out[ci]
        assert low <= out[stat] <= high
        assert low > 0.8


def test_correlation_is_deterministic_for_a_seed():
    a = correlation(X, Y, n_resamples=200, seed=7)
    assert a == correlation(X, Y, n_resamples=200, seed=7)
    assert a["pearson_ci"] != correlation(X, Y, n_resamples=200, seed=8)["pearson_ci"]


def test_correlation_resamples_pairs_jointly():
    # y = x exactly: any joint resample with varying x has r = 1; independent resampling would not.
    out = correlation(X, X, n_resamples=200)
    assert out["pearson_ci"] == pytest.approx([1.0, 1.0])
    assert out["spearman_ci"] == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("x, y", [([1.0, 2.0], [3.0, 1.0]), ([], []), ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]),
                                  ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])])
def test_correlation_undefined_is_none(x, y):
    out = correlation(x, y, n_resamples=200)
    assert out["n"] == len(x)
    assert all(out[key] is None for key in out if key != "n")


def test_correlation_rejects_bad_input():
    with pytest.raises(ValueError, match="length"):
        correlation([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        correlation([1.0, 2.0, float("nan")], [1.0, 2.0, 3.0])


def test_correlation_without_resamples_has_no_ci():
    out = correlation(X, Y, n_resamples=0)
    assert out["pearson_r"] is not None and out["pearson_ci"] is None and out["spearman_ci"] is None


def test_auc_equals_sklearn():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=30), 1)  # rounding makes ties
    labels = rng.integers(0, 2, size=30).astype(bool)
    out = auc_with_ci(scores, labels, n_resamples=200)
    assert out["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["n_pos"] == int(labels.sum()) and out["n_neg"] == int((~labels).sum())
    assert json.loads(json.dumps(out)) == out


def test_auc_ci_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(2)
    scores = np.r_[rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 40)]
    labels = [1] * 40 + [0] * 40
    out = auc_with_ci(scores, labels, n_resamples=200, seed=5)
    low, high = out["ci"]
    assert low <= out["auc"] <= high and low > 0.5
    assert out == auc_with_ci(scores, labels, n_resamples=200, seed=5)


def test_auc_missing_class_is_none():
    out = auc_with_ci([0.1, 0.2, 0.3], [True, True, True], n_resamples=200)
    assert out == {"auc": None, "ci": None, "n_pos": 3, "n_neg": 0}
    assert auc_with_ci([], [], n_resamples=200)["auc"] is None


def test_optional_float():
    assert optional_float(np.float32(0.5)) == 0.5 and type(optional_float(np.float64(1))) is float
    assert optional_float(None) is None and optional_float(float("nan")) is None


def test_bootstrap_matches_scipy_percentile_interval():
    from scipy import stats

    values = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 5, dtype=float)
    ours = bootstrap_ci(values, n_resamples=4000, seed=1)
    ref = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.03) and ours[1] == pytest.approx(ref.high, abs=0.03)
    assert ours[0] < values.mean() < ours[1]
    assert bootstrap_ci([], n_resamples=10) is None
    assert bootstrap_ci(values, n_resamples=100, seed=3) == bootstrap_ci(values, n_resamples=100, seed=3)


# ----------------------------------------------------------------------------- ROC


def _scores(seed, n_members, n_nonmembers, ties):
    rng = np.random.default_rng(seed)
    members = rng.normal(0.3, 1.0, n_members)
    nonmembers = rng.normal(0.0, 1.0, n_nonmembers)
    if ties:  # coarse rounding makes many ties, within and across the groups
        members, nonmembers = np.round(members, 1), np.round(nonmembers, 1)
    return members, nonmembers


@pytest.mark.parametrize(
    "seed, n_members, n_nonmembers, ties", [(0, 30, 40, False), (1, 200, 150, True), (2, 7, 3, True), (3, 1000, 1000, False)]
)
def test_auc_roc_and_tpr_equal_sklearn(seed, n_members, n_nonmembers, ties):
    members, nonmembers = _scores(seed, n_members, n_nonmembers, ties)
    labels = np.r_[np.ones(n_members), np.zeros(n_nonmembers)]
    scores = np.r_[members, nonmembers]
    assert roc_auc(members, nonmembers) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, thresholds = roc_curve(members, nonmembers)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thresholds[1:], sk_thr[1:])
    for target in (0.01, 0.001, 0.1):
        assert tpr_at_fpr(members, nonmembers, target) == pytest.approx(sk_tpr[sk_fpr <= target].max())


def test_tpr_at_fpr_counts_a_point_exactly_at_the_target_fpr():
    """Convention: FPR <= target. 100 non-members at 0.00 .. 0.99; one false positive is FPR exactly 1 %."""
    nonmembers = np.arange(100) / 100
    members = np.array([2.0, 0.985, 0.5, 0.2])
    # by hand, thresholds from the top: 2.0 -> TP 1, FP 0; 0.99 -> TP 1, FP 1 (FPR 0.01); 0.985 -> TP 2, FP 1;
    # 0.98 -> FP 2 (FPR 0.02). At most 1 % FPR: TPR 2/4. Strictly below 1 %: only FP 0, TPR 1/4.
    assert tpr_at_fpr(members, nonmembers, 0.01) == 0.5
    assert tpr_at_fpr(members, nonmembers, 0.01, strict=True) == 0.25
    assert mia_summary(members, nonmembers, n_resamples=0)["tpr_1pct"] == 0.5
    # LiRA's line, re-typed (scikit-learn's default curve, strict <), gives the strict number
    labels, scores = np.r_[np.ones(4), np.zeros(100)], np.r_[members, nonmembers]
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, scores)
    assert sk_tpr[np.where(sk_fpr < 0.01)[0][-1]] == 0.25
    assert tpr_at_fpr(members, nonmembers, 0.001) == tpr_at_fpr(members, nonmembers, 0.001, strict=True) == 0.25


def test_auc_direction_and_summary():
    members, nonmembers = np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0])
    assert roc_auc(members, nonmembers) == 1.0  # higher score = member: perfectly separated
    assert roc_auc(nonmembers, members) == 0.0  # members look *less* likely: also detectable
    assert roc_auc([1.0, 1.0], [1.0, 1.0]) == 0.5  # indistinguishable
    summary = mia_summary(members, nonmembers, n_resamples=200, seed=0)
    assert summary["auc"] == 1.0 and summary["auc_gap"] == 0.5
    assert summary["tpr_1pct"] == 1.0 and summary["tpr_0.1pct"] == 1.0
    assert summary["auc_ci_low"] == summary["auc_ci_high"] == 1.0
    with pytest.raises(ValueError, match="members"):
        roc_auc([], [1.0])


def test_bootstrap_interval_is_stratified_and_seeded():
    members, nonmembers = _scores(5, 40, 60, ties=False)
    low, high = bootstrap_auc_ci(members, nonmembers, n_resamples=500, seed=3)
    assert 0.0 <= low < roc_auc(members, nonmembers) < high <= 1.0
    assert bootstrap_auc_ci(members, nonmembers, n_resamples=500, seed=3) == (low, high)
    # each resample keeps 40 members and 60 non-members, so its AUC is the rank formula on them
    rng = np.random.default_rng(3)
    m = members[rng.integers(0, 40, size=(500, 40))]
    n = nonmembers[rng.integers(0, 60, size=(500, 60))]
    aucs = [roc_auc_score(np.r_[np.ones(40), np.zeros(60)], np.r_[a, b]) for a, b in zip(m, n)]
    assert (low, high) == pytest.approx(tuple(np.quantile(aucs, [0.025, 0.975])))
    assert bootstrap_auc_ci(members, nonmembers, n_resamples=0) is None
