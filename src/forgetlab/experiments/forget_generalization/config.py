"""Study A's configuration: which tasks, how their data is split, how the model is fine-tuned and made to
forget, how it is scored and analysed; the cross-task sweep and each of its cells.

The behaviour thresholds (:class:`~forgetlab.metrics.forgetting.ClassifySpec`) belong to the metric that
applies them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from forgetlab.attacks import AttackSpec
from forgetlab.config import ExperimentConfig, OptimSpec, Spec, check_run_name
from forgetlab.data.corpus import CorpusSpec
from forgetlab.metrics.forgetting import ClassifySpec


class TaskRef(Spec):
    """A task of the run: a registered task name and where its data comes from."""

    name: str
    source: Literal["auto", "local", "hub", "files", "synthetic"] = "auto"
    hub_path: str | None = None
    files: dict[str, str] | None = None


class DataSpec(Spec):
    """How each task's items are cleaned, binarized and split (sizes are per task)."""

    root: str | None = Field(None, description="folder of local benchmark files (default $FORGETLAB_DATA or ../shared/data)")
    finetune_size: int = Field(200, ge=1)
    forget_size: int = Field(100, ge=1)
    validation_size: int = Field(100, ge=0)
    test_size: int = Field(300, ge=1)
    max_chars: int | None = Field(None, ge=1, description="drop items whose longest request is longer (counted)")


class FinetuneSpec(OptimSpec):
    """Study A step 2: fine-tuning on the correct labels."""

    method: str = "finetune"
    lr: float = Field(1e-5, gt=0)
    epochs: float = Field(1.0, gt=0)


class ForgetSpec(OptimSpec):
    """Study A step 3: forgetting (random labels at LR 1e-4, the paper's one known hyper-parameter)."""

    method: str = "random_label"
    lr: float = Field(1e-4, gt=0)
    epochs: float = Field(3.0, gt=0)
    eval_every: int = Field(5, ge=0)


class EvalSpec(Spec):
    """Scoring options."""

    batch_size: int = Field(16, ge=1)
    trajectory_test_size: int = Field(100, ge=0, description="test items scored at each in-training evaluation")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for 95% intervals (0: none)")
    on_overlong: Literal["error", "truncate"] = "error"


class AnalysisSpec(Spec):
    """Per-task analyses of Study A (predictors of forgetting, learning/forgetting order, linear probes)."""

    predictors: bool = Field(True, description="hidden-state variance and item-level predictor AUCs")
    layer: int | float = Field(
        -5, description="hidden state for the variance predictor: index into output_hidden_states "
        "(0 = embeddings, -5 = fifth-to-last) or a relative depth in (0, 1]"
    )
    order_threshold: float = Field(0.6, gt=0, lt=1, description="confidence that counts as learned / forgotten")
    probes: bool = Field(False, description="linear probes on (prompt + answer) hidden states of the PT, FT and forgotten models")
    probe_layers: list[int | float] | None = Field(None, description="layers of the probe sweep (default: every layer)")
    probe_cs: list[float] = Field([1e-3, 1e-2, 1e-1, 1.0, 10.0], min_length=1, description="inverse L2 strengths tried on validation")
    probe_test_size: int | None = Field(None, ge=1, description="test items for the probes (default: the whole test split)")


class AttackDataSpec(Spec):
    """What the recovery attacks of each task train on besides the model (``attacks:``)."""

    relearn_size: int = Field(32, ge=1, description="relearn (data: disjoint): the first N fine-tuning items with their "
                              "correct labels — other items of the task, never forget or test items")
    benign: CorpusSpec | None = Field(None, description="relearn (data: benign): unrelated text, pairs of this corpus")
    benign_split: Literal["train", "validation", "test"] = "train"
    benign_size: int = Field(32, ge=1, description="relearn (data: benign): the first N pairs of benign_split")
    test_size: int | None = Field(None, ge=1, description="test items every attacked model is scored on (default: the whole test split)")


class ForgetGeneralizationConfig(ExperimentConfig):
    """Study A: fine-tune on correct labels, then forget with random labels, per task."""

    experiment: Literal["forget_generalization"] = "forget_generalization"
    tasks: list[TaskRef] = Field(description="the tasks, each run through the whole pipeline (a name, or a name and its source)")
    data: DataSpec = Field(default_factory=DataSpec, description="step 0: each task's items, cleaned, binarized and split")
    finetune: FinetuneSpec = Field(default_factory=FinetuneSpec, description="step 2: fine-tuning on the correct labels")
    forget: ForgetSpec = Field(default_factory=ForgetSpec, description="step 3: forgetting on random (or flipped) labels")
    eval: EvalSpec = Field(default_factory=EvalSpec, description="steps 1, 2 and 4: scoring, also during training")
    classify: ClassifySpec = Field(default_factory=ClassifySpec, description="thresholds of the three behaviours")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="predictors, learning/forgetting order, probes")
    save_models: bool = Field(True, description="keep the fine-tuned and forgotten weights in the run directory")
    attacks: list[AttackSpec] = Field(
        default_factory=list, description="recovery attacks on each task's forgotten model, with the fine-tuned (original) "
        "and pre-trained (never learned) models beside it (forgetlab.attacks: quantize, relearn, logit_lens)",
    )
    attack_data: AttackDataSpec = Field(default_factory=AttackDataSpec, description="what relearning trains on")

    @model_validator(mode="before")
    @classmethod
    def _task_names(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("tasks"), list):
            data = dict(data, tasks=[{"name": t} if isinstance(t, str) else t for t in data["tasks"]])
        return data

    @model_validator(mode="after")
    def _check(self) -> "ForgetGeneralizationConfig":
        if not self.tasks:
            raise ValueError("tasks: at least one task is needed")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"tasks: listed twice: {sorted({n for n in names if names.count(n) > 1})}")
        return self


class CrossTaskConfig(ForgetGeneralizationConfig):
    """A Study A config whose tasks also forget each other (the sweep over ordered task pairs)."""

    experiment: Literal["cross_task"] = "cross_task"  # type: ignore[assignment]

    def task_run(self, ref: TaskRef) -> ForgetGeneralizationConfig:
        """The Study A run of one task of the sweep (its weights are kept: the cells start from them). It has the
        sweep's name and recipe, so a Study A sweep of one-task cells with the same recipe has made it already."""
        fields = self.model_dump(exclude={"experiment", "save_models", "tasks"})
        return ForgetGeneralizationConfig(**fields, tasks=[ref], save_models=True)


class CrossTaskCellConfig(ExperimentConfig):
    """One cell: the model fine-tuned on ``eval_task`` (in run ``eval_run``) forgets ``forget_task`` (the forget set
    that run ``forget_run`` prepared, with the same random labels)."""

    experiment: Literal["cross_task_cell"] = "cross_task_cell"
    forget_run: str = Field(description="the Study A run of forget_task (same runs directory): its prepared forget set")
    eval_run: str = Field(description="the Study A run of eval_task (same runs directory): its items, fine-tuned weights "
                          "and result")
    forget_task: str
    eval_task: str
    forget: ForgetSpec = Field(default_factory=ForgetSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)

    @field_validator("forget_run", "eval_run")
    @classmethod
    def _run_id(cls, value: str, info: ValidationInfo) -> str:
        return check_run_name(value, info.field_name or "run")
