"""Predictors of forgetting: layer resolution, hidden-state variance, item AUCs, cross-task correlations."""

import json

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from forgetlab.analysis.predictors import (
    distance_to_mean,
    forgotten_labels,
    item_predictor_aucs,
    predictor_correlations,
    resolve_layer,
    total_variance,
)


@pytest.mark.parametrize("layer, num_layers, expected", [
    (0, 12, 0), (12, 12, 12), (-1, 12, 12), (-5, 12, 8), (-13, 12, 0), (np.int64(3), 12, 3),
    (1.0, 12, 12), (0.5, 12, 6), (0.25, 6, 2), (0.01, 12, 0),
])
def test_resolve_layer(layer, num_layers, expected):
    assert resolve_layer(layer, num_layers) == expected
    assert type(resolve_layer(layer, num_layers)) is int


@pytest.mark.parametrize("layer", [13, -14, 0.0, 1.5, -0.5, True, "3"])
def test_resolve_layer_out_of_range(layer):
    with pytest.raises(ValueError, match=r"analysis\.layer.*\[-13, 12\]"):
        resolve_layer(layer, 12)


def test_total_variance_is_trace_of_covariance():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(20, 7)) * np.arange(1, 8)
    assert total_variance(hidden) == pytest.approx(np.trace(np.cov(hidden, rowvar=False, ddof=1)))
    assert total_variance(hidden) == pytest.approx(hidden.var(axis=0, ddof=1).sum())
    assert type(total_variance(hidden.astype(np.float16))) is float


def test_distance_to_mean_sums_to_total_variance():
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(15, 5))
    d = distance_to_mean(hidden)
    n = hidden.shape[0]
    assert len(d) == n and all(type(v) is float for v in d)
    assert d[0] == pytest.approx(float(((hidden[0] - hidden.mean(axis=0)) ** 2).sum()))
    assert np.mean(d) * n / (n - 1) == pytest.approx(total_variance(hidden))


def test_variance_needs_two_rows_of_a_matrix():
    with pytest.raises(ValueError, match="at least 2"):
        total_variance(np.ones((1, 4)))
    with pytest.raises(ValueError, match="2-d"):
        total_variance(np.ones(4))


def test_forgotten_labels():
    assert forgotten_labels([True, False, True, True], [False, True, True, False]) == ([0, 2, 3], [True, False, True])
    with pytest.raises(ValueError):
        forgotten_labels([True], [True, False])


def test_item_predictor_aucs_restrict_to_items_known_after_finetuning():
    finetuned = [True, True, True, True, False, True]
    forgotten_model = [False, True, False, True, False, True]
    confidence = [0.9, 0.6, 0.8, 0.7, 0.2, 0.55]
    out = item_predictor_aucs({"confidence": confidence}, finetuned, forgotten_model, n_resamples=200)
    keep = [0, 1, 2, 3, 5]
    labels = [not forgotten_model[i] for i in keep]  # positive = forgotten
    assert out["confidence"]["auc"] == pytest.approx(roc_auc_score(labels, [confidence[i] for i in keep]))
    assert out["confidence"]["n_pos"] == 2 and out["confidence"]["n_neg"] == 3
    assert json.loads(json.dumps(out)) == out


def test_item_predictor_aucs_none_when_nothing_forgotten():
    out = item_predictor_aucs({"v": [1.0, 2.0, 3.0]}, [True] * 3, [True] * 3, n_resamples=200)
    assert out["v"]["auc"] is None and out["v"]["n_pos"] == 0


def test_item_predictor_aucs_checks_lengths():
    with pytest.raises(ValueError, match="'v'"):
        item_predictor_aucs({"v": [1.0, 2.0]}, [True] * 3, [True] * 3)


def test_predictor_correlations_across_tasks():
    per_task = {
        "piqa": {"forget_ratio": 0.1, "difficulty": 0.8, "confidence_finetuned": 0.9, "hidden_variance": 10.0},
        "rte": {"forget_ratio": 0.9, "difficulty": 0.7, "confidence_finetuned": 0.6, "hidden_variance": 3.0},
        "cb": {"forget_ratio": 0.7, "difficulty": 0.9, "confidence_finetuned": 0.7, "hidden_variance": None},
        "sciq": {"forget_ratio": 0.2, "difficulty": 0.95, "confidence_finetuned": 0.85, "hidden_variance": 8.0},
        "wic": {"forget_ratio": None, "difficulty": 0.6, "confidence_finetuned": 0.65, "hidden_variance": 4.0},
        "boolq": {"forget_ratio": 0.8, "difficulty": 0.75, "confidence_finetuned": 0.65, "hidden_variance": 5.0},
    }
    out = predictor_correlations(per_task, n_resamples=200)
    assert set(out) == {"difficulty", "confidence_pretrained", "confidence_finetuned", "hidden_variance"}
    assert out["difficulty"]["tasks"] == ["piqa", "rte", "cb", "sciq", "boolq"]
    assert out["hidden_variance"]["tasks"] == ["piqa", "rte", "sciq", "boolq"]
    x = [per_task[t]["hidden_variance"] for t in out["hidden_variance"]["tasks"]]
    y = [per_task[t]["forget_ratio"] for t in out["hidden_variance"]["tasks"]]
    assert out["hidden_variance"]["pearson_r"] == pytest.approx(pearsonr(x, y)[0])
    assert out["hidden_variance"]["spearman_rho"] == pytest.approx(spearmanr(x, y)[0])
    assert out["confidence_pretrained"]["n"] == 0 and out["confidence_pretrained"]["pearson_r"] is None
    assert json.loads(json.dumps(out)) == out


def test_excluded_tasks_never_count_and_are_listed():
    """A task excluded (not learned) is left out even where its values are present, and named."""
    per_task = {
        "piqa": {"forget_gap": 0.3, "difficulty": 0.8},
        "rte": {"forget_gap": 0.0, "difficulty": 0.7},
        "wnli": {"forget_gap": -0.1, "difficulty": 0.45},
        "sciq": {"forget_gap": 0.25, "difficulty": 0.95},
        "boolq": {"forget_gap": 0.05, "difficulty": 0.75},
    }
    out = predictor_correlations(per_task, "forget_gap", ["difficulty"], n_resamples=0, exclude=["wnli", "absent"])
    assert out["difficulty"]["tasks"] == ["piqa", "rte", "sciq", "boolq"] and out["difficulty"]["excluded"] == ["wnli"]
    x, y = [0.8, 0.7, 0.95, 0.75], [0.3, 0.0, 0.25, 0.05]
    assert out["difficulty"]["pearson_r"] == pytest.approx(pearsonr(x, y)[0])
    everything = predictor_correlations(per_task, "forget_gap", ["difficulty"], n_resamples=0)
    assert everything["difficulty"]["n"] == 5 and everything["difficulty"]["excluded"] == []
