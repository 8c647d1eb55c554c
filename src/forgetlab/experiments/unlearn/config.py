"""The configuration of an ``unlearn`` run: its sources, sets, optional learning stage, method, evaluation and
best-step selection (:class:`UnlearnConfig`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from forgetlab.attacks import AttackSpec
from forgetlab.config import ExperimentConfig, OptimSpec, Spec
from forgetlab.methods import METHODS
from forgetlab.metrics.mia import MIA_ATTACKS
from forgetlab.models import ModelSpec

SET_ORDER = ("forget", "holdout", "retain", "utility")  # the sets evaluated during unlearning
ATTACK_SETS = ("relearn", "benign")  # items only recovery attacks train on (relearning), never evaluated

class _Source(Spec):
    """Common source options."""

    max_chars: int | None = Field(None, ge=1, description="drop items whose prompt + target is longer")

    def input_files(self) -> list[Path]:
        """The local files this source reads (part of a run's identity)."""
        return []


class InlineSource(_Source):
    """Items written in the config: strings (texts) or ``{prompt, target}`` / ``{text}`` mappings."""

    kind: Literal["inline"]
    items: list[Union[str, dict[str, str]]]
    prompt_words: int = Field(0, ge=0, description="texts: the first N words become the prompt, the rest the target")


class FileSource(_Source):
    """A jsonl/json/csv/tsv/parquet file whose rows have prompt/target fields or a text field."""

    kind: Literal["file"]
    path: str
    prompt_field: str = "prompt"
    target_field: str = "target"
    text_field: str = "text"
    prompt_words: int = Field(0, ge=0, description="texts: the first N words become the prompt, the rest the target")

    def input_files(self) -> list[Path]:
        return [Path(self.path)]


class CorpusSource(_Source):
    """A split of a Study B corpus (:mod:`forgetlab.data.corpus`): ``corpus`` is its CorpusSpec."""

    kind: Literal["corpus"]
    corpus: dict[str, Any] = Field(default_factory=dict)
    split: Literal["train", "validation", "test"] = "train"

    def input_files(self) -> list[Path]:
        from forgetlab.data.corpus import CorpusSpec, corpus_input_files

        return corpus_input_files(CorpusSpec.model_validate(self.corpus))


class TaskSource(_Source):
    """A Study A task's items (cleaned and binarized by ``prepare_task``), the gold continuation as target."""

    kind: Literal["task"]
    task: str
    source: Literal["auto", "local", "hub", "files", "synthetic"] = "auto"
    root: str | None = None
    hub_path: str | None = None
    files: dict[str, str] | None = None

    def input_files(self) -> list[Path]:
        from forgetlab.data.tasks import task_input_files

        return task_input_files(self.task, source=self.source, data_root=self.root, files=self.files)


class TofuSource(_Source):
    """A TOFU config's question-answer pairs as ``("Question: {q}\nAnswer:", " {a}")`` (e.g. forget01 to forget,
    holdout01 as never-trained non-members, retain90 to keep)."""

    kind: Literal["tofu"]
    config: str = "forget01"
    source: Literal["auto", "local", "hub"] = "auto"
    root: str | None = None
    hub_path: str = "locuslab/TOFU"

    @field_validator("config")
    @classmethod
    def _known(cls, value: str) -> str:
        from forgetlab.data.tofu import TOFU_CONFIGS

        if value not in TOFU_CONFIGS:
            raise ValueError(f"unknown TOFU config {value!r}; known: {', '.join(TOFU_CONFIGS)}")
        return value

    def input_files(self) -> list[Path]:
        from forgetlab.data.tofu import tofu_input_files

        return tofu_input_files(self.config, self.source, self.root)


class MuseSource(_Source):
    """A MUSE split: KnowMem pairs as ``("Question: {q}\nAnswer:", " {a}")``, VerbMem ``(prompt, gt)``, privleak or raw
    texts whole or cut into ``chunk_words``-word pieces (empty prompt)."""

    kind: Literal["muse"]
    corpus: Literal["news", "books"] = "news"
    subset: Literal["knowmem", "verbmem", "privleak", "raw"] = "raw"
    split: str = "forget"
    chunk_words: int | None = Field(None, ge=1, description="texts: pieces of this many words (None: whole texts)")
    source: Literal["auto", "local", "hub"] = "auto"
    root: str | None = None

    @model_validator(mode="after")
    def _known(self) -> "MuseSource":
        from forgetlab.data.muse import MUSE_SPLITS

        if self.split not in MUSE_SPLITS[self.subset]:
            raise ValueError(f"split: MUSE {self.subset} has {', '.join(MUSE_SPLITS[self.subset])}, not {self.split!r}")
        return self

    def input_files(self) -> list[Path]:
        from forgetlab.data.muse import muse_input_files

        return muse_input_files(self.corpus, self.subset, self.split, self.source, self.root)


SourceSpec = Annotated[Union[InlineSource, FileSource, CorpusSource, TaskSource, TofuSource, MuseSource], Field(discriminator="kind")]


class SetSpec(Spec):
    """One set of the run: ``size`` items from the named source."""

    source: str
    size: int = Field(ge=1)


class SetsSpec(Spec):
    """The sets: forget (members), holdout (non-members), retain (kept while forgetting), utility (held out)."""

    forget: SetSpec
    holdout: SetSpec | None = None
    retain: SetSpec | None = None
    utility: SetSpec | None = None
    relearn: SetSpec | None = Field(None, description="other items of the forgotten kind, for the relearn attack (data: disjoint)")
    benign: SetSpec | None = Field(None, description="unrelated text, for the relearn attack (data: benign)")

    def named(self) -> dict[str, SetSpec]:
        """The evaluated sets, in order."""
        return {name: getattr(self, name) for name in SET_ORDER if getattr(self, name) is not None}

    def drawn(self) -> dict[str, SetSpec]:
        """Every set drawn from the sources: the evaluated ones first, then the attacks' (disjoint from all)."""
        return {name: getattr(self, name) for name in (*SET_ORDER, *ATTACK_SETS) if getattr(self, name) is not None}


class LearnSpec(OptimSpec):
    """Optional fine-tuning on forget ∪ retain before unlearning (the model must know what it forgets)."""

    method: str = "finetune"
    lr: float = Field(1e-4, gt=0)
    epochs: float = Field(3.0, gt=0)
    share: bool = Field(
        True, description="reuse the learned weights of an earlier run in the same runs directory with the same "
        "model, learning spec, seed and forget/retain items (a sweep over methods learns once)",
    )


class ForgetMethodSpec(OptimSpec):
    """The unlearning stage: a registered method, its options, and the optimiser."""

    method: str = "gradient_ascent"
    options: dict[str, Any] = Field(default_factory=dict, description="passed to the method's constructor")
    lr: float = Field(1e-5, gt=0)
    max_steps: int | None = Field(10, gt=0)
    eval_every: int = Field(5, ge=1, description="evaluate every N optimizer steps (and before and after)")
    trainable: str | None = Field(
        None, description="regex: train only parameters whose name matches (default: the method's own choice — "
        "every parameter, or for RMU the mlp.down_proj weights of layers ℓ−2..ℓ)",
    )

    @field_validator("trainable")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _pairwise_default(cls, data: Any) -> Any:
        """Methods that compare two continuations per item collate both (``loss: choice``) unless told otherwise."""
        if isinstance(data, dict) and "loss" not in data:
            method = data.get("method", "gradient_ascent")
            if method in METHODS and METHODS.get(method).pairwise:
                data = dict(data, loss="choice")
        return data


class MIASpec(Spec):
    """Membership-inference attacks (forget = members, holdout = non-members)."""

    attacks: list[Literal["loss", "zlib", "min_k", "min_k_pp", "ref"]] = Field(default_factory=lambda: list(MIA_ATTACKS))
    k: float = Field(0.2, gt=0, le=1, description="Min-K% / Min-K%++: fraction of lowest-scoring tokens")
    reference: Union[Literal["original", "none"], ModelSpec] = Field(
        "original", description="ref attack: 'original' (the model before unlearning), a model spec, or none"
    )
    bootstrap: int = Field(1000, ge=0, description="stratified bootstrap resamples for the AUC interval (0: none)")


class UnlearnEvalSpec(Spec):
    """What each evaluation computes."""

    batch_size: int = Field(16, ge=1)
    retain_size: int | None = Field(32, ge=1, description="retain items scored at each evaluation (None: all)")
    extraction: bool = Field(True, description="greedy generation on the forget set (verbatim / prefix match)")
    examples: bool = Field(True, description="record per-item rows in examples.jsonl at every evaluation")


class Constraint(Spec):
    """A bound on a metric for a step to be selectable; ``*_rel`` bounds are multiples of the start value."""

    metric: str
    min: float | None = None
    max: float | None = None
    min_rel: float | None = None
    max_rel: float | None = None

    def satisfied(self, value: float, start: float) -> bool:
        checks = (
            self.min is None or value >= self.min,
            self.max is None or value <= self.max,
            self.min_rel is None or value >= self.min_rel * start,
            self.max_rel is None or value <= self.max_rel * start,
        )
        return all(checks)


class SelectSpec(Spec):
    """Best-checkpoint selection over the evaluated steps."""

    objective: str = Field(
        "mia/loss_auc_gap", description="a metric key, e.g. mia/min_k_pp_auc_gap or forget/loss; which way is better "
        "comes from the metric registry (forgetlab.metrics.registry) and the set's role, never from the recipe",
    )
    constraints: list[Constraint] = Field(default_factory=list)
    include_start: bool = Field(False, description="the model before unlearning (step 0) may be selected")


class UnlearnConfig(ExperimentConfig):
    """A generic unlearning run: sources, sets, optional learning stage, method, evaluation, selection."""

    experiment: Literal["unlearn"] = "unlearn"
    sources: dict[str, SourceSpec]
    sets: SetsSpec
    learn: LearnSpec | None = None
    forget: ForgetMethodSpec = Field(default_factory=ForgetMethodSpec)
    eval: UnlearnEvalSpec = Field(default_factory=UnlearnEvalSpec)
    mia: MIASpec = Field(default_factory=MIASpec)
    select: SelectSpec = Field(default_factory=SelectSpec)
    save_models: bool = Field(True, description="keep the learned, selected and final weights in the run directory")
    attacks: list[AttackSpec] = Field(
        default_factory=list, description="recovery attacks on the selected model, with the original and control models "
        "beside it (forgetlab.attacks: quantize, relearn, logit_lens)",
    )

    @model_validator(mode="after")
    def _check(self) -> "UnlearnConfig":
        for name, spec in self.sets.drawn().items():
            if spec.source not in self.sources:
                known = ", ".join(self.sources) or "none"
                raise ValueError(f"sets.{name}.source: unknown source {spec.source!r}; sources: {known}")
        if self.learn is not None and self.learn.method != "finetune":
            raise ValueError("learn.method: the learning stage fine-tunes (method: finetune)")
        return self
