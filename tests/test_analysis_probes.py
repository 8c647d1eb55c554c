"""Linear probes: separable data is solved, noise is not, C is chosen by validation accuracy."""

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from forgetlab.analysis.probes import Probe, fit_probe, layer_sweep, probe_accuracy, question_accuracy

CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def _pairs(rng, n_questions, dim, signal):
    """Two pairs per question (correct, incorrect); the correct one shifted by ``signal`` along one direction."""
    x = rng.normal(size=(2 * n_questions, dim))
    y = np.tile([1, 0], n_questions)
    x[y == 1, 0] += signal
    return x, y, np.repeat(np.arange(n_questions), 2)


def _split(seed, signal, dim=5):
    rng = np.random.default_rng(seed)
    return [_pairs(rng, n, dim, signal) for n in (100, 40, 60)]


def test_separable_data_is_solved():
    (xt, yt, _), (xv, yv, _), (xs, ys, qs) = _split(0, signal=20.0)
    probe = fit_probe(xt, yt, xv, yv, cs=CS)
    out = probe_accuracy(probe, xs, ys, qs)
    assert out == {"pair_acc": 1.0, "question_acc": 1.0, "n_pairs": 120, "n_questions": 60}
    assert probe.val_acc == 1.0 and probe.c in CS


def test_noise_is_near_chance():
    (xt, yt, _), (xv, yv, _), _ = _split(1, signal=0.0)
    rng = np.random.default_rng(9)
    xs, ys, qs = _pairs(rng, 1000, 5, 0.0)
    out = probe_accuracy(fit_probe(xt, yt, xv, yv, cs=CS), xs, ys, qs)
    assert abs(out["pair_acc"] - 0.5) < 0.06
    assert abs(out["question_acc"] - 0.5) < 0.06


def test_c_is_the_one_with_best_validation_accuracy():
    (xt, yt, _), (xv, yv, _), _ = _split(2, signal=0.8, dim=20)
    probe = fit_probe(xt, yt, xv, yv, cs=CS, seed=0)
    accuracies = {}
    for c in CS:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=0)).fit(xt, yt)
        accuracies[c] = model.score(xv, yv)
    best = max(accuracies.values())
    assert probe.c == min(c for c in CS if accuracies[c] == best)
    assert probe.val_acc == pytest.approx(best)
    assert isinstance(probe, Probe) and type(probe.c) is float and type(probe.val_acc) is float


def test_ties_go_to_the_smaller_c():
    (xt, yt, _), (xv, yv, _), _ = _split(3, signal=20.0)
    assert fit_probe(xt, yt, xv, yv, cs=(10.0, 1.0, 0.1)).c == 0.1


def test_fit_probe_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        fit_probe(np.ones((4, 2)), [1, 1, 1, 1], np.ones((2, 2)), [1, 0])


def test_question_accuracy_by_hand():
    prob = [0.9, 0.2, 0.3,   # q0: correct 0.9 beats 0.2 and 0.3 -> right
            0.4, 0.6,        # q1: correct 0.4 < 0.6 -> wrong
            0.5, 0.5,        # q2: tie -> wrong
            0.7, 0.1,        # q3: right
            0.8,             # q4: no incorrect pair -> skipped
            0.3, 0.2]        # q5: no correct pair -> skipped
    y = [1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0]
    q = ["q0", "q0", "q0", "q1", "q1", "q2", "q2", "q3", "q3", "q4", "q5", "q5"]
    assert question_accuracy(prob, y, q) == pytest.approx(2 / 4)
    # order within a question does not matter
    assert question_accuracy(prob[::-1], y[::-1], q[::-1]) == pytest.approx(2 / 4)
    assert question_accuracy([0.8], [1], ["q"]) is None


def test_probe_accuracy_on_empty_split():
    (xt, yt, _), (xv, yv, _), _ = _split(4, signal=20.0)
    probe = fit_probe(xt, yt, xv, yv, cs=(1.0,))
    assert probe_accuracy(probe, np.zeros((0, 5)), [], []) == {
        "pair_acc": None, "question_acc": None, "n_pairs": 0, "n_questions": 0}


def test_layer_sweep():
    splits = _split(5, signal=20.0)
    (xt, yt, _), (xv, yv, _), (xs, ys, qs) = splits
    rng = np.random.default_rng(6)
    noise = tuple(rng.normal(size=x.shape) for x in (xt, xv, xs))
    out = layer_sweep({8: (xt, xv, xs), 2: noise}, (yt, yv, ys), qs, cs=(0.1, 1.0))
    assert list(out) == [2, 8]
    assert out[8]["pair_acc"] == 1.0 and out[8]["question_acc"] == 1.0
    assert out[2]["pair_acc"] < 0.75
    assert set(out[8]) == {"pair_acc", "question_acc", "n_pairs", "n_questions", "c", "val_acc"}
    assert json.loads(json.dumps(out)) == {str(k): v for k, v in out.items()}
