"""The recipe of an ``id_vs_ood`` run: corpus, forget groups, training, unlearning, evaluation, buckets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from forgetlab.attacks import AttackSpec
from forgetlab.config import ExperimentConfig, OptimSpec, Spec
from forgetlab.data.canaries import CanarySpec, GroupSpec
from forgetlab.data.corpus import CorpusSpec
from forgetlab.experiments.id_vs_ood.stopping import Criterion
from forgetlab.metrics.exposure import Convention
from forgetlab.metrics.memorization import Similarity
from forgetlab.models import ModelSpec
from forgetlab.scratch_model import ScratchSpec

SCRATCH = "scratch"  # model.name that trains the small decoder of forgetlab.scratch_model from scratch


class PretrainSpec(OptimSpec):
    """Training the original and the reference model on the corpus (from scratch or fine-tuning)."""

    method: str = "finetune"
    lr: float = Field(2e-3, gt=0)
    scheduler: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_steps: int = Field(20, ge=0)
    epochs: float = Field(2.0, gt=0, description="passes over base corpus + inserted forget sets")
    batch_size: int = Field(64, ge=1)
    append_eos: bool = Field(True, description="train on target + EOS so that greedy decoding learns to stop")
    reference: Literal["replace", "remove"] = Field(
        "replace", description="reference stream: forget items replaced by fresh stand-ins (same steps) or removed"
    )


class StopSpec(Spec):
    """When gradient ascent on a group stops before ``max_steps``.

    ``exposure_baseline`` (OOD groups only): mean exposure at or below the unseen baseline;
    ``genex_zero`` (every group): mean generalized exposure at or below 0. With ``mode: all`` a run
    stops once every enabled rule that applies to its group has been met (at any evaluation so far),
    with ``any`` at the first one; an empty ``rules`` list runs to ``max_steps``. Both criteria are
    tracked for the summary's steps-to-unlearn whether or not they stop the run.
    """

    rules: list[Criterion] = Field(default_factory=lambda: [Criterion.EXPOSURE_BASELINE, Criterion.GENEX_ZERO])
    mode: Literal["all", "any"] = "all"
    exposure_tolerance: float = Field(
        0.0, ge=0, description="bits above the baseline still counted as unlearned (e.g. one standard error: 1.44/sqrt(n))"
    )
    exposure_baseline: float | Literal["theory", "expected", "unseen"] = Field(
        "theory", description="theory: log2 e; expected: exact finite-N mean; unseen: measured on the unseen canaries; a number"
    )


class UnlearnSpec(OptimSpec):
    """Gradient ascent (negated summed token cross-entropy, no retain term) on one forget group at a time.

    Any registered method works; methods that need retain data get batches of the base training pairs.
    """

    method: str = "gradient_ascent"
    reduction: Literal["mean", "sum"] = "sum"
    lr: float = Field(1e-4, gt=0)
    max_steps: int | None = Field(100, gt=0)
    batch_size: int = Field(32, ge=1)
    eval_every: int = Field(1, ge=1)
    batch_sizes: list[int] | None = Field(None, description="unlearn each group once per batch size (default: [batch_size])")
    stop: StopSpec = Field(default_factory=StopSpec)

    @model_validator(mode="after")
    def _check(self) -> "UnlearnSpec":
        if self.max_steps is None:
            raise ValueError("unlearn.max_steps is required")
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            raise ValueError("unlearn.batch_sizes: positive integers")
        return self

    def sizes(self) -> list[int]:
        """The batch sizes each group is unlearned with, the first one also for the buckets and the findings."""
        return list(self.batch_sizes or [self.batch_size])


class IdVsOodEvalSpec(Spec):
    """What is scored at each evaluation."""

    batch_size: int = Field(64, ge=1, description="scoring engine rows per forward pass")
    utility_size: int = Field(200, ge=1, description="test pairs scored for held-out loss at every evaluation")
    bleu_size: int = Field(64, ge=0, description="test pairs greedily translated for BLEU/exact match (0: none)")
    bleu_every: int = Field(1, ge=1, description="translate at every N-th evaluation (always first, last, at unlearning)")
    max_new_tokens: int = Field(48, ge=1)
    generate_batch_size: int = Field(32, ge=1)
    per_token_relative: bool = Field(True, description="relative exposure (a) ranks per-token log-perplexities")
    neighbors: int = Field(1, ge=0, description="nearest training items per unlearned item (0: no nearby analysis)")
    nearby_random: int = Field(64, ge=1, description="random training items and held-out items compared with the neighbours")
    similarity: Similarity = "char_tfidf"
    heldout_size: int = Field(100, ge=1, description="validation pairs kept as never-trained controls")
    on_overlong: Literal["error", "truncate"] = "error"
    exposure: Convention = Field(
        "forgetlab", description="rank exposure's convention: forgetlab log2(|R|+1), tf_privacy log2(|R|) (metrics.exposure)"
    )


class BucketSpec(Spec):
    """Unlearning per memorization / difficulty tercile of some groups (each tercile its own run)."""

    groups: list[str] = Field(default_factory=list, description="group names, e.g. id_x100")
    factors: list[Literal["memorization", "difficulty"]] = Field(default_factory=lambda: ["memorization", "difficulty"])


class AttackDataSpec(Spec):
    """What the relearn attack (``attacks``) trains on, drawn in the ``robustness/data`` stage apart from every
    item the run trains on or scores (forget groups, references, unseen canaries, stand-in spares, base, test
    and held-out pairs); and the bootstrap of the recovery intervals. For a canary group the ``disjoint`` data
    are the fresh canaries and the ``benign`` data the corpus pairs; for an ID group the other way round."""

    canaries: int = Field(
        32, ge=1, description="fresh canaries of the same format (never trained on, not references nor unseen "
        "controls): relearn data 'disjoint' for canary groups, 'benign' for ID groups",
    )
    pairs: int = Field(
        32, ge=1, description="corpus pairs no model trained on and no evaluation scores: relearn data 'disjoint' "
        "for ID groups, 'benign' for canary groups",
    )
    bootstrap: int = Field(1000, ge=1, description="paired bootstrap resamples of the recovery intervals")


class IdVsOodConfig(ExperimentConfig):
    """Study B (Baluta et al. 2024): train original/reference models with inserted forget sets, unlearn each
    group by gradient ascent."""

    experiment: Literal["id_vs_ood"] = "id_vs_ood"
    # the models: the small decoder trained from scratch, or a pretrained checkpoint fine-tuned
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(name=SCRATCH))
    scratch: ScratchSpec = Field(default_factory=ScratchSpec)
    # the data (data.py)
    corpus: CorpusSpec = Field(default_factory=CorpusSpec)
    train_size: int = Field(5000, ge=1, description="base training pairs (after the ID forget pool is taken out)")
    test_size: int = Field(200, ge=1, description="test pairs kept (utility is scored on the first eval.utility_size)")
    canaries: CanarySpec = Field(default_factory=CanarySpec)
    groups: GroupSpec = Field(default_factory=GroupSpec, description="forget groups: kinds (ood, id) x repetition counts")
    # training, unlearning, evaluating (run.py, stopping.py, evaluate.py, jobs.py)
    train: PretrainSpec = Field(default_factory=PretrainSpec)
    unlearn: UnlearnSpec = Field(default_factory=UnlearnSpec)
    eval: IdVsOodEvalSpec = Field(default_factory=IdVsOodEvalSpec)
    buckets: BucketSpec = Field(default_factory=BucketSpec)
    save_models: bool = Field(
        True, description="keep the original and reference weights (and, with attacks, each group's unlearned ones) "
        "in the run directory",
    )
    attacks: list[AttackSpec] = Field(
        default_factory=list, description="recovery attacks on each forget group's unlearned model, with the original "
        "and reference (never-learned control) models beside it (forgetlab.attacks: quantize, relearn, logit_lens)",
    )
    attack_data: AttackDataSpec = Field(default_factory=AttackDataSpec)

    @field_validator("model", mode="before")
    @classmethod
    def _model_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> "IdVsOodConfig":
        unknown = sorted(set(self.buckets.groups) - set(self.groups.names()))
        if unknown:
            raise ValueError(f"buckets.groups: {unknown} are not forget groups ({', '.join(self.groups.names())})")
        if self.eval.utility_size > self.test_size or self.eval.bleu_size > self.test_size:
            raise ValueError("eval.utility_size and eval.bleu_size must not exceed test_size")
        return self

    @property
    def from_scratch(self) -> bool:
        """Whether the models are the small decoder trained from scratch (with a BPE tokenizer learnt on the
        corpus), rather than a pretrained checkpoint fine-tuned."""
        return self.model.name == SCRATCH
