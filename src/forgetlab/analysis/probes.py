"""Linear probes on hidden states: does the model still "know" the task after forgetting?

Study A fits L2-regularised logistic regression on the hidden states of (prompt + answer) pairs, label 1 =
the answer is the correct one, 0 = a distractor. If a probe on the forgotten model still separates them,
forgetting is "shallow": the knowledge is there, only the output was changed.

The probe is ``StandardScaler → LogisticRegression`` (L2, scikit-learn's default penalty; ``max_iter``
2000); its inverse regularisation strength C is chosen on a validation split by accuracy, ties going to
the smaller C (the stronger regularisation).

Two accuracies on the test split:

* ``pair_acc``: per pair, the probe's correct/incorrect prediction against the label;
* ``question_acc``: per question, whether the correct pair gets a higher probability of class 1 than
  every other pair of the same question (ties count as wrong) — the probe as a multiple-choice scorer.
  Questions without both a correct and an incorrect pair are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

DEFAULT_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
MAX_ITER = 2000


@dataclass(frozen=True)
class Probe:
    """A fitted probe, the C chosen for it and its validation accuracy."""

    model: Pipeline
    c: float
    val_acc: float


def make_probe(c: float, seed: int = 0) -> Pipeline:
    """An unfitted ``StandardScaler → LogisticRegression(C=c)`` pipeline (L2 penalty)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=MAX_ITER, random_state=seed))


def fit_probe(train_x: np.ndarray, train_y: Sequence[int], val_x: np.ndarray, val_y: Sequence[int], *,
              cs: Sequence[float] = DEFAULT_CS, seed: int = 0) -> Probe:
    """Fit one probe per C on the training split; keep the one most accurate on validation (ties → smaller C)."""
    if len(np.unique(np.asarray(train_y))) < 2:
        raise ValueError("probe training labels need both classes (correct and incorrect pairs)")
    if not cs:
        raise ValueError("no values of C to choose from")
    best: Probe | None = None
    for c in sorted(float(c) for c in cs):
        model = make_probe(c, seed).fit(train_x, train_y)
        accuracy = float(model.score(val_x, val_y))
        if best is None or accuracy > best.val_acc:
            best = Probe(model=model, c=c, val_acc=accuracy)
    return best


def _question_wins(prob_correct: Sequence[float], y: Sequence[int], question_ids: Sequence[Hashable]) -> list[bool]:
    """Per question with both kinds of pair: do all its correct pairs outscore all its incorrect ones?"""
    if not len(prob_correct) == len(y) == len(question_ids):
        raise ValueError(f"lengths differ: {len(prob_correct)} probabilities, {len(y)} labels, {len(question_ids)} ids")
    groups: dict[Hashable, tuple[list[float], list[float]]] = {}
    for p, label, qid in zip(prob_correct, y, question_ids):
        groups.setdefault(qid, ([], []))[0 if label else 1].append(float(p))
    return [min(pos) > max(neg) for pos, neg in groups.values() if pos and neg]


def question_accuracy(prob_correct: Sequence[float], y: Sequence[int],
                      question_ids: Sequence[Hashable]) -> float | None:
    """Fraction of questions whose correct pair (y = 1) gets a higher probability than every other pair.

    Ties count as wrong; with several correct pairs, each must beat every incorrect one. Questions lacking a
    correct or an incorrect pair are skipped; None when none is left.
    """
    wins = _question_wins(prob_correct, y, question_ids)
    return float(np.mean(wins)) if wins else None


def _prob_class_one(model: Pipeline, x: np.ndarray) -> np.ndarray:
    column = int(np.flatnonzero(model.classes_ == 1)[0])
    return model.predict_proba(x)[:, column]


def probe_accuracy(probe: Probe, x: np.ndarray, y: Sequence[int],
                   question_ids: Sequence[Hashable]) -> dict[str, Any]:
    """``{"pair_acc", "question_acc", "n_pairs", "n_questions"}`` of a fitted probe on one split.

    ``n_questions`` counts the questions that had both a correct and an incorrect pair; an accuracy is None
    when there is nothing to count.
    """
    labels = np.asarray(y)
    if labels.size == 0:
        return {"pair_acc": None, "question_acc": None, "n_pairs": 0, "n_questions": 0}
    pair_acc = float(np.mean(probe.model.predict(x) == labels))
    wins = _question_wins(_prob_class_one(probe.model, x), labels, question_ids)
    return {"pair_acc": pair_acc, "question_acc": float(np.mean(wins)) if wins else None,
            "n_pairs": int(labels.size), "n_questions": len(wins)}


def layer_sweep(features: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
                labels: tuple[Sequence[int], Sequence[int], Sequence[int]], question_ids_test: Sequence[Hashable],
                *, cs: Sequence[float] = DEFAULT_CS, seed: int = 0) -> dict[int, dict[str, Any]]:
    """For every layer: fit on train, choose C on validation, report :func:`probe_accuracy` on test.

    ``features[layer] = (x_train, x_val, x_test)``; ``labels = (y_train, y_val, y_test)`` are shared by all
    layers. Each result also carries ``"c"`` and ``"val_acc"``; keys are the layer ints, ascending.
    """
    y_train, y_val, y_test = labels
    out = {}
    for layer in sorted(features):
        x_train, x_val, x_test = features[layer]
        probe = fit_probe(x_train, y_train, x_val, y_val, cs=cs, seed=seed)
        out[int(layer)] = {**probe_accuracy(probe, x_test, y_test, question_ids_test), "c": probe.c,
                           "val_acc": probe.val_acc}
    return out
