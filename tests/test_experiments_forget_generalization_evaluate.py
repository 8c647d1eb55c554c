"""Scoring rows of one Study A task: split metrics, the forget set's fit to its training labels, training payloads."""

import pytest

from forgetlab.experiments.forget_generalization.evaluate import TaskEvaluation, label_accuracy
from forgetlab.stats import bootstrap_ci
from forgetlab.scoring import MCScore
from forgetlab.train import StageResult
from tests.conftest import make_docs


def scores():
    """Four items: three predicted right (gold 0, 1, 0), one wrong; the last is right only per character."""
    return [
        MCScore("a", 0, (-1.0, -3.0), (2, 2)),
        MCScore("b", 1, (-4.0, -1.0), (2, 2)),
        MCScore("c", 0, (-0.5, -2.0), (2, 2)),
        MCScore("d", 1, (-1.0, -1.5), (1, 6)),
    ]


def test_split_metrics_by_hand():
    evaluation = TaskEvaluation("toy", bootstrap=200, seed=3)
    out = evaluation.split_metrics(scores())
    assert out["acc"] == 0.75 and out["acc_norm"] == 1.0 and out["n"] == 4.0
    assert out["confidence"] == pytest.approx(sum(s.confidence for s in scores()) / 4)
    assert [out["acc_ci_low"], out["acc_ci_high"]] == list(bootstrap_ci([1.0, 1.0, 1.0, 0.0], n_resamples=200, seed=3))
    assert "acc_ci_low" not in TaskEvaluation("toy", bootstrap=0, seed=3).split_metrics(scores())


def test_label_accuracy_compares_predictions_with_the_given_labels():
    docs = make_docs(4)
    assert label_accuracy(scores(), [d.with_gold(s.pred) for d, s in zip(docs, scores())]) == 1.0
    assert label_accuracy(scores(), [d.with_gold(1 - s.pred) for d, s in zip(docs, scores())]) == 0.0


def test_training_payload_splits_rows_and_numbers_the_losses():
    trajectory = [
        {"task": "toy", "stage": "forget", "step": 0, "split": "forget", "metric": "acc", "value": 0.9},
        {"task": "toy", "stage": "forget", "step": 0, "split": "forget", "doc_id": "a", "kind": "example"},
    ]
    payload = TaskEvaluation("toy", bootstrap=0, seed=0).training_payload("forget", StageResult(2, trajectory, [0.7, 0.6]))
    assert payload["steps"] == 2
    assert payload["examples"] == [{"task": "toy", "stage": "forget", "step": 0, "split": "forget", "doc_id": "a"}]
    assert payload["metrics"][0] == trajectory[0]
    assert [(m["step"], m["split"], m["metric"], m["value"]) for m in payload["metrics"][1:]] == [
        (1, "train", "loss", 0.7), (2, "train", "loss", 0.6)
    ]
