"""The generic unlearning workbench: any forget/retain sets, any registered method, the standard metrics.

``experiment: unlearn``. Stages (each saved when it finishes; a killed run resumes at the first
unfinished one, and inside the unlearning stage at its last checkpoint):

1. ``data``: (prompt, target) items from the configured ``sources`` — local files (jsonl/json/csv/
   tsv/parquet with ``prompt``/``target`` or ``text`` fields), inline lists, the Study B corpora
   (:mod:`forgetlab.data.corpus`), or Study A tasks (``load_task_docs`` + ``prepare_task``, gold
   continuation as target) — split into the ``forget``, ``holdout`` (never-trained non-members for
   membership inference), ``retain`` and ``utility`` sets. Sets that name the same source take
   disjoint, seeded slices of it, and no item text is ever in two sets;
2. ``learn`` (optional): fine-tune on forget ∪ retain first, so that the model knows what it must
   forget (TOFU-style); its weights are the "original" model of the next stage. Runs in the same
   runs directory that learn the same items with the same model, spec and seed share it
   (``learn.share``), so a sweep over methods learns once;
3. ``unlearn``: the method from the registry (``forget.method`` with ``forget.options``) in the one
   training loop (:func:`forgetlab.train.train_items`: retain batches and the frozen reference only for
   methods that need them; LoRA when ``model.lora`` is set), evaluated every ``forget.eval_every``
   steps: forget/holdout/retain/utility loss and token accuracy, extraction (exact memorization,
   verbatim and prefix match of greedy generation) on the forget set, and membership inference
   (LOSS, zlib, Min-K%, Min-K%++, reference ratio; AUC, TPR at 1 % / 0.1 % FPR, bootstrap CI) with
   forget = members and holdout = non-members. The best step by ``select`` (objective + constraints)
   is tracked and its trainable weights kept (``stages/unlearn/selected.safetensors``).

All per-token numbers come from the scoring engine (:meth:`forgetlab.scoring.Scorer.token_scores`,
lm-eval's tokenisation; sharded over processes); extraction generates greedily
(:func:`forgetlab.metrics.extraction.greedy_continuations`). Metric keys are ``<split>/<name>``: ``forget/loss``, ``utility/token_acc``, ``mia/min_k_pp_auc``,
``mia/loss_auc_gap`` ... (see :func:`metric_names`). AUC direction: see :mod:`forgetlab.metrics.mia`
(0.5 = indistinguishable, > 0.5 = forget items still look like members).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Sequence, Union

import numpy as np
import torch
from accelerate import Accelerator
from pydantic import Field, field_validator, model_validator
from safetensors.torch import load_file

from forgetlab.config import ExperimentConfig, OptimSpec, Spec
from forgetlab.experiments.base import EXPERIMENTS, Inputs
from forgetlab.methods import METHODS, Method
from forgetlab.methods.base import check_options
from forgetlab.metrics.extraction import exact_memorization, greedy_continuations, prefix_match, verbatim_match
from forgetlab.metrics.mia import ATTACKS, TPR_AT, attack_scores, evaluate_attacks, item_loss
from forgetlab.identity import RESULTS_VERSION
from forgetlab.models import ModelSpec, load_model, model_identity, weightless_model
from forgetlab.store import Run, atomic_write_json
from forgetlab.scoring import Scorer, TokenScores, encode_pair
from forgetlab.train import DivergenceError, EncodedItem, save_state, train_items, trainable_state

SET_ORDER = ("forget", "holdout", "retain", "utility")
SET_METRICS = ("loss", "token_acc", "n")
EXTRACTION_METRICS = ("verbatim", "prefix_match")
MIA_STATS = ("auc", "auc_gap", *TPR_AT, "auc_ci_low", "auc_ci_high")


# ============================================================================ configuration


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


SourceSpec = Annotated[Union[InlineSource, FileSource, CorpusSource, TaskSource], Field(discriminator="kind")]


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

    def named(self) -> dict[str, SetSpec]:
        return {name: getattr(self, name) for name in SET_ORDER if getattr(self, name) is not None}


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

    attacks: list[Literal["loss", "zlib", "min_k", "min_k_pp", "ref"]] = Field(default_factory=lambda: list(ATTACKS))
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

    objective: str = Field("mia/loss_auc_gap", description="a metric key, e.g. mia/min_k_pp_auc_gap or forget/loss")
    mode: Literal["min", "max"] = "min"
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
    cpu_threads: int | None = Field(None, ge=1, description="torch CPU threads for this run (None: torch's default)")

    @model_validator(mode="after")
    def _check(self) -> "UnlearnConfig":
        for name, spec in self.sets.named().items():
            if spec.source not in self.sources:
                known = ", ".join(self.sources) or "none"
                raise ValueError(f"sets.{name}.source: unknown source {spec.source!r}; sources: {known}")
        if self.learn is not None and self.learn.method != "finetune":
            raise ValueError("learn.method: the learning stage fine-tunes (method: finetune)")
        return self




# ============================================================================ data


@dataclass(frozen=True)
class Item:
    """One (prompt, target) item; ``item_id`` is unique within its source."""

    item_id: str
    prompt: str
    target: str

    def to_dict(self) -> dict[str, str]:
        return {"item_id": self.item_id, "prompt": self.prompt, "target": self.target}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Item":
        return cls(str(row["item_id"]), str(row["prompt"]), str(row["target"]))


def split_text(text: str, prompt_words: int) -> tuple[str, str] | None:
    """A text as (prompt, target): the first ``prompt_words`` words, then the rest with its leading space."""
    words = text.split()
    if prompt_words == 0:
        return ("", " ".join(words)) if words else None
    if len(words) <= prompt_words:
        return None
    return " ".join(words[:prompt_words]), " " + " ".join(words[prompt_words:])


def row_item(row: dict[str, Any], item_id: str, spec: InlineSource | FileSource, origin: str) -> Item | None:
    """An item from a row with prompt/target fields or a text field (None when too short to split)."""
    prompt_field = getattr(spec, "prompt_field", "prompt")
    target_field = getattr(spec, "target_field", "target")
    text_field = getattr(spec, "text_field", "text")
    if prompt_field in row and target_field in row:
        return Item(item_id, str(row[prompt_field]), str(row[target_field]))
    if text_field in row:
        pair = split_text(str(row[text_field]), spec.prompt_words)
        return Item(item_id, *pair) if pair else None
    raise ValueError(f"{origin}: expected fields {prompt_field!r} and {target_field!r}, or {text_field!r}; found {sorted(row)}")


def _inline_items(spec: InlineSource) -> list[Item | None]:
    rows = [{"text": r} if isinstance(r, str) else r for r in spec.items]
    return [row_item(r, f"inline-{i}", spec, f"inline item {i}") for i, r in enumerate(rows)]


def _file_items(spec: FileSource) -> list[Item | None]:
    from forgetlab.data.records import read_table_file

    return [row_item(rec.doc, f"row-{i}", spec, rec.origin) for i, rec in enumerate(read_table_file(spec.path))]


def _corpus_items(spec: CorpusSource) -> list[Item | None]:
    from forgetlab.data.corpus import CorpusSpec, load_corpus

    corpus = load_corpus(CorpusSpec.model_validate(spec.corpus))
    return [Item(p.pair_id, p.prompt, p.target) for p in corpus.split(spec.split)]


def _task_items(spec: TaskSource, need: int, seed: int) -> list[Item | None]:
    from forgetlab.data.prepare import prepare_task
    from forgetlab.data.tasks import load_task_docs

    docs = load_task_docs(spec.task, source=spec.source, data_root=spec.root, hub_path=spec.hub_path, files=spec.files)
    prepared = prepare_task(docs, finetune_size=need, forget_size=0, validation_size=0, test_size=0, seed=seed)
    return [Item(f"{spec.task}-{d.doc_id}", *d.request(d.gold)) for d in prepared.finetune]


def load_source(spec: SourceSpec, need: int, seed: int) -> list[Item]:
    """A source's usable items: non-empty targets, within ``max_chars``, first of each duplicate kept."""
    if isinstance(spec, InlineSource):
        raw = _inline_items(spec)
    elif isinstance(spec, FileSource):
        raw = _file_items(spec)
    elif isinstance(spec, CorpusSource):
        raw = _corpus_items(spec)
    else:
        raw = _task_items(spec, need, seed)
    seen: set[tuple[str, str]] = set()
    items = []
    for item in raw:
        if item is None or not item.target.strip() or (item.prompt, item.target) in seen:
            continue
        if spec.max_chars is not None and len(item.prompt) + len(item.target) > spec.max_chars:
            continue
        seen.add((item.prompt, item.target))
        items.append(item)
    return items


def build_sets(config: UnlearnConfig) -> dict[str, list[Item]]:
    """Seeded, disjoint slices of each source for the sets, in the order forget, holdout, retain, utility.

    No (prompt, target) text goes into two sets, even from different sources.
    """
    named = config.sets.named()
    needs: dict[str, int] = {}
    for spec in named.values():
        needs[spec.source] = needs.get(spec.source, 0) + spec.size
    pools = {}
    for name, need in needs.items():
        items = load_source(config.sources[name], need, config.seed)
        random.Random(f"unlearn:{config.seed}:{name}").shuffle(items)
        pools[name] = iter(items)
    used: set[str] = set()
    sets: dict[str, list[Item]] = {}
    for set_name, spec in named.items():
        taken: list[Item] = []
        for item in pools[spec.source]:
            key = " ".join((item.prompt + item.target).split())
            if key not in used:
                used.add(key)
                taken.append(item)
                if len(taken) == spec.size:
                    break
        if len(taken) < spec.size:
            raise ValueError(
                f"sets.{set_name}: source {spec.source!r} has only {len(taken)} unused items left, {spec.size} needed "
                f"(sets sharing a source take disjoint slices; together they need {needs[spec.source]})"
            )
        sets[set_name] = taken
    return sets


def encode_item(tokenizer: Any, item: Item, continuations: Sequence[str], gold: int, max_length: int) -> EncodedItem:
    """Token ids of the prompt followed by each continuation, tokenised like the scoring engine."""
    sequences, starts = [], []
    for continuation in continuations:
        ctx, cont = encode_pair(tokenizer, item.prompt, continuation)
        if len(ctx) + len(cont) > max_length:
            raise ValueError(f"item {item.item_id}: {len(ctx) + len(cont)} tokens, longer than the model's {max_length}")
        sequences.append(ctx + cont)
        starts.append(len(ctx))
    return EncodedItem(item.item_id, sequences, starts, gold)


def training_items(tokenizer: Any, items: Sequence[Item], method: Method | None, seed: int, max_length: int) -> list[EncodedItem]:
    """What a method trains on: its ``pair_targets`` (refusals, preference pairs); None: the targets themselves."""
    encoded = []
    for item in items:
        continuations, gold = method.pair_targets(item.item_id, item.target, seed) if method else ([item.target], 0)
        encoded.append(encode_item(tokenizer, item, continuations, gold, max_length))
    return encoded


def model_max_length(model: torch.nn.Module) -> int:
    config = getattr(model, "config", None)
    return int(getattr(config, "max_position_embeddings", 2048) or 2048)


def build_method(spec: ForgetMethodSpec) -> Method:
    """The configured method with its options (unknown options raise in the constructor)."""
    return METHODS.get(spec.method)(loss=spec.loss, reduction=spec.reduction, **spec.options)


# ============================================================================ metrics


def metric_names(config: UnlearnConfig) -> list[str]:
    """Every metric key an evaluation of this config records."""
    sets = config.sets.named()
    names = [f"{s}/{m}" for s in sets for m in SET_METRICS]
    if config.eval.extraction:
        names += [f"forget/{m}" for m in EXTRACTION_METRICS]
    if "holdout" in sets:
        attacks = [a for a in config.mia.attacks if a != "ref" or config.mia.reference != "none"]
        stats = [s for s in MIA_STATS if config.mia.bootstrap > 0 or not s.startswith("auc_ci")]
        names += [f"mia/{a}_{s}" for a in attacks for s in stats]
    return names


def set_metrics(stats: Sequence[TokenScores]) -> dict[str, float]:
    """Token-level loss (Σ NLL / Σ tokens), mean per-item greedy token accuracy, and the item count."""
    tokens = sum(len(s.logprobs) for s in stats)
    return {
        "loss": float(-sum(s.logprobs.sum() for s in stats) / tokens),
        "token_acc": float(exact_memorization([s.greedy for s in stats]).mean()),
        "n": float(len(stats)),
    }


@dataclass
class EvalSet:
    """An evaluation set: its items, encoded (one sequence each), and the target texts and tokens."""

    items: list[Item]
    encoded: list[EncodedItem]

    @property
    def texts(self) -> list[str]:
        return [item.target for item in self.items]

    @property
    def requests(self) -> list[tuple[str, str]]:
        return [(item.prompt, item.target) for item in self.items]

    def contexts(self) -> list[list[int]]:
        return [e.sequences[0][: e.answer_starts[0]] for e in self.encoded]

    def targets(self) -> list[list[int]]:
        return [e.sequences[0][e.answer_starts[0] :] for e in self.encoded]


class Selection:
    """Tracks the evaluations and the best selectable step; its state survives a resume (JSON file).

    On each evaluation, entries at or after the current step (left by an interrupted attempt that
    is now being replayed from a checkpoint) are dropped first.
    """

    def __init__(self, spec: SelectSpec, path: Path) -> None:
        self.spec, self.path = spec, path
        self.state: dict[str, Any] = {"history": [], "start": None, "start_losses": None, "reference_losses": None}
        if path.is_file():
            self.state = json.loads(path.read_text())

    @property
    def start(self) -> dict[str, float] | None:
        return self.state["start"]

    def best(self) -> dict[str, Any] | None:
        feasible = [h for h in self.state["history"] if h["feasible"]]
        if not feasible:
            return None
        sign = 1.0 if self.spec.mode == "min" else -1.0
        return min(feasible, key=lambda h: (sign * h["objective"], h["step"]))  # ties: the earliest step

    def record(self, step: int, metrics: dict[str, float]) -> bool:
        """Add one evaluation; True when it is the new best (its weights should be kept)."""
        history = [h for h in self.state["history"] if h["step"] < step]
        if step == 0 or self.state["start"] is None:
            self.state["start"] = dict(metrics)
        feasible = (step > 0 or self.spec.include_start) and all(
            c.satisfied(metrics[c.metric], self.state["start"][c.metric]) for c in self.spec.constraints
        )
        history.append({"step": step, "objective": metrics[self.spec.objective], "feasible": feasible, "metrics": metrics})
        self.state["history"] = history
        best = self.best()
        return best is not None and best["step"] == step

    def save(self) -> None:
        atomic_write_json(self.path, self.state)


class Evaluator:
    """The ``evaluate(step)`` callback of the unlearning stage: metrics rows, best-step weights."""

    def __init__(self, runner: "UnlearnRunner", sets: dict[str, EvalSet], selection: Selection, weights_dir: Path) -> None:
        self.runner, self.sets, self.selection, self.weights_dir = runner, sets, selection, weights_dir
        self.config = runner.config
        self.seconds = 0.0

    def __call__(self, step: int) -> list[dict[str, Any]]:
        started = time.perf_counter()
        model = self.runner.model
        was_training = model.training
        model.eval()
        try:
            metrics, examples = self.evaluate(step)
        finally:
            model.train(was_training)
        if self.selection.record(step, metrics):
            self._keep_weights(step)
        if self.runner.acc.is_main_process:
            self.selection.save()
        self.runner.acc.wait_for_everyone()
        self.seconds += time.perf_counter() - started
        rows = [self._row(step, key, value) for key, value in metrics.items()]
        return rows + [dict(e, kind="example") for e in examples]

    def evaluate(self, step: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Flat metrics ``{"<split>/<name>": value}`` and per-item rows of the current model."""
        stats = {name: self.runner.token_scores(s, name) for name, s in self.sets.items()}
        metrics: dict[str, float] = {}
        per_item: dict[str, dict[str, np.ndarray]] = {}
        for name, values in stats.items():
            values_of_set = set_metrics(values)
            if not math.isfinite(values_of_set["loss"]):
                raise DivergenceError(
                    f"unlearn ({self.config.forget.method}): the model diverged by step {step}: "
                    f"{name} loss is {values_of_set['loss']}; lower forget.lr"
                )
            metrics.update({f"{name}/{k}": v for k, v in values_of_set.items()})
            per_item[name] = {
                "loss": np.array([item_loss(s) for s in values]),
                "token_acc": exact_memorization([s.greedy for s in values]),
            }
        if self.config.eval.extraction:
            per_item["forget"].update(self._extraction())
            metrics.update({f"forget/{k}": float(per_item["forget"][k].mean()) for k in EXTRACTION_METRICS})
        if "holdout" in self.sets:
            if step == 0 or self.selection.state["start_losses"] is None:
                self.selection.state["start_losses"] = {s: per_item[s]["loss"].tolist() for s in ("forget", "holdout")}
            metrics.update(self._mia(stats, per_item))
        return metrics, self._examples(step, per_item)

    def _extraction(self) -> dict[str, np.ndarray]:
        forget = self.sets["forget"]
        targets = forget.targets()
        generated = self.runner.generate(forget.contexts(), [len(t) for t in targets])
        return {"verbatim": verbatim_match(generated, targets), "prefix_match": prefix_match(generated, targets)}

    def _reference_losses(self) -> dict[str, list[float]] | None:
        reference = self.config.mia.reference
        if reference == "none" or "ref" not in self.config.mia.attacks:
            return None
        if reference == "original":
            return self.selection.state["start_losses"]
        if self.selection.state["reference_losses"] is None:
            self.selection.state["reference_losses"] = self.runner.reference_model_losses(reference, self.sets)
        return self.selection.state["reference_losses"]

    def _mia(self, stats: dict[str, list[TokenScores]], per_item: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
        k, refs = self.config.mia.k, self._reference_losses()
        scores = {
            s: attack_scores(stats[s], self.sets[s].texts, k, refs[s] if refs else None) for s in ("forget", "holdout")
        }
        wanted = set(self.config.mia.attacks)
        for s in scores:
            scores[s] = {a: v for a, v in scores[s].items() if a in wanted}
            per_item[s].update({f"mia_{a}": v for a, v in scores[s].items()})
        results = evaluate_attacks(
            scores["forget"], scores["holdout"], n_resamples=self.config.mia.bootstrap, seed=self.config.seed
        )
        return {f"mia/{attack}_{stat}": value for attack, values in results.items() for stat, value in values.items()}

    def _examples(self, step: int, per_item: dict[str, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
        if not self.config.eval.examples:
            return []
        rows = []
        for name, columns in per_item.items():
            for i, item in enumerate(self.sets[name].items):
                row = {"stage": "unlearn", "step": step, "split": name, "item_id": item.item_id}
                row.update({key: float(values[i]) for key, values in columns.items()})
                rows.append(row)
        return rows

    def _keep_weights(self, step: int) -> None:
        """Save the current trainable weights as the selected ones (main process), drop the previous."""
        if self.runner.acc.is_main_process and self.config.save_models:
            self.weights_dir.mkdir(parents=True, exist_ok=True)
            path = self.weights_dir / f"selected-step{step}.safetensors"
            save_state(self.runner.weights_state(), path)
            for old in self.weights_dir.glob("selected-step*.safetensors"):
                if old != path:
                    old.unlink()
        self.runner.acc.wait_for_everyone()

    @staticmethod
    def _row(step: int, key: str, value: float) -> dict[str, Any]:
        split, metric = key.split("/", 1)
        return {"stage": "unlearn", "step": step, "split": split, "metric": metric, "value": value}


# ============================================================================ the recipe


class Unlearn:
    """The generic unlearning recipe."""

    config = UnlearnConfig

    def validate(self, config: UnlearnConfig) -> None:
        try:
            check_options(METHODS.get(config.forget.method), config.forget.options, "forget.options")
            method = build_method(config.forget)
        except KeyError as error:
            raise KeyError(f"forget.method: {error.args[0]}") from None
        except (ValueError, TypeError) as error:
            message = str(error)
            raise ValueError(message if message.startswith("forget.options") else f"forget.options: {message}") from None
        if method.needs_choices:
            raise ValueError(
                f"forget.method: {method.name} relabels multiple-choice items; this experiment trains on (prompt, target) items"
            )
        if method.needs_retain and config.sets.retain is None:
            raise ValueError(f"sets.retain: method {method.name} needs a retain set")
        _check_trainable(config, method)
        known = metric_names(config)
        for key in [config.select.objective, *(c.metric for c in config.select.constraints)]:
            if key not in known:
                raise ValueError(f"select: unknown metric {key!r}; this config records: {', '.join(known)}")

    def inputs(self, config: UnlearnConfig) -> Inputs:
        files = [path for source in config.sources.values() for path in source.input_files()]
        models = [config.model] + ([config.mia.reference] if isinstance(config.mia.reference, ModelSpec) else [])
        return Inputs(files=files, models=models)

    def run(self, config: UnlearnConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        threads = torch.get_num_threads()
        if config.cpu_threads:
            torch.set_num_threads(config.cpu_threads)
        try:
            return UnlearnRunner(config, run, accelerator).run()
        finally:
            torch.set_num_threads(threads)


EXPERIMENTS.register("unlearn")(Unlearn())


class UnlearnRunner:
    """The stages of one run, each skipped when the run directory already holds it."""

    def __init__(self, config: UnlearnConfig, run: Run, accelerator: Accelerator) -> None:
        self.config, self.run_, self.acc = config, run, accelerator
        self.model: torch.nn.Module | None = None
        self.tokenizer: Any = None
        self._saved_names: set[str] | None = None

    # --- orchestration -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        raw = self._stage("data", lambda: {name: [i.to_dict() for i in items] for name, items in build_sets(self.config).items()})
        sets = {name: [Item.from_dict(r) for r in rows] for name, rows in raw.items() if name in SET_ORDER}
        learn = self._stage("learn", lambda: self._learn(sets)) if self.config.learn is not None else None
        unlearn = self._stage("unlearn", lambda: self._unlearn(sets))
        if self.acc.is_main_process:
            self.run_.save_timings(timings(learn, unlearn))
        return summarize(self.config, self.run_.id, sets, learn, unlearn)

    def _stage(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self.acc.wait_for_everyone()
        payload = self.run_.stage(key)
        if payload is None:
            payload = compute()
            if self.acc.is_main_process:
                self.run_.save_stage(key, payload)
            self.acc.wait_for_everyone()
        return payload

    def _dir(self, name: str) -> Path:
        return self.run_.dir / "stages" / name

    # --- models ------------------------------------------------------------------------------------

    def _load(self, learned: bool) -> None:
        """The configured model (with LoRA if set), and the learned weights when there was a learning stage."""
        torch.manual_seed(self.config.seed)  # LoRA adapters are initialised from the global generator
        self.model, self.tokenizer = load_model(self.config.model)
        if learned:
            self.model.load_state_dict(load_file(str(self._dir("learn") / "learned.safetensors")), strict=False)

    def _save(self, path: Path) -> None:
        if self.acc.is_main_process:
            save_state(self.weights_state(), path)
        self.acc.wait_for_everyone()

    def weights_state(self) -> dict[str, torch.Tensor]:
        """The weights a stage keeps: every parameter the configured model trains (all, or the LoRA
        adapters), even those ``forget.trainable`` froze, so a kept file alone restores the model."""
        names = self._saved_names
        if names is None:
            return trainable_state(self.model)
        return {n: p.detach().contiguous().clone() for n, p in self.model.named_parameters() if n in names}

    def scorer(self, model: torch.nn.Module | None = None, tokenizer: Any = None) -> Scorer:
        """The scoring engine on the current model (or another), sharded over the processes, no progress bar."""
        return Scorer(
            model if model is not None else self.model, tokenizer if tokenizer is not None else self.tokenizer,
            batch_size=self.config.eval.batch_size, accelerator=self.acc, progress=False,
        )

    def token_scores(self, eval_set: EvalSet, name: str) -> list[TokenScores]:
        """Per-token statistics of each item's target (the scoring engine's ``token_scores``)."""
        names = [f"{name} item {item.item_id}" for item in eval_set.items]
        return self.scorer().token_scores(eval_set.requests, names=names, desc=name)

    def generate(self, contexts: list[list[int]], lengths: list[int]) -> list[list[int]]:
        """Greedy continuations, items sharded over the processes."""
        rank, world = self.acc.process_index, self.acc.num_processes
        mine = list(range(rank, len(contexts), world))
        out = greedy_continuations(
            self.model, [contexts[i] for i in mine], [lengths[i] for i in mine],
            pad_id=self.tokenizer.pad_token_id, batch_size=self.config.eval.batch_size,
        )
        found = dict(zip(mine, out))
        merged = _gathered(found) if world > 1 else found
        return [merged[i] for i in range(len(contexts))]

    def reference_model_losses(self, spec: ModelSpec, sets: dict[str, EvalSet]) -> dict[str, list[float]]:
        """Mean token NLL of the forget and holdout items under a separate reference model (its own tokenizer)."""
        model, tokenizer = load_model(spec)
        scorer = self.scorer(model, tokenizer)
        out = {}
        for name in ("forget", "holdout"):
            scores = scorer.loglikelihood(sets[name].requests, desc=f"reference model: {name}")
            out[name] = [-s.logprob / s.n_tokens for s in scores]
        del scorer, model
        return out

    # --- stages --------------------------------------------------------------------------------------

    def _learn(self, sets: dict[str, list[Item]]) -> dict[str, Any]:
        """Fine-tune on forget ∪ retain; keep the weights as the original model of the unlearning stage.

        With ``learn.share`` the weights and payload are also kept under ``<runs dir>/shared-learn/<key>``
        and reused by any later run whose key (model, learn spec, seed, forget ∪ retain items) matches.
        """
        spec = self.config.learn
        pool = sets["forget"] + sets.get("retain", [])
        key = learn_key(self.config, pool, self.acc.num_processes)
        shared = self.run_.dir.parent / "shared-learn" / key
        target = self._dir("learn") / "learned.safetensors"
        if spec.share and (shared / "payload.json").is_file():
            if self.acc.is_main_process:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shared / "learned.safetensors", target)
            self.acc.wait_for_everyone()
            return dict(json.loads((shared / "payload.json").read_text()), shared=key)
        self._load(learned=False)
        method = METHODS.get(spec.method)(loss=spec.loss, reduction=spec.reduction)
        items = training_items(self.tokenizer, pool, None, self.config.seed, model_max_length(self.model))
        started = time.perf_counter()
        result = train_items(
            self.model, items, method, spec, pad_id=self.tokenizer.pad_token_id, seed=self.config.seed,
            accelerator=self.acc, checkpoint_dir=self._dir("learn-checkpoint"), desc="learn",
        )
        self._save(target)
        rows = [_loss_row("learn", i + 1, loss) for i, loss in enumerate(result.losses)]
        seconds = time.perf_counter() - started
        payload = {"steps": result.steps, "items": len(items), "seconds": seconds, "metrics": rows, "key": key}
        if self.acc.is_main_process:
            shutil.rmtree(self._dir("learn-checkpoint"), ignore_errors=True)
            if spec.share:
                _publish(shared, target, payload)
        self.acc.wait_for_everyone()
        return payload

    def _unlearn(self, sets: dict[str, list[Item]]) -> dict[str, Any]:
        """Unlearn with the configured method, evaluating and selecting along the way."""
        self._load(learned=self.config.learn is not None)
        spec, seed = self.config.forget, self.config.seed
        method = build_method(spec)
        pattern, origin = trainable_pattern(spec, method, self.model)
        if pattern is not None:
            self._saved_names = set(trainable_state(self.model))
            _restrict_trainable(self.model, pattern, origin)
        max_length = model_max_length(self.model)
        forget_items = training_items(self.tokenizer, sets["forget"], method, seed, max_length)
        retain_items = training_items(self.tokenizer, sets["retain"], None, seed, max_length) if "retain" in sets else None
        eval_sets = {name: self._eval_set(items, max_length) for name, items in sets.items()}
        if "retain" in eval_sets and self.config.eval.retain_size is not None:
            eval_sets["retain"] = self._eval_set(sets["retain"][: self.config.eval.retain_size], max_length)
        selection = Selection(self.config.select, self._dir("unlearn") / "selection.json")
        evaluator = Evaluator(self, eval_sets, selection, self._dir("unlearn"))
        started = time.perf_counter()
        result = train_items(
            self.model, forget_items, method, spec, pad_id=self.tokenizer.pad_token_id, seed=seed, accelerator=self.acc,
            evaluate=evaluator, checkpoint_dir=self._dir("unlearn-checkpoint"), desc=f"unlearn ({method.name})",
            retain_items=retain_items,
        )
        seconds = time.perf_counter() - started
        if self.config.save_models:
            self._save(self._dir("unlearn") / "final.safetensors")
        if self.acc.is_main_process:
            shutil.rmtree(self._dir("unlearn-checkpoint"), ignore_errors=True)
        return self._unlearn_payload(method, result, selection, seconds, evaluator.seconds)

    def _eval_set(self, items: list[Item], max_length: int) -> EvalSet:
        return EvalSet(items, training_items(self.tokenizer, items, None, self.config.seed, max_length))

    def _unlearn_payload(
        self, method: Method, result: Any, selection: Selection, seconds: float, eval_seconds: float
    ) -> dict[str, Any]:
        metrics = [r for r in result.trajectory if r.get("kind") != "example"]
        examples = [{k: v for k, v in r.items() if k != "kind"} for r in result.trajectory if r.get("kind") == "example"]
        metrics += [_loss_row("unlearn", i + 1, loss) for i, loss in enumerate(result.losses)]
        best = selection.best()
        weights = self._dir("unlearn") / f"selected-step{best['step']}.safetensors" if best else None
        return {
            "steps": result.steps,
            "method": method.name,
            "needs_reference": method.needs_reference,
            "needs_retain": method.needs_retain,
            "seconds": seconds,
            "eval_seconds": eval_seconds,
            "history": [{k: h[k] for k in ("step", "objective", "feasible")} for h in selection.state["history"]],
            "start": selection.start,
            "final": selection.state["history"][-1]["metrics"] if selection.state["history"] else None,
            "selected": None if best is None else {k: best[k] for k in ("step", "objective", "metrics")},
            "selected_weights": str(weights.relative_to(self.run_.dir)) if weights is not None and weights.is_file() else None,
            "metrics": metrics,
            "examples": examples,
        }


def learn_key(config: UnlearnConfig, pool: Sequence[Item], world_size: int = 1) -> str:
    """What determines the learned weights (SHA-256): model (spec and identity), learning spec, seed, world
    size, the items learned and :data:`~forgetlab.identity.RESULTS_VERSION`."""
    canonical = json.dumps(
        {"model": config.model.model_dump(mode="json"), "model_identity": model_identity(config.model),
         "learn": config.learn.model_dump(mode="json", exclude={"share"}), "seed": config.seed, "world_size": world_size,
         "items": [i.to_dict() for i in pool], "results_version": RESULTS_VERSION},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def _publish(folder: Path, weights: Path, payload: dict[str, Any]) -> None:
    """Copy learned weights and their payload to a shared folder, atomically (rename of a staging folder)."""
    if folder.is_dir():
        return
    staging = folder.with_name(f".{folder.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(weights, staging / "learned.safetensors")
    (staging / "payload.json").write_text(json.dumps(payload))
    try:
        staging.rename(folder)
    except OSError:  # another run published the same key first
        shutil.rmtree(staging, ignore_errors=True)


def _gathered(found: dict[int, Any]) -> dict[int, Any]:
    """Every process's ``{index: value}`` shard, merged (on every process)."""
    from accelerate.utils import gather_object

    merged: dict[int, Any] = {}
    for part in gather_object([found]):
        merged.update(part)
    return merged


def trainable_pattern(spec: ForgetMethodSpec, method: Method, model: torch.nn.Module) -> tuple[str | None, str]:
    """The regex of the parameters to unlearn with (``forget.trainable`` if set, else the method's
    default; None: all) and where it came from, for error messages."""
    if spec.trainable is not None:
        return spec.trainable, "forget.trainable"
    return method.default_trainable(model), f"method {method.name}'s default trainable parameters (set forget.trainable)"


def _check_trainable(config: UnlearnConfig, method: Method) -> None:
    """Before a run opens: the parameters to unlearn with (``forget.trainable`` or the method's default)
    exist in the model (checked on a weightless copy)."""
    model = weightless_model(config.model)
    pattern, origin = trainable_pattern(config.forget, method, model)
    if pattern is None:
        return
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    if not any(re.search(pattern, name) for name in names):
        raise ValueError(f"{origin}: {pattern!r} matches no trainable parameter of {config.model.name} (e.g. {', '.join(names[:3])})")


def _restrict_trainable(model: torch.nn.Module, pattern: str, origin: str = "forget.trainable") -> None:
    """Freeze every trainable parameter whose name does not match ``pattern`` (at least one must match)."""
    regex = re.compile(pattern)
    kept = 0
    for name, param in model.named_parameters():
        if param.requires_grad and not regex.search(name):
            param.requires_grad_(False)
        kept += int(param.requires_grad)
    if kept == 0:
        raise ValueError(f"{origin}: {pattern!r} matches no trainable parameter")


def _loss_row(stage: str, step: int, loss: float) -> dict[str, Any]:
    return {"stage": stage, "step": step, "split": "train", "metric": "loss", "value": loss}


# ============================================================================ summary


HEADLINE = {
    "forget_loss": "forget/loss",
    "forget_token_acc": "forget/token_acc",
    "forget_verbatim": "forget/verbatim",
    "utility_loss": "utility/loss",
    "utility_token_acc": "utility/token_acc",
    "retain_loss": "retain/loss",
    "mia_loss_auc": "mia/loss_auc",
    "mia_min_k_pp_auc": "mia/min_k_pp_auc",
}


def headline(metrics: dict[str, float] | None) -> dict[str, float] | None:
    """The few numbers of a results table, from one evaluation's flat metrics (keys that exist)."""
    if metrics is None:
        return None
    return {short: metrics[key] for short, key in HEADLINE.items() if key in metrics}


def timings(learn: dict[str, Any] | None, unlearn: dict[str, Any]) -> dict[str, float]:
    """Wall-clock seconds of the stages as they ran (``timings.json``; a resumed stage counts its last attempt)."""
    return {
        "learn": learn["seconds"] if learn else 0.0,
        "unlearn": unlearn["seconds"],
        "unlearn_eval": unlearn["eval_seconds"],
        "unlearn_train": unlearn["seconds"] - unlearn["eval_seconds"],
    }


def summarize(config: UnlearnConfig, run_id: str, sets: dict[str, list[Item]], learn: dict[str, Any] | None,
              unlearn: dict[str, Any]) -> dict[str, Any]:
    """``summary.json``: the method, sizes, and the metrics at the start, the end and the selected step (no timings:
    identical runs give byte-identical summaries)."""
    selected = unlearn["selected"]
    return {
        "experiment": config.experiment,
        "run": run_id,
        "model": config.model.name,
        "lora": config.model.lora is not None,
        "method": config.forget.method,
        "options": config.forget.options,
        "sizes": {name: len(items) for name, items in sets.items()},
        "learn_steps": learn["steps"] if learn else 0,
        "steps": unlearn["steps"],
        "selection": {
            "objective": config.select.objective,
            "mode": config.select.mode,
            "constraints": [c.model_dump(exclude_none=True) for c in config.select.constraints],
            "history": unlearn["history"],
            "weights": unlearn["selected_weights"],
        },
        "selected_step": selected["step"] if selected else None,
        "start": headline(unlearn["start"]),
        "final": headline(unlearn["final"]),
        "selected": headline(selected["metrics"]) if selected else None,
        "metrics": {"start": unlearn["start"], "final": unlearn["final"], "selected": selected["metrics"] if selected else None},
    }
