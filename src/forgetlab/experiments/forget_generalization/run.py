"""Study A: does random-label forgetting of a multiple-choice task generalize to new items?

Per task: score the pre-trained model → fine-tune on correct labels → score → forget by fine-tuning
on random labels (scoring the forget set and a test subset every N steps) → score → analyse
(predictors, learning/forgetting order, optional linear probes) → summarise with forget gap, forget
ratio and behaviour category (Zhang, Choshen & Andreas, COLM 2024).
Every stage is saved when it finishes, so a killed run resumes at the first unfinished stage.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from forgetlab.config import OptimSpec
from forgetlab.data.corpus import corpus_input_files
from forgetlab.data.prepare import PreparedTask
from forgetlab.data.tasks import get_task
from forgetlab.data.types import MCDoc
from forgetlab.experiments.base import Experiment, Inputs, StagedRunner, save_timings
from forgetlab.experiments.forget_generalization.analysis import check_layers, order_analysis, predictor_analysis, probe_analysis
from forgetlab.experiments.forget_generalization.config import ForgetGeneralizationConfig, TaskRef
from forgetlab.experiments.forget_generalization.data import forget_labels, input_files, prepare
from forgetlab.experiments.forget_generalization.evaluate import TaskEvaluation
from forgetlab.experiments.forget_generalization.markdown import study_a_markdown
from forgetlab.experiments.forget_generalization.report import STUDY_A_SECTIONS
from forgetlab.experiments.forget_generalization.report import robustness
from forgetlab.experiments.forget_generalization.robustness import task_robustness
from forgetlab.experiments.robustness import check_attacks
from forgetlab.experiments.forget_generalization.summary import combined_summary, final_metric, run_summary, task_summary
from forgetlab.methods import METHODS
from forgetlab.models import load_model, model_depth
from forgetlab.models import num_hidden_layers
from forgetlab.scoring import Scorer
from forgetlab.store import Run
from forgetlab.train import EvalFn, train_stage


class ForgetGeneralization(Experiment):
    """The Study A recipe."""

    config = ForgetGeneralizationConfig
    report_sections = STUDY_A_SECTIONS
    sweep_metrics = ("tasks.*.acc_finetuned", "tasks.*.acc_forget_test", "tasks.*.forget_ratio")

    def validate(self, config: ForgetGeneralizationConfig) -> None:
        for ref in config.tasks:
            get_task(ref.name)
        for section, spec in (("finetune", config.finetune), ("forget", config.forget)):
            try:
                METHODS.get(spec.method)
            except KeyError as error:
                raise KeyError(f"{section}.method: {error.args[0]}") from None
        check_layers(config.analysis, model_depth(config.model))
        benign = config.attack_data.benign
        check_attacks(config.attacks, {"disjoint": None, "benign": None if benign else "needs attack_data.benign (a corpus)"})

    def inputs(self, config: ForgetGeneralizationConfig) -> Inputs:
        benign = config.attack_data.benign
        files = input_files(config.tasks, config.data) + (corpus_input_files(benign) if benign and config.attacks else [])
        return Inputs(files=files, models=[config.model])

    def run(self, config: ForgetGeneralizationConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        """Run every task of the config; return the summary (``tasks.<task>.{acc_*, forget_gap, ...}``)."""
        runners = [TaskRunner(config, ref, run, accelerator) for ref in config.tasks]
        tasks = {runner.task: runner.run() for runner in runners}
        save_timings(run, accelerator, {key: seconds for runner in runners for key, seconds in runner.stage_seconds.items()})
        return run_summary(config, run.id, tasks)

    def combine(self, cells: list[tuple[ForgetGeneralizationConfig, dict[str, Any]]]) -> dict[str, Any] | None:
        """A sweep over tasks (e.g. one cell per task, spread over the workers) as one Study A summary: every
        task's row, the run that measured it, and the predictor correlations across the tasks. None when a task
        appears in two cells (seeds or variants: the sweep's groups compare those) or the cells differ in model
        or seed."""
        return combined_summary(cells)

    def markdown(self, summary: dict[str, Any]) -> str:
        return study_a_markdown(summary)

    # --- recovery attacks on a finished run (forgetlab attack) --------------------------------------

    attack_fields = ("attack_data",)
    robustness_section = staticmethod(robustness)

    def attack_finished(self, runner: StagedRunner, config: ForgetGeneralizationConfig, source: Run) -> dict[str, Any]:
        """The attacks on each task's forgotten model of ``source`` (``tasks.<task>.robustness``)."""
        tasks = {}
        for ref in config.tasks:
            saved = source.stage(stage_key(ref.name, "data"))
            if saved is None:
                raise FileNotFoundError(f"run {source.id}: no prepared data for task {ref.name!r}")

            def load_weights(model: torch.nn.Module, stage: str, task: str = ref.name) -> None:
                model.load_state_dict(load_file(str(source.kept_weights(stage_key(task, stage)))), strict=False)

            tasks[ref.name] = {"robustness": task_robustness(runner, config, PreparedTask.from_dict(saved), load_weights)}
        return {"tasks": tasks}


def stage_key(task: str, stage: str) -> str:
    """The key a Study A run saves a task's stage under (its payload, and the weights the stage keeps)."""
    return f"{task}/{stage}"


class TaskRunner(StagedRunner):
    """The stages of one task (keys ``<task>/<stage>``), each skipped when the run directory already holds it."""

    config: ForgetGeneralizationConfig

    def __init__(self, config: ForgetGeneralizationConfig, ref: TaskRef, run: Run, accelerator: Accelerator) -> None:
        super().__init__(config, run, accelerator)
        self.ref, self.task = ref, ref.name
        self.evaluation = TaskEvaluation(ref.name, bootstrap=config.eval.bootstrap, seed=config.seed)
        self.results: dict[str, dict[str, Any]] = {}
        self._loaded_stage: str | None = None

    def run(self) -> dict[str, Any]:
        """Every stage in order (resuming at the first unfinished one); the task's summary."""
        data = PreparedTask.from_dict(self.stage(stage_key(self.task, "data"), self._prepare))
        self.results = {}
        for stage, compute in self._stages():
            self.results[stage] = self.stage(stage_key(self.task, stage), partial(compute, data))
        robustness = self._robustness(data) if self.config.attacks else None
        if not self.config.save_models and self.is_main:
            for kept in ("finetuned", "forgotten"):
                self.weights_path(self.task, kept).unlink(missing_ok=True)
        flipped = METHODS.get(self.config.forget.method).flips_labels
        summary = task_summary(data, self.results, self.config.classify, flipped=flipped)
        return summary if robustness is None else dict(summary, robustness=robustness)

    def _robustness(self, data: PreparedTask) -> dict[str, Any]:
        """The recovery attacks on this task's forgotten model (stages ``<task>/robustness/...``)."""
        self.model, self._loaded_stage = None, None
        return task_robustness(self, self.config, data, lambda model, stage: self.load_weights(model, self.task, stage))

    def _stages(self) -> tuple[tuple[str, Callable[[PreparedTask], dict[str, Any]]], ...]:
        return (
            ("pretrained", self._score_pretrained),
            ("finetune", self._finetune),
            ("finetuned", self._score_finetuned),
            ("forget", self._forget),
            ("forgotten", self._score_forgotten),
            ("analysis", self._analyse),
        )

    def _prepare(self) -> dict[str, Any]:
        return prepare(self.ref, self.config.data, self.config.seed).to_dict()

    # --- model and scoring -------------------------------------------------------------------------

    def _model_after(self, stage: str | None) -> torch.nn.Module:
        """The model in memory; if there is none, the pre-trained one with the weights kept by ``stage``."""
        if self.model is None:
            self.model, self.tokenizer = load_model(self.config.model, self.accelerator.device)
            if stage is not None:
                self.load_weights(self.model, self.task, stage)
        return self.model

    def _new_scorer(self) -> Scorer:
        spec = self.config.eval
        return self.scorer(self.model, self.tokenizer, batch_size=spec.batch_size, progress=True, on_overlong=spec.on_overlong)

    def _scorer_for(self, model_stage: str) -> Scorer:
        """A scorer over the model as it was after ``model_stage`` (pretrained, finetuned or forgotten)."""
        if self._loaded_stage != model_stage:
            self.model = None
            self._model_after(None if model_stage == "pretrained" else model_stage)
            self._loaded_stage = model_stage
        return self._new_scorer()

    def _forget_labels(self, data: PreparedTask) -> list[MCDoc]:
        return forget_labels(self.config.forget, data.forget, self.config.seed)

    def _trajectory_test(self, data: PreparedTask) -> list[MCDoc]:
        return data.test[: self.config.eval.trajectory_test_size]

    # --- stages ------------------------------------------------------------------------------------

    def _score_pretrained(self, data: PreparedTask) -> dict[str, Any]:
        check_layers(self.config.analysis, num_hidden_layers(self._model_after(None)))
        return self.evaluation.final(self._new_scorer(), "pretrained", data)

    def _finetune(self, data: PreparedTask) -> dict[str, Any]:
        self._model_after(None)
        splits = {"validation": data.validation, "forget": data.forget, "test": self._trajectory_test(data)}
        evaluate = self.evaluation.during_training(self._new_scorer, "finetune", {k: v for k, v in splits.items() if v}, None)
        return self._train("finetune", data.finetune, self.config.finetune, evaluate, kept_as="finetuned", desc="fine-tune")

    def _score_finetuned(self, data: PreparedTask) -> dict[str, Any]:
        self._model_after("finetuned")
        return self.evaluation.final(self._new_scorer(), "finetuned", data)

    def _forget(self, data: PreparedTask) -> dict[str, Any]:
        self._model_after("finetuned")
        test_subset = self._trajectory_test(data)
        splits = {"forget": data.forget, **({"test": test_subset} if test_subset else {})}
        evaluate = self.evaluation.during_training(self._new_scorer, "forget", splits, self._forget_labels(data))
        return self._train("forget", data.forget, self.config.forget, evaluate, kept_as="forgotten", desc="forget")

    def _score_forgotten(self, data: PreparedTask) -> dict[str, Any]:
        self._model_after("forgotten")
        return self.evaluation.final(self._new_scorer(), "forgotten", data, self._forget_labels(data))

    def _train(
        self, stage: str, docs: Sequence[MCDoc], spec: OptimSpec, evaluate: EvalFn, *, kept_as: str, desc: str
    ) -> dict[str, Any]:
        """Train the model in place (resumable from checkpoints), keep its weights as ``kept_as``."""
        checkpoint = self.run_.path("stages", self.task, f"{stage}-checkpoint")
        result = train_stage(
            self.model, self.tokenizer, docs, spec, seed=self.config.seed, accelerator=self.accelerator,
            evaluate=evaluate, checkpoint_dir=checkpoint, desc=f"{self.task}: {desc}",
        )
        self.save_trained(self.model, self.task, kept_as, checkpoint=checkpoint)
        return self.evaluation.training_payload(stage, result)

    def _analyse(self, data: PreparedTask) -> dict[str, Any]:
        spec, results, seed = self.config.analysis, self.results, self.config.seed
        analysis: dict[str, Any] = {"order": order_analysis(results, data, self._forget_labels(data), spec.order_threshold, seed)}
        if spec.predictors:
            acc_finetuned = final_metric(results["finetuned"], "test", "acc")
            bootstrap = self.config.eval.bootstrap
            analysis.update(predictor_analysis(spec, results, data, self._scorer_for, acc_finetuned, seed, bootstrap))
        if spec.probes:
            analysis["probes"] = probe_analysis(spec, data, self._scorer_for, seed)
        self.model = None
        return {"analysis": analysis}
