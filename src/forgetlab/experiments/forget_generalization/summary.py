"""Study A's summaries as pure functions of saved stage payloads: per task (accuracies, forget gap, forget
ratio, behaviour category, analyses), per run (plus the predictor correlations across tasks), per cross-task
cell and per cross-task sweep (the forget-ratio matrix, kept under the summary key ``crosstask``)."""

from __future__ import annotations

from typing import Any

from forgetlab.analysis.cross_task import cross_task_summary
from forgetlab.analysis.predictors import predictor_correlations
from forgetlab.data.prepare import PreparedTask
from forgetlab.experiments.forget_generalization.config import CrossTaskCellConfig, CrossTaskConfig, ForgetGeneralizationConfig
from forgetlab.metrics.forgetting import NOT_LEARNED, ClassifySpec, forget_ratio, task_outcome

Payload = dict[str, Any]

#: The task-level predictors correlated with the forget ratio across tasks.
PREDICTORS = ("difficulty", "confidence_pretrained", "confidence_finetuned", "hidden_variance", "hidden_variance_pretrained")


def final_metric(payload: Payload, split: str, name: str) -> float:
    """A scoring stage's value of metric ``name`` on ``split`` (step 0)."""
    return next(m["value"] for m in payload["metrics"] if m["split"] == split and m["metric"] == name and m["step"] == 0)


def accuracy_interval(payload: Payload, split: str) -> list[float] | None:
    """A scoring stage's 95 % interval of ``acc`` on ``split``; None when it was scored without bootstrap."""
    rows = {m["metric"]: m["value"] for m in payload["metrics"] if m["split"] == split and m["step"] == 0}
    if "acc_ci_low" not in rows:
        return None
    return [rows["acc_ci_low"], rows["acc_ci_high"]]


def task_summary(data: PreparedTask, results: dict[str, Payload], rules: ClassifySpec, *, flipped: bool) -> dict[str, Any]:
    """One task's summary from its stage payloads (``results`` by stage name): the headline outcome
    (:func:`~forgetlab.metrics.forgetting.task_outcome`), intervals, normalised accuracies, confidences,
    steps, split sizes, cleaning and the task's analyses."""

    def metric(stage: str, split: str, name: str) -> float:
        return final_metric(results[stage], split, name)

    outcome = task_outcome(
        acc_pretrained=metric("pretrained", "test", "acc"),
        acc_finetuned=metric("finetuned", "test", "acc"),
        acc_forget_test=metric("forgotten", "test", "acc"),
        acc_forget_train=metric("forgotten", "forget", "acc"),
        rules=rules,
        flipped=flipped,
        acc_forget_train_labels=metric("forgotten", "forget", "acc_train_labels"),
        finetuned_ci=accuracy_interval(results["finetuned"], "test"),
    )
    summary = outcome.to_dict()
    for stage, label in (("pretrained", "pretrained"), ("finetuned", "finetuned"), ("forgotten", "forget_test")):
        summary[f"acc_{label}_ci"] = accuracy_interval(results[stage], "test")
        summary[f"acc_norm_{label}"] = metric(stage, "test", "acc_norm")
        summary[f"confidence_{label}"] = metric(stage, "test", "confidence")
    summary["acc_forget_train_ci"] = accuracy_interval(results["forgotten"], "forget")
    summary["acc_forget_train_before"] = metric("finetuned", "forget", "acc")
    summary["acc_forget_train_labels"] = metric("forgotten", "forget", "acc_train_labels")
    summary["steps"] = {"finetune": results["finetune"]["steps"], "forget": results["forget"]["steps"]}
    summary["sizes"] = {name: len(docs) for name, docs in data.sets().items()}
    summary["cleaning"] = data.cleaning
    summary["split_strategy"] = data.split_strategy
    summary.update(results["analysis"]["analysis"])
    return summary


def across_tasks(tasks: dict[str, dict[str, Any]], *, bootstrap: int, seed: int) -> dict[str, Any]:
    """Correlation of each task-level predictor with the forget ratio, across the run's tasks; tasks
    that were not learned are left out and listed in ``excluded``."""
    per_task = {
        name: dict(row["predictors"], forget_ratio=row.get("forget_ratio"))
        for name, row in tasks.items()
        if row.get("predictors")
    }
    excluded = [name for name, row in tasks.items() if row.get("category") == NOT_LEARNED]
    correlations = predictor_correlations(per_task, predictors=PREDICTORS, n_resamples=bootstrap, seed=seed, exclude=excluded)
    return {"target": "forget_ratio", "correlations": correlations, "excluded": excluded}


def run_summary(config: ForgetGeneralizationConfig, run_id: str, tasks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A Study A run's summary: every task's, and the correlations across tasks when predictors were measured."""
    summary: dict[str, Any] = {"experiment": config.experiment, "run": run_id, "model": config.model.name, "tasks": tasks}
    if config.analysis.predictors:
        summary["analysis"] = across_tasks(tasks, bootstrap=config.eval.bootstrap, seed=config.seed)
    return summary


def combined_summary(cells: list[tuple[ForgetGeneralizationConfig, dict[str, Any]]]) -> dict[str, Any] | None:
    """Study A runs (each its config and summary) as one summary: ``tasks`` (every run's), ``study_a_runs`` (task →
    the run that measured it) and, when every run measured predictors, ``analysis`` (correlations across all tasks,
    as one run over them all would give). None for fewer than two tasks, a task measured twice, or runs of
    different models or seeds, which are not one study."""
    if len({(config.model.model_dump_json(), config.seed) for config, _ in cells}) != 1:
        return None
    tasks: dict[str, dict[str, Any]] = {}
    runs: dict[str, str] = {}
    for _, summary in cells:
        for name, row in summary.get("tasks", {}).items():
            if name in tasks:
                return None
            tasks[name], runs[name] = row, summary.get("run")
    if len(tasks) < 2:
        return None
    first = cells[0][0]
    combined: dict[str, Any] = {"experiment": first.experiment, "model": first.model.name, "study_a_runs": runs, "tasks": tasks}
    if all(config.analysis.predictors for config, _ in cells):
        combined["analysis"] = across_tasks(tasks, bootstrap=first.eval.bootstrap, seed=first.seed)
    return combined


# --------------------------------------------------------------------------------------- cross-task


def cell_forget_ratio(reference: dict[str, Any], acc_test: float, *, flipped: bool) -> float | None:
    """A cell's own forget ratio of its evaluation task, from that task's Study A result ``reference``
    (its ``acc_finetuned``); None when the task was not learned there (category ``not_learned``)."""
    if reference.get("category") == NOT_LEARNED:
        return None
    return forget_ratio(reference["acc_finetuned"], acc_test, flipped=flipped)


def cell_summary(
    config: CrossTaskCellConfig,
    run_id: str,
    reference: dict[str, Any],
    forget: Payload,
    *,
    acc_eval_test: float,
    acc_forget_train: float,
    acc_forget_train_labels: float,
    flipped: bool,
) -> dict[str, Any]:
    """One cell's summary: its accuracy on the evaluation task's test split after forgetting, its forget set's
    accuracy on the true labels and on those it was trained on, and its own forget ratio against
    ``reference`` (the evaluation task's Study A result); ``forget`` is the forgetting stage's payload."""
    return {
        "experiment": config.experiment,
        "run": run_id,
        "forget_task": config.forget_task,
        "eval_task": config.eval_task,
        "forget_run": config.forget_run,
        "eval_run": config.eval_run,
        "reference_acc_finetuned": reference["acc_finetuned"],
        "acc_eval_test": acc_eval_test,
        "acc_forget_train": acc_forget_train,
        "acc_forget_train_labels": acc_forget_train_labels,
        "forget_ratio": cell_forget_ratio(reference, acc_eval_test, flipped=flipped),
        "steps": forget["steps"],
        "losses": forget["losses"],
    }


def sweep_summary(
    config: CrossTaskConfig,
    run_id: str,
    study_a: dict[str, Any],
    cells: dict[str, dict[str, str]],
    accuracy_after: dict[str, dict[str, float]],
    forget_fit: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """The sweep's summary from its Study A runs' :func:`combined_summary` ``study_a`` and, per ordered task pair
    (A, B), the accuracy on B after forgetting A (``accuracy_after[A][B]``), the fit of A's forget set
    (``forget_fit[A][B]``) and the run that measured them (``cells[A][B]``)."""
    names = [ref.name for ref in config.tasks]
    per_task = study_a["tasks"]
    reference = {b: per_task[b]["acc_finetuned"] for b in names}
    not_learned = [b for b in names if per_task[b].get("category") == NOT_LEARNED]
    matrix = cross_task_summary(reference, accuracy_after, names, not_learned=not_learned)
    return {
        "experiment": config.experiment,
        "run": run_id,
        "model": config.model.name,
        "study_a_runs": study_a["study_a_runs"],
        "cells": cells,
        "crosstask": dict(matrix, forget_fit=forget_fit),
        "tasks": per_task,
        **({"analysis": study_a["analysis"]} if "analysis" in study_a else {}),
    }
