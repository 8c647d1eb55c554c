"""Scoring one task's splits, before, during and after training: the metric rows (``acc``, ``acc_norm``,
``confidence``, ``n``, the 95 % interval of ``acc``, and the forget set's accuracy on its training labels)
and the per-item rows that a stage saves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from forgetlab.data.prepare import PreparedTask
from forgetlab.data.tasks import get_task
from forgetlab.data.types import MCDoc
from forgetlab.metrics.forgetting import accuracy
from forgetlab.stats import bootstrap_ci
from forgetlab.scoring import MCScore, Scorer, score_mc
from forgetlab.train import EvalFn, StageResult

Rows = list[dict[str, Any]]


def score_task(scorer: Scorer, docs: Sequence[MCDoc], task: str, desc: str) -> list[MCScore]:
    """Every item of ``docs`` (items of ``task``) scored with the task's target delimiter."""
    return score_mc(scorer, docs, target_delimiter=get_task(task).target_delimiter, desc=desc)


def label_accuracy(scores: Sequence[MCScore], labelled: Sequence[MCDoc]) -> float:
    """Accuracy of the predictions against the labels of ``labelled`` (e.g. those forgetting trained on)."""
    return accuracy([score.pred == doc.gold for score, doc in zip(scores, labelled)])


@dataclass
class TaskEvaluation:
    """How one task's splits are scored into rows for the run store."""

    task: str
    bootstrap: int
    seed: int

    def rows(
        self, scorer: Scorer, stage: str, step: int, splits: dict[str, Sequence[MCDoc]], train_labels: Sequence[MCDoc] | None
    ) -> tuple[Rows, Rows]:
        """Metric rows and per-item rows of every split at ``step`` of ``stage``; with ``train_labels``, the
        forget split's accuracy on them too (``acc_train_labels``)."""
        metrics, examples = [], []
        for split, docs in splits.items():
            scores = score_task(scorer, docs, self.task, f"{self.task}: {stage} {split}")
            base = {"task": self.task, "stage": stage, "step": step, "split": split}
            metrics.extend(dict(base, metric=name, value=value) for name, value in self.split_metrics(scores).items())
            if split == "forget" and train_labels is not None:
                metrics.append(dict(base, metric="acc_train_labels", value=label_accuracy(scores, train_labels)))
            examples.extend(dict(base, **score.to_dict()) for score in scores)
        return metrics, examples

    def split_metrics(self, scores: list[MCScore]) -> dict[str, float]:
        """Accuracy (with its bootstrap interval when ``bootstrap`` > 0), length-normalised accuracy,
        mean confidence and the number of items."""
        out = {
            "acc": accuracy([s.correct for s in scores]),
            "acc_norm": accuracy([s.correct_norm for s in scores]),
            "confidence": sum(s.confidence for s in scores) / len(scores),
            "n": float(len(scores)),
        }
        interval = bootstrap_ci([float(s.correct) for s in scores], n_resamples=self.bootstrap, seed=self.seed)
        if interval is not None:
            out["acc_ci_low"], out["acc_ci_high"] = interval
        return out

    def final(self, scorer: Scorer, stage: str, data: PreparedTask, train_labels: Sequence[MCDoc] | None = None) -> dict[str, Any]:
        """The payload of a scoring stage: the test and forget splits at step 0."""
        metrics, examples = self.rows(scorer, stage, 0, {"test": data.test, "forget": data.forget}, train_labels)
        return {"metrics": metrics, "examples": examples}

    def during_training(
        self, new_scorer: Callable[[], Scorer], stage: str, splits: dict[str, Sequence[MCDoc]], train_labels: Sequence[MCDoc] | None
    ) -> EvalFn:
        """The evaluation a training stage runs every N steps (per-item rows marked ``kind: example``)."""

        def evaluate(step: int) -> Rows:
            metrics, examples = self.rows(new_scorer(), stage, step, splits, train_labels)
            return metrics + [dict(e, kind="example") for e in examples]

        return evaluate

    def training_payload(self, stage: str, result: StageResult) -> dict[str, Any]:
        """The payload of a training stage: its steps, the evaluations along the way and the loss of every step."""
        metrics = [r for r in result.trajectory if r.get("kind") != "example"]
        examples = [{k: v for k, v in r.items() if k != "kind"} for r in result.trajectory if r.get("kind") == "example"]
        losses = [
            {"task": self.task, "stage": stage, "step": i + 1, "split": "train", "metric": "loss", "value": loss}
            for i, loss in enumerate(result.losses)
        ]
        return {"steps": result.steps, "metrics": metrics + losses, "examples": examples}
