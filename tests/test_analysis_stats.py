"""Analysis statistics: correlations equal scipy's, AUCs equal scikit-learn's, intervals are sane and seeded."""

import json

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from forgetlab.analysis.stats import auc_with_ci, correlation, optional_float

X = [0.1, 0.4, 0.35, 0.8, 0.55, 0.9, 0.2, 0.65]
Y = [1.0, 2.1, 1.5, 3.9, 2.2, 4.1, 1.1, 2.0]


def test_correlation_equals_scipy():
    out = correlation(X, Y, n_resamples=200)
    assert out["n"] == len(X)
    assert out["pearson_r"] == pytest.approx(pearsonr(X, Y)[0])
    assert out["pearson_p"] == pytest.approx(pearsonr(X, Y)[1])
    assert out["spearman_rho"] == pytest.approx(spearmanr(X, Y)[0])
    assert out["spearman_p"] == pytest.approx(spearmanr(X, Y)[1])


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
