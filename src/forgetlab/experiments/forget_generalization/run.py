"""Study A: does random-label forgetting of a multiple-choice task generalize to new items?

Per task: score the pre-trained model → fine-tune on correct labels → score → forget by fine-tuning
on random labels (scoring the forget set and a test subset every N steps) → score → analyse
(predictors, learning/forgetting order, optional linear probes) → summarise with forget gap, forget
ratio and behaviour category (Zhang, Choshen & Andreas, COLM 2024).
Every stage is saved when it finishes, so a killed run resumes at the first unfinished stage.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from forgetlab.data.prepare import PreparedTask, prepare_task
from forgetlab.data.tasks import get_task, load_task_docs, task_input_files
from forgetlab.data.types import MCDoc
from forgetlab.analysis.predictors import predictor_correlations
import forgetlab.experiments.forget_generalization.analysis as study_a_analysis
from forgetlab.experiments.base import Inputs
from forgetlab.experiments.forget_generalization.config import ForgetGeneralizationConfig, TaskRef
from forgetlab.methods import METHODS
from forgetlab.metrics.forgetting import NOT_LEARNED, accuracy, task_outcome
from forgetlab.metrics.stats import bootstrap_ci
from forgetlab.models import load_model, model_depth
from forgetlab.report.plots import plot_trajectories
from forgetlab.scoring import MCScore, Scorer, num_hidden_layers, score_mc
from forgetlab.store import Run
from forgetlab.train import save_state, train_stage, trainable_state

STAGES = ("pretrained", "finetune", "finetuned", "forget", "forgotten", "analysis")


class ForgetGeneralization:
    """The Study A recipe."""

    config = ForgetGeneralizationConfig

    def validate(self, config: ForgetGeneralizationConfig) -> None:
        for ref in config.tasks:
            get_task(ref.name)
        for section in ("finetune", "forget"):
            try:
                METHODS.get(getattr(config, section).method)
            except KeyError as error:
                raise KeyError(f"{section}.method: {error.args[0]}") from None
        study_a_analysis.check_layers(config.analysis, model_depth(config.model))

    def inputs(self, config: ForgetGeneralizationConfig) -> Inputs:
        root = Path(config.data.root) if config.data.root else None
        files = [
            path
            for ref in config.tasks
            for path in task_input_files(ref.name, source=ref.source, data_root=root, files=ref.files)
        ]
        return Inputs(files=files, models=[config.model])

    def run(self, config: ForgetGeneralizationConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        """Run every task of the config; return the summary (``tasks.<task>.{acc_*, forget_gap, ...}``)."""
        tasks = {ref.name: TaskRunner(config, ref, run, accelerator).run() for ref in config.tasks}
        summary: dict[str, Any] = {"experiment": config.experiment, "run": run.id, "model": config.model.name, "tasks": tasks}
        if config.analysis.predictors:
            summary["analysis"] = across_tasks(tasks, config)
        if accelerator.is_main_process:
            plot_trajectories(run.dir / "metrics.jsonl", run.dir / "plots")
        return summary


def across_tasks(tasks: dict[str, dict[str, Any]], config: ForgetGeneralizationConfig) -> dict[str, Any]:
    """Correlation of each task-level predictor with the forget ratio, across the run's tasks; tasks
    that were not learned are left out and listed in ``excluded``."""
    per_task = {
        name: dict(row["predictors"], forget_ratio=row.get("forget_ratio"))
        for name, row in tasks.items()
        if row.get("predictors")
    }
    excluded = [name for name, row in tasks.items() if row.get("category") == NOT_LEARNED]
    correlations = predictor_correlations(
        per_task,
        predictors=("difficulty", "confidence_pretrained", "confidence_finetuned", "hidden_variance", "hidden_variance_pretrained"),
        n_resamples=config.eval.bootstrap,
        seed=config.seed,
        exclude=excluded,
    )
    return {"target": "forget_ratio", "correlations": correlations, "excluded": excluded}


class TaskRunner:
    """The five stages of one task, each skipped when the run directory already holds it."""

    def __init__(self, config: ForgetGeneralizationConfig, ref: TaskRef, run: Run, accelerator: Accelerator) -> None:
        self.config, self.ref, self.run_, self.acc = config, ref, run, accelerator
        self.task = ref.name
        self.delimiter = get_task(ref.name).target_delimiter
        self.model: torch.nn.Module | None = None
        self.tokenizer = None
        self.scores: dict[tuple[str, str], list[MCScore]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self._loaded_stage: str | None = None

    # --- orchestration ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        data = self._prepared()
        results = self.results = {}
        for stage in STAGES:
            payload = self._load_stage(stage)
            if payload is None:
                payload = getattr(self, f"_stage_{stage}")(data)
                self._save_stage(stage, payload)
            results[stage] = payload
        if not self.config.save_models and self.acc.is_main_process:
            for stage in ("finetuned", "forgotten"):
                self._weights_path(stage).unlink(missing_ok=True)
        return self._summarise(data, results)

    def _key(self, stage: str) -> str:
        return f"{self.task}/{stage}"

    def _load_stage(self, stage: str) -> dict[str, Any] | None:
        self.acc.wait_for_everyone()
        return self.run_.stage(self._key(stage))

    def _save_stage(self, stage: str, payload: dict[str, Any]) -> None:
        if self.acc.is_main_process:
            self.run_.save_stage(self._key(stage), payload)
        self.acc.wait_for_everyone()

    # --- data --------------------------------------------------------------------------------------

    def _prepared(self) -> PreparedTask:
        saved = self._load_stage("data")
        if saved is None:
            docs = load_task_docs(
                self.task,
                source=self.ref.source,
                data_root=Path(self.config.data.root) if self.config.data.root else None,
                hub_path=self.ref.hub_path,
                files=self.ref.files,
            )
            spec = self.config.data
            prepared = prepare_task(
                docs,
                finetune_size=spec.finetune_size,
                forget_size=spec.forget_size,
                validation_size=spec.validation_size,
                test_size=spec.test_size,
                seed=self.config.seed,
                max_chars=spec.max_chars,
            )
            saved = prepared.to_dict()
            self._save_stage("data", saved)
        return PreparedTask.from_dict(saved)

    # --- model -------------------------------------------------------------------------------------

    def _ensure_model(self, weights_of: str | None) -> torch.nn.Module:
        """The pre-trained model, with the trained weights of an earlier stage loaded if asked."""
        if self.model is None:
            self.model, self.tokenizer = load_model(self.config.model)
            if weights_of is not None:
                state = load_file(str(self._weights_path(weights_of)))
                self.model.load_state_dict(state, strict=False)
        return self.model

    def _weights_path(self, stage: str) -> Path:
        return self.run_.dir / "stages" / self.task / f"{stage}.safetensors"

    def _save_weights(self, stage: str, checkpoint: Path) -> None:
        """Keep the trained weights of a finished stage; its resumable checkpoint is no longer needed."""
        if self.acc.is_main_process:
            save_state(trainable_state(self.model), self._weights_path(stage))
            shutil.rmtree(checkpoint, ignore_errors=True)
        self.acc.wait_for_everyone()

    # --- scoring -----------------------------------------------------------------------------------

    def _scorer(self) -> Scorer:
        ev = self.config.eval
        return Scorer(self.model, self.tokenizer, batch_size=ev.batch_size, on_overlong=ev.on_overlong, accelerator=self.acc, progress=self.acc.is_main_process)

    def _evaluate(self, stage: str, step: int, splits: dict[str, Sequence[MCDoc]], train_labels: Sequence[MCDoc] | None) -> tuple[list, list]:
        """Score each split; metrics rows and per-item rows for the run store."""
        scorer = self._scorer()
        metrics, examples = [], []
        for split, docs in splits.items():
            scores = score_mc(scorer, docs, target_delimiter=self.delimiter, desc=f"{self.task}: {stage} {split}")
            base = {"task": self.task, "stage": stage, "step": step, "split": split}
            metrics.extend(dict(base, metric=name, value=value) for name, value in self._split_metrics(scores).items())
            if split == "forget" and train_labels is not None:
                fit = accuracy([s.pred == d.gold for s, d in zip(scores, train_labels)])
                metrics.append(dict(base, metric="acc_train_labels", value=fit))
            examples.extend(dict(base, **s.to_dict()) for s in scores)
        return metrics, examples

    def _split_metrics(self, scores: list[MCScore]) -> dict[str, float]:
        correct = [float(s.correct) for s in scores]
        out = {
            "acc": accuracy([s.correct for s in scores]),
            "acc_norm": accuracy([s.correct_norm for s in scores]),
            "confidence": sum(s.confidence for s in scores) / len(scores),
            "n": float(len(scores)),
        }
        interval = bootstrap_ci(correct, n_resamples=self.config.eval.bootstrap, seed=self.config.seed)
        if interval is not None:
            out["acc_ci_low"], out["acc_ci_high"] = interval
        return out

    def _final_eval(self, stage: str, data: PreparedTask, train_labels: Sequence[MCDoc] | None = None) -> dict[str, Any]:
        metrics, examples = self._evaluate(stage, 0, {"test": data.test, "forget": data.forget}, train_labels)
        return {"metrics": metrics, "examples": examples}

    # --- stages ------------------------------------------------------------------------------------

    def _stage_pretrained(self, data: PreparedTask) -> dict[str, Any]:
        study_a_analysis.check_layers(self.config.analysis, num_hidden_layers(self._ensure_model(None)))
        return self._final_eval("pretrained", data)

    def _stage_finetune(self, data: PreparedTask) -> dict[str, Any]:
        self._ensure_model(None)
        spec = self.config.finetune
        splits = {"validation": data.validation, "forget": data.forget, "test": self._trajectory_test(data)}
        evaluate = self._trajectory("finetune", {k: v for k, v in splits.items() if v}, None)
        result = train_stage(
            self.model, self.tokenizer, data.finetune, spec, seed=self.config.seed, accelerator=self.acc,
            evaluate=evaluate, checkpoint_dir=self._checkpoint_dir("finetune"), desc=f"{self.task}: fine-tune",
        )
        self._save_weights("finetuned", self._checkpoint_dir("finetune"))
        return self._training_payload("finetune", result)

    def _stage_finetuned(self, data: PreparedTask) -> dict[str, Any]:
        self._ensure_model("finetuned")
        return self._final_eval("finetuned", data)

    def _forget_labels(self, data: PreparedTask) -> list[MCDoc]:
        method = METHODS.get(self.config.forget.method)(loss=self.config.forget.loss)
        return method.relabel(data.forget, self.config.seed)

    def _stage_forget(self, data: PreparedTask) -> dict[str, Any]:
        self._ensure_model("finetuned")
        spec = self.config.forget
        test_subset = self._trajectory_test(data)
        splits = {"forget": data.forget, **({"test": test_subset} if test_subset else {})}
        evaluate = self._trajectory("forget", splits, self._forget_labels(data))
        result = train_stage(
            self.model, self.tokenizer, data.forget, spec, seed=self.config.seed, accelerator=self.acc,
            evaluate=evaluate, checkpoint_dir=self._checkpoint_dir("forget"), desc=f"{self.task}: forget",
        )
        self._save_weights("forgotten", self._checkpoint_dir("forget"))
        return self._training_payload("forget", result)

    def _stage_forgotten(self, data: PreparedTask) -> dict[str, Any]:
        self._ensure_model("forgotten")
        return self._final_eval("forgotten", data, self._forget_labels(data))

    def _stage_analysis(self, data: PreparedTask) -> dict[str, Any]:
        spec, results = self.config.analysis, self.results
        analysis: dict[str, Any] = {
            "order": study_a_analysis.order_analysis(results, data, self._forget_labels(data), spec.order_threshold, self.config.seed)
        }
        acc_finetuned = _final_metric(results["finetuned"], "test", "acc")
        if spec.predictors:
            analysis.update(
                study_a_analysis.predictor_analysis(
                    spec, results, data, self._scorer_for, acc_finetuned, self.config.seed, self.config.eval.bootstrap
                )
            )
        if spec.probes:
            analysis["probes"] = study_a_analysis.probe_analysis(spec, data, self._scorer_for, self.config.seed)
        self.model = None
        return {"analysis": analysis}

    def _scorer_for(self, model_stage: str) -> Scorer:
        """A scorer over the model as it was after ``model_stage`` (pretrained, finetuned or forgotten)."""
        if self._loaded_stage != model_stage:
            self.model = None
            self._ensure_model(None if model_stage == "pretrained" else model_stage)
            self._loaded_stage = model_stage
        return self._scorer()

    def _trajectory_test(self, data: PreparedTask) -> list[MCDoc]:
        return data.test[: self.config.eval.trajectory_test_size]

    def _checkpoint_dir(self, stage: str) -> Path:
        return self.run_.dir / "stages" / self.task / f"{stage}-checkpoint"

    def _trajectory(self, stage: str, splits: dict[str, Sequence[MCDoc]], train_labels: Sequence[MCDoc] | None):
        def evaluate(step: int) -> list[dict[str, Any]]:
            metrics, examples = self._evaluate(stage, step, splits, train_labels)
            return metrics + [dict(e, kind="example") for e in examples]

        return evaluate

    def _training_payload(self, stage: str, result) -> dict[str, Any]:
        metrics = [r for r in result.trajectory if r.get("kind") != "example"]
        examples = [{k: v for k, v in r.items() if k != "kind"} for r in result.trajectory if r.get("kind") == "example"]
        losses = [
            {"task": self.task, "stage": stage, "step": i + 1, "split": "train", "metric": "loss", "value": loss}
            for i, loss in enumerate(result.losses)
        ]
        return {"steps": result.steps, "metrics": metrics + losses, "examples": examples}

    # --- summary -----------------------------------------------------------------------------------

    def _summarise(self, data: PreparedTask, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        def metric(stage: str, split: str, name: str) -> float:
            return _final_metric(results[stage], split, name)

        outcome = task_outcome(
            acc_pretrained=metric("pretrained", "test", "acc"),
            acc_finetuned=metric("finetuned", "test", "acc"),
            acc_forget_test=metric("forgotten", "test", "acc"),
            acc_forget_train=metric("forgotten", "forget", "acc"),
            rules=self.config.classify,
            flipped=METHODS.get(self.config.forget.method).flips_labels,
            acc_forget_train_labels=metric("forgotten", "forget", "acc_train_labels"),
            finetuned_ci=_interval(results["finetuned"], "test"),
        )
        summary = outcome.to_dict()
        for stage, label in (("pretrained", "pretrained"), ("finetuned", "finetuned"), ("forgotten", "forget_test")):
            summary[f"acc_{label}_ci"] = _interval(results[stage], "test")
            summary[f"acc_norm_{label}"] = metric(stage, "test", "acc_norm")
            summary[f"confidence_{label}"] = metric(stage, "test", "confidence")
        summary["acc_forget_train_ci"] = _interval(results["forgotten"], "forget")
        summary["acc_forget_train_before"] = metric("finetuned", "forget", "acc")
        summary["acc_forget_train_labels"] = metric("forgotten", "forget", "acc_train_labels")
        summary["steps"] = {"finetune": results["finetune"]["steps"], "forget": results["forget"]["steps"]}
        summary["sizes"] = {name: len(getattr(data, name)) for name in ("finetune", "forget", "validation", "test")}
        summary["cleaning"] = data.cleaning
        summary["split_strategy"] = data.split_strategy
        summary.update(results["analysis"]["analysis"])
        return summary


def _final_metric(payload: dict[str, Any], split: str, name: str) -> float:
    return next(m["value"] for m in payload["metrics"] if m["split"] == split and m["metric"] == name and m["step"] == 0)


def _interval(payload: dict[str, Any], split: str) -> list[float] | None:
    rows = {m["metric"]: m["value"] for m in payload["metrics"] if m["split"] == split and m["step"] == 0}
    if "acc_ci_low" not in rows:
        return None
    return [rows["acc_ci_low"], rows["acc_ci_high"]]
