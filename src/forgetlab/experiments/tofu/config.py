"""The configurations of the TOFU experiments: ``tofu_finetune`` (a model fine-tuned on TOFU authors, then
evaluated: the target model, or the retain model) and ``tofu`` (the target model unlearns the forget authors with
a method, then every TOFU metric against the retain model)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from forgetlab.config import ExperimentConfig, OptimSpec, Spec
from forgetlab.data.tofu import HUB_PATH
from forgetlab.experiments.unlearn.config import ForgetMethodSpec
from forgetlab.metrics.tofu import PerturbedMean

FORGET_SPLITS = ("forget01", "forget05", "forget10")


class TofuDataSpec(Spec):
    """Which TOFU authors the models learn and which items the evaluation reads."""

    source: Literal["auto", "local", "hub"] = Field("auto", description="local files under the data root, the hub, or local when present")
    root: str | None = Field(None, description="data root (default $FORGETLAB_DATA or ../shared/data)")
    hub_path: str = HUB_PATH
    forget: Literal["forget01", "forget05", "forget10"] = Field("forget01", description="the forget split (its authors: 2, 10 or 20)")
    retain_authors: int | None = Field(
        20, ge=1, description="retain authors the models learn: the first N of TOFU's full split (None: the whole retain split)"
    )
    eval_retain_authors: int = Field(
        20, ge=1, le=20, description="retain authors evaluated: the first N of retain_perturbed's 20 (20 questions each)"
    )
    real_authors: int | None = Field(None, ge=1, le=100, description="real-authors questions evaluated (None: all 100)")
    world_facts: int | None = Field(None, ge=1, le=117, description="world-facts questions evaluated (None: all 117)")
    prompt: Literal["chat", "qa"] = Field(
        "chat", description="chat: the model's chat template (its generation prompt; the answer ends as the template ends "
        "the turn, then EOS unless the turn ends with it: OpenUnlearning's rule); qa: 'Question: {q}\\nAnswer: ' then the "
        "answer and EOS (OpenUnlearning's base-model template)",
    )
    system_prompt: str | None = Field(None, description="chat: a system message first (None: the template's own default)")

    @model_validator(mode="after")
    def _sizes(self) -> "TofuDataSpec":
        forget_authors = int(self.forget[-2:]) * 2
        if self.retain_authors is not None:
            if self.retain_authors > 200 - forget_authors:
                raise ValueError(f"retain_authors: {self.forget} leaves {200 - forget_authors} retain authors, {self.retain_authors} asked")
            if self.eval_retain_authors > self.retain_authors:
                raise ValueError(f"eval_retain_authors ({self.eval_retain_authors}) must not exceed retain_authors "
                                 f"({self.retain_authors}): the retain evaluation asks about authors the models learned")
        return self


class TofuFinetuneSpec(OptimSpec):
    """Fine-tuning on TOFU answers (TOFU's defaults: lr 1e-5, 5 epochs, weight decay 0.01)."""

    method: Literal["finetune"] = "finetune"
    lr: float = Field(1e-5, gt=0)
    epochs: float = Field(5.0, gt=0)
    weight_decay: float = Field(0.01, ge=0)


class TofuEvalSpec(Spec):
    """How the TOFU metrics are computed."""

    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(200, ge=1, description="greedy answer length for ROUGE (TOFU/OpenUnlearning: 200)")
    perturbed_mean: PerturbedMean = Field(
        "geometric", description="the truth ratio's mean over perturbed answers: geometric (OpenUnlearning, TOFU's "
        "aggregate_eval_stat.py) or arithmetic (TOFU's utils.get_model_utility)",
    )
    tokenization: Literal["open_unlearning", "lm_eval"] = Field(
        "open_unlearning", description="where the scored answer starts: after the prompt's own tokens (OpenUnlearning's "
        "labels; with the qa prompt a BPE tokenizer merges the space into the answer's first token, which is then not "
        "scored) or lm-eval's rule (the prompt's trailing whitespace moves to the answer)",
    )

    @property
    def boundary(self) -> Literal["prompt", "lm_eval"]:
        return "prompt" if self.tokenization == "open_unlearning" else "lm_eval"


class TofuForgetSpec(ForgetMethodSpec):
    """The unlearning stage: epochs over the forget split, not capped in steps (OpenUnlearning's TOFU: lr 1e-5, 10 epochs)."""

    lr: float = Field(1e-5, gt=0)
    epochs: float = Field(10.0, gt=0)
    max_steps: int | None = Field(None, gt=0, description="overrides epochs when set")


class TofuBase(ExperimentConfig):
    """What both TOFU experiments share: the data, the fine-tuning and the evaluation."""

    data: TofuDataSpec = Field(default_factory=TofuDataSpec)
    finetune: TofuFinetuneSpec = Field(default_factory=TofuFinetuneSpec)
    eval: TofuEvalSpec = Field(default_factory=TofuEvalSpec)


class TofuFinetuneConfig(TofuBase):
    """A model fine-tuned on TOFU authors and evaluated: ``learn: full`` (forget ∪ retain authors, the model to
    unlearn from) or ``learn: retain`` (the retain authors only: the retain model forget quality compares with)."""

    experiment: Literal["tofu_finetune"] = "tofu_finetune"
    learn: Literal["full", "retain"] = "full"


class TofuConfig(TofuBase):
    """Unlearn TOFU's forget authors from the fine-tuned model with a method; every TOFU metric, forget quality
    against the retain model."""

    experiment: Literal["tofu"] = "tofu"
    forget: TofuForgetSpec = Field(default_factory=TofuForgetSpec)
    reference: str = Field(
        "retain_model", description="the retain model's forget truth ratios: 'retain_model' (the tofu_finetune run with "
        "learn: retain, run or found in the runs directory) or a JSON file (a tofu_finetune run's tofu_eval.json, or "
        "OpenUnlearning's TOFU_EVAL.json with forget_truth_ratio.value_by_index)",
    )

    def part(self, learn: Literal["full", "retain"]) -> TofuFinetuneConfig:
        """The fine-tuning run this run starts from (``full``) or compares with (``retain``)."""
        return TofuFinetuneConfig(
            name=f"{self.name}-{'target' if learn == 'full' else 'retain'}", seed=self.seed, model=self.model,
            cpu_threads=self.cpu_threads, compute=self.compute, data=self.data, finetune=self.finetune, eval=self.eval,
            learn=learn,
        )
