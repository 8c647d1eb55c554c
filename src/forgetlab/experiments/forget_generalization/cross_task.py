"""Study A's cross-task matrix: forget on task A with random labels, measure every task B.

A ``cross_task`` sweep runs (or finds) one Study A run per task (the per-task pipeline, its analyses and
the task's fine-tuned weights; the very runs a Study A sweep of one-task cells with the same recipe makes),
then one ``cross_task_cell`` run per ordered pair A ≠ B: the model fine-tuned on B forgets A's forget set
(the same random labels as A's own run) and is scored on B's test split. Cell (A, B) is B's forget ratio relative to the model fine-tuned on B,
``(acc_FT(B) − acc(B after forgetting A)) / (acc_FT(B) − 0.5)``; the diagonal is the per-task run.
A task B that its Study A run flagged ``not_learned`` has no ratio: its column is None and it is listed
(``crosstask.not_learned``; each of its cells' own ``forget_ratio`` is None too).
Every cell is its own run in the catalog, so a killed sweep resumes without redoing finished cells.
Matrix cells are always measured against chance (0.5), also for ``flipped_label`` forgetting, where a
task pushed all the way to the wrong answers scores 2 (each cell run's own ``forget_ratio`` uses the
flipped formula).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from forgetlab.data.prepare import PreparedTask
from forgetlab.data.tasks import get_task
from forgetlab.experiments.base import Experiment, Inputs, Part, StagedRunner, run_experiment, run_id
from forgetlab.experiments.forget_generalization.config import CrossTaskCellConfig, CrossTaskConfig
from forgetlab.experiments.forget_generalization.data import forget_labels
from forgetlab.experiments.forget_generalization.evaluate import label_accuracy, score_task
from forgetlab.experiments.forget_generalization.markdown import cross_task_markdown
from forgetlab.experiments.forget_generalization.report import CROSS_TASK_SECTIONS
from forgetlab.experiments.forget_generalization.run import ForgetGeneralization, stage_key
from forgetlab.experiments.forget_generalization.summary import cell_summary, combined_summary, sweep_summary
from forgetlab.methods import METHODS
from forgetlab.metrics.forgetting import accuracy
from forgetlab.models import load_model
from forgetlab.report.context import Section
from forgetlab.store import Run, RunStore
from forgetlab.train import train_stage

#: Per ordered task pair (A, B): a value measured by the cell that forgot A and scored B.
PairTable = dict[str, dict[str, Any]]


class CrossTask(Experiment):
    """The sweep: Study A per task, then every off-diagonal cell, then the matrix and its analysis."""

    config = CrossTaskConfig
    report_sections = CROSS_TASK_SECTIONS  # its Study A runs' trajectories included
    sweep_metrics = ("crosstask.forget_ratio.*",)

    def validate(self, config: CrossTaskConfig) -> None:
        if len(config.tasks) < 2:
            raise ValueError("tasks: a cross-task matrix needs at least two tasks")
        for ref in config.tasks:
            ForgetGeneralization().validate(config.task_run(ref))

    def inputs(self, config: CrossTaskConfig) -> Inputs:
        return ForgetGeneralization().inputs(config)

    def parts(self, config: CrossTaskConfig) -> list[Part]:
        """One Study A run per task, then every off-diagonal cell (each reads the runs of both its tasks)."""
        names = [ref.name for ref in config.tasks]
        runs = [config.task_run(ref) for ref in config.tasks]
        ids = {name: run_id(task_run, ForgetGeneralization()) for name, task_run in zip(names, runs)}
        index = {name: i for i, name in enumerate(names)}
        cells = [Part(cell_config(config, ids[a], ids[b], a, b), needs=tuple(sorted({index[a], index[b]})), label=f"forget {a}, score {b}")
                 for a in names for b in names if a != b]
        return [Part(task_run, label=f"Study A: {name}") for name, task_run in zip(names, runs)] + cells

    def combine(self, cells: list[tuple[CrossTaskConfig, dict[str, Any]]]) -> dict[str, Any] | None:
        """A sweep of one cross-task run (its parts are the per-task runs and the cells): that run's matrix is what
        they say together. None for several (seeds or variants: the sweep's groups compare those)."""
        return cells[0][1] if len(cells) == 1 else None

    def markdown(self, summary: dict[str, Any]) -> str:
        return cross_task_markdown(summary)

    def run(self, config: CrossTaskConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        command = f"cross_task {run.id}"
        task_runs = [(config.task_run(ref), run_experiment(config.task_run(ref), run.dir.parent, command=command, accelerator=accelerator))
                     for ref in config.tasks]
        study_a = combined_summary([(task_config, task_run.summary() or {}) for task_config, task_run in task_runs])
        if study_a is None:
            raise ValueError(f"run {run.id}: its Study A runs are not one study (a task twice, or models or seeds differ)")
        cells, accuracy_after, forget_fit = measure_pairs(config, study_a, run.dir.parent, command, accelerator)
        return sweep_summary(config, run.id, study_a, cells, accuracy_after, forget_fit)


def measure_pairs(
    config: CrossTaskConfig, study_a: dict[str, Any], runs_dir: Path, command: str, accelerator: Accelerator
) -> tuple[PairTable, PairTable, PairTable]:
    """Per ordered pair (A, B): the run that measured it, B's test accuracy after forgetting A and the fit of
    A's forget set. The diagonal comes from the Study A runs (``study_a``: their :func:`combined_summary`);
    every other pair is a ``cross_task_cell`` run."""
    names, per_task, runs = [ref.name for ref in config.tasks], study_a["tasks"], study_a["study_a_runs"]
    cells: PairTable = {a: {} for a in names}
    accuracy_after: PairTable = {a: {} for a in names}
    forget_fit: PairTable = {a: {} for a in names}
    for a in names:
        for b in names:
            if a == b:
                cells[a][b] = runs[a]
                accuracy_after[a][b] = per_task[b]["acc_forget_test"]
                forget_fit[a][b] = per_task[a]["acc_forget_train_labels"]
                continue
            cell = run_experiment(cell_config(config, runs[a], runs[b], a, b), runs_dir, command=command, accelerator=accelerator)
            measured = cell.summary() or {}
            cells[a][b] = cell.id
            accuracy_after[a][b] = measured["acc_eval_test"]
            forget_fit[a][b] = measured["acc_forget_train_labels"]
    return cells, accuracy_after, forget_fit


def cell_config(config: CrossTaskConfig, forget_run: str, eval_run: str, forget_task: str, eval_task: str) -> CrossTaskCellConfig:
    """The cell of the sweep ``config`` where the model fine-tuned on ``eval_task`` (run ``eval_run``) forgets
    ``forget_task`` (its forget set as run ``forget_run`` prepared it)."""
    return CrossTaskCellConfig(
        name=f"{config.name}-cell",
        seed=config.seed,
        model=config.model,
        cpu_threads=config.cpu_threads,
        compute=config.compute,
        forget_run=forget_run,
        eval_run=eval_run,
        forget_task=forget_task,
        eval_task=eval_task,
        forget=config.forget,
        eval=config.eval,
    )


class CrossTaskCell(Experiment):
    """Forget one task starting from another task's fine-tuned model; score the other task."""

    config = CrossTaskCellConfig

    writes_report = False  # twelve small runs per 4-task sweep; the sweep's report shows them all
    report_sections: tuple[Section, ...] = ()  # ``forgetlab report CELL``: the generic sections only

    def validate(self, config: CrossTaskCellConfig) -> None:
        for name in (config.forget_task, config.eval_task):
            get_task(name)
        METHODS.get(config.forget.method)

    def inputs(self, config: CrossTaskCellConfig) -> Inputs:
        """The model; the data and weights come from ``forget_run`` and ``eval_run``, whose ids name their content."""
        return Inputs(models=[config.model])

    def run(self, config: CrossTaskCellConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        return CellRunner(config, run, accelerator).run()


class CellRunner(StagedRunner):
    """One cell: the forgetting stage (resumable), then the scores of both tasks; weights are not kept."""

    config: CrossTaskCellConfig

    def run(self) -> dict[str, Any]:
        config = self.config
        store = RunStore(self.run_.dir.parent, create=False)
        forget_source, eval_source = store.finished_run(config.forget_run), store.finished_run(config.eval_run)
        forget_data, eval_data = _prepared(forget_source, config.forget_task), _prepared(eval_source, config.eval_task)
        reference = (eval_source.summary() or {}).get("tasks", {}).get(config.eval_task)
        if reference is None:
            raise FileNotFoundError(f"eval_run {config.eval_run}: no Study A result for {config.eval_task}")
        model, tokenizer = load_model(config.model, self.accelerator.device)
        model.load_state_dict(load_file(str(eval_source.kept_weights(stage_key(config.eval_task, "finetuned")))), strict=False)
        forget = self.stage("forget", partial(self._forget, model, tokenizer, forget_data))
        self.load_weights(model, "forgotten")  # trained just now, or by an earlier attempt
        scorer = self.scorer(model, tokenizer, batch_size=config.eval.batch_size, progress=True, on_overlong=config.eval.on_overlong)
        pair = f"{config.forget_task}→{config.eval_task}"
        test = score_task(scorer, eval_data.test, config.eval_task, f"{pair}: test")
        fit = score_task(scorer, forget_data.forget, config.forget_task, f"{config.forget_task}: forget set")
        if self.is_main:
            self.weights_path("forgotten").unlink(missing_ok=True)
        self.save_timings()
        return cell_summary(
            config,
            self.run_.id,
            reference,
            forget,
            acc_eval_test=accuracy([s.correct for s in test]),
            acc_forget_train=accuracy([s.correct for s in fit]),
            acc_forget_train_labels=label_accuracy(fit, forget_labels(config.forget, forget_data.forget, config.seed)),
            flipped=METHODS.get(config.forget.method).flips_labels,
        )

    def _forget(self, model: torch.nn.Module, tokenizer: Any, data: PreparedTask) -> dict[str, Any]:
        """Forget the forget task (resumable from checkpoints); keep the weights until the cell is scored."""
        checkpoint = self.run_.path("stages", "forget-checkpoint")
        spec = self.config.forget.model_copy(update={"eval_every": 0})
        result = train_stage(
            model, tokenizer, data.forget, spec, seed=self.config.seed, accelerator=self.accelerator,
            checkpoint_dir=checkpoint, desc=f"{self.config.forget_task}→{self.config.eval_task}: forget",
        )
        self.save_trained(model, "forgotten", checkpoint=checkpoint)
        return {"steps": result.steps, "losses": result.losses}


def _prepared(source: Run, task: str) -> PreparedTask:
    """The items of ``task`` as the Study A run ``source`` prepared them."""
    saved = source.stage(stage_key(task, "data"))
    if saved is None:
        raise FileNotFoundError(f"run {source.id}: no prepared data for task {task!r}")
    return PreparedTask.from_dict(saved)
