"""Study A's cross-task matrix: forget on task A with random labels, measure every task B.

A ``cross_task`` sweep runs (or finds) one Study A run over all its tasks (the per-task pipeline,
its analyses, and each task's fine-tuned weights), then one ``cross_task_cell`` run per ordered pair
A ≠ B: the model fine-tuned on B forgets A's forget set (the same random labels as A's own run) and
is scored on B's test split. Cell (A, B) is B's forget ratio relative to the model fine-tuned on B,
``(acc_FT(B) − acc(B after forgetting A)) / (acc_FT(B) − 0.5)``; the diagonal is the per-task run.
A task B that its Study A run flagged ``not_learned`` has no ratio: its column is None and it is listed
(``crosstask.not_learned``; each of its cells' own ``forget_ratio`` is None too).
Every cell is its own run in the catalog, so a killed sweep resumes without redoing finished cells.
Matrix cells are always measured against chance (0.5), also for ``flipped_label`` forgetting, where a
task pushed all the way to the wrong answers scores 2 (each cell run's own ``forget_ratio`` uses the
flipped formula).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from safetensors.torch import load_file

from forgetlab.analysis.crosstask import crosstask_summary
from forgetlab.data.prepare import PreparedTask
from forgetlab.data.tasks import get_task
from forgetlab.experiments.base import EXPERIMENTS, Inputs, run_experiment
from forgetlab.experiments.forget_generalization.config import CrossTaskCellConfig, CrossTaskConfig
from forgetlab.methods import METHODS
from forgetlab.metrics.forgetting import NOT_LEARNED, accuracy, forget_ratio
from forgetlab.models import load_model
from forgetlab.scoring import Scorer, score_mc
from forgetlab.store import Run
from forgetlab.train import save_state, train_stage, trainable_state


class CrossTask:
    """The sweep: Study A per task, then every off-diagonal cell, then the matrix and its analysis."""

    config = CrossTaskConfig

    def validate(self, config: CrossTaskConfig) -> None:
        EXPERIMENTS.get("forget_generalization").validate(config.study_a())
        if len(config.tasks) < 2:
            raise ValueError("tasks: a cross-task matrix needs at least two tasks")

    def inputs(self, config: CrossTaskConfig) -> Inputs:
        return EXPERIMENTS.get("forget_generalization").inputs(config.study_a())

    def run(self, config: CrossTaskConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        root = run.dir.parent
        base = run_experiment(config.study_a(), root, command=f"cross_task {run.id}", accelerator=accelerator)
        base_summary = base.summary()
        per_task = base_summary["tasks"]
        names = [t.name for t in config.tasks]
        cells: dict[str, dict[str, str]] = {a: {} for a in names}
        accuracy_after: dict[str, dict[str, float]] = {a: {} for a in names}
        forget_fit: dict[str, dict[str, float]] = {a: {} for a in names}
        for a in names:
            for b in names:
                if a == b:
                    accuracy_after[a][b] = per_task[b]["acc_forget_test"]
                    forget_fit[a][b] = per_task[a]["acc_forget_train_labels"]
                    cells[a][b] = base.id
                    continue
                cell = run_experiment(cell_config(config, base.id, a, b), root, command=f"cross_task {run.id}", accelerator=accelerator)
                cell_summary = cell.summary()
                accuracy_after[a][b] = cell_summary["acc_eval_test"]
                forget_fit[a][b] = cell_summary["acc_forget_train_labels"]
                cells[a][b] = cell.id
        reference = {b: per_task[b]["acc_finetuned"] for b in names}
        not_learned = [b for b in names if per_task[b].get("category") == NOT_LEARNED]
        if accelerator.is_main_process and (base.dir / "plots").is_dir():
            shutil.copytree(base.dir / "plots", run.dir / "plots", dirs_exist_ok=True)  # trajectories, for the report
        return {
            "experiment": config.experiment,
            "run": run.id,
            "model": config.model.name,
            "study_a_run": base.id,
            "cells": cells,
            "crosstask": dict(crosstask_summary(reference, accuracy_after, names, not_learned=not_learned), forget_fit=forget_fit),
            "tasks": base_summary["tasks"],
            **({"analysis": base_summary["analysis"]} if "analysis" in base_summary else {}),
        }


def cell_config(config: CrossTaskConfig, source_run: str, forget_task: str, eval_task: str) -> CrossTaskCellConfig:
    return CrossTaskCellConfig(
        name=f"{config.name}-cell",
        seed=config.seed,
        model=config.model,
        source_run=source_run,
        forget_task=forget_task,
        eval_task=eval_task,
        forget=config.forget,
        eval=config.eval,
    )


class CrossTaskCell:
    """Forget one task starting from another task's fine-tuned model; score the other task."""

    config = CrossTaskCellConfig

    writes_report = False  # twelve small runs per 4-task sweep; the sweep's report shows them all

    def validate(self, config: CrossTaskCellConfig) -> None:
        for name in (config.forget_task, config.eval_task):
            get_task(name)
        METHODS.get(config.forget.method)

    def inputs(self, config: CrossTaskCellConfig) -> Inputs:
        """The model; the data and weights come from ``source_run``, whose id already names their content."""
        return Inputs(models=[config.model])

    def run(self, config: CrossTaskCellConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        source = run.dir.parent / config.source_run
        forget_data = _prepared(source, config.forget_task)
        eval_data = _prepared(source, config.eval_task)
        reference = (Run(config.source_run, source, "finished").summary() or {}).get("tasks", {}).get(config.eval_task)
        if reference is None:
            raise FileNotFoundError(f"source_run {config.source_run}: no finished Study A result for {config.eval_task} in {source}")
        model, tokenizer = load_model(config.model)
        model.load_state_dict(load_file(str(source / "stages" / config.eval_task / "finetuned.safetensors")), strict=False)
        payload = run.stage("forget")
        if payload is None:
            payload = _forget(config, run, accelerator, model, tokenizer, forget_data)
        else:
            model.load_state_dict(load_file(str(run.dir / "stages" / "forgotten.safetensors")), strict=False)
        scorer = Scorer(model, tokenizer, batch_size=config.eval.batch_size, on_overlong=config.eval.on_overlong,
                        accelerator=accelerator, progress=accelerator.is_main_process)
        delimiter = get_task(config.eval_task).target_delimiter
        test = score_mc(scorer, eval_data.test, target_delimiter=delimiter, desc=f"{config.forget_task}→{config.eval_task}: test")
        fit = score_mc(scorer, forget_data.forget, target_delimiter=get_task(config.forget_task).target_delimiter,
                       desc=f"{config.forget_task}: forget set")
        if accelerator.is_main_process:
            (run.dir / "stages" / "forgotten.safetensors").unlink(missing_ok=True)
        acc_ft = reference["acc_finetuned"]
        acc_test = accuracy([s.correct for s in test])
        trained_on = METHODS.get(config.forget.method)(loss=config.forget.loss).relabel(forget_data.forget, config.seed)
        return {
            "experiment": config.experiment,
            "run": run.id,
            "forget_task": config.forget_task,
            "eval_task": config.eval_task,
            "source_run": config.source_run,
            "reference_acc_finetuned": acc_ft,
            "acc_eval_test": acc_test,
            "acc_forget_train": accuracy([s.correct for s in fit]),
            "acc_forget_train_labels": accuracy([s.pred == d.gold for s, d in zip(fit, trained_on)]),
            "forget_ratio": cell_forget_ratio(reference, acc_test, flipped=METHODS.get(config.forget.method).flips_labels),
            "steps": payload["steps"],
            "losses": payload["losses"],
        }


def cell_forget_ratio(reference: dict[str, Any], acc_test: float, *, flipped: bool) -> float | None:
    """A cell's own forget ratio of its evaluation task, from that task's Study A result ``reference``
    (its ``acc_finetuned``); None when the task was not learned there (category ``not_learned``)."""
    if reference.get("category") == NOT_LEARNED:
        return None
    return forget_ratio(reference["acc_finetuned"], acc_test, flipped=flipped)


def _prepared(source: Path, task: str) -> PreparedTask:
    saved = Run("", source, "finished").stage(f"{task}/data")
    if saved is None:
        raise FileNotFoundError(f"{source}: no prepared data for task {task!r}")
    return PreparedTask.from_dict(saved)


def _forget(config: CrossTaskCellConfig, run: Run, accelerator: Accelerator, model, tokenizer, data: PreparedTask) -> dict[str, Any]:
    """Forget the forget task (resumable from checkpoints); keep the weights until the cell is scored."""
    checkpoint = run.dir / "stages" / "forget-checkpoint"
    result = train_stage(model, tokenizer, data.forget, config.forget.model_copy(update={"eval_every": 0}), seed=config.seed,
                         accelerator=accelerator, checkpoint_dir=checkpoint, desc=f"{config.forget_task}→{config.eval_task}: forget")
    payload = {"steps": result.steps, "losses": result.losses}
    if accelerator.is_main_process:
        save_state(trainable_state(model), run.dir / "stages" / "forgotten.safetensors")
        run.save_stage("forget", payload)
        shutil.rmtree(checkpoint, ignore_errors=True)
    accelerator.wait_for_everyone()
    return payload
