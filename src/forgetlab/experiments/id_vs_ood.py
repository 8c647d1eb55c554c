"""Study B: unlearning in- vs out-of-distribution data with gradient ascent, scored by exposure.

Baluta, Lamblin, Tarlow, Pedregosa & Dziugaite, "Unlearning in- vs. out-of-distribution data in LLMs
under gradient-based methods" (arXiv 2411.04388). The recipe, stage by stage (each stage is saved when
it finishes, so a killed run resumes at the first unfinished one):

1. ``data``: the (prompt, target) corpus (translation German→English by default), the base training
   subset, in-distribution (ID) forget groups (held-out corpus pairs) and out-of-distribution (OOD)
   canary groups, one per repetition count, the never-inserted reference secrets, unseen control
   canaries, a test subset (utility) and held-out controls (nearby examples);
2. ``tokenizer`` (``model.name: scratch`` only): a byte-level BPE tokenizer trained on the base corpus;
3. ``train/original`` and ``train/reference``: the same code path (:func:`forgetlab.train.train_items`,
   same initialisation) on the seeded training stream with the forget groups inserted, and on the
   identical stream with every forget item replaced by a fresh stand-in (``train.reference: replace``,
   same steps and schedule; see :mod:`forgetlab.data.canaries`) or removed (``remove``);
4. ``baseline``: both models scored — exposure per canary group, generalized exposure, memorization and
   difficulty per item, the unseen canaries' exposure (≈ log2 e), utility;
5. ``unlearn/<group>``: for each forget group (and batch size), from the original weights, gradient
   ascent through the method registry, evaluated every ``unlearn.eval_every`` steps (exposure,
   generalized exposure, both relative exposures, held-out loss, BLEU, exact match), stopped by the
   configured rules; nearby-example effects at the end; a diverged run (NaN/inf) is reported as
   such and none of its numbers are recorded;
6. ``unlearn/<group>/<factor>_<bucket>``: the same on each memorization/difficulty tercile of the
   groups named in ``buckets.groups``;
7. ``summary.json`` (per group: steps until unlearned, utility at that point, exposure and generalized
   exposure before and after, findings; :mod:`forgetlab.experiments.study_b_summary`) and plots;
   wall-clock seconds go to ``timings.json`` so that identical runs write byte-identical summaries.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from pydantic import Field, field_validator, model_validator
from safetensors.torch import load_file

from forgetlab.config import ExperimentConfig, OptimSpec, Spec
from forgetlab.data.canaries import (
    CanarySpec,
    ForgetGroup,
    GroupSpec,
    StreamEntry,
    make_canaries,
    make_id_groups,
    reference_stream,
    stand_in_map,
    training_stream,
)
from forgetlab.data.corpus import CORPORA, CorpusSpec, Pair, corpus_input_files, load_corpus
from forgetlab.experiments.base import EXPERIMENTS, Inputs
from forgetlab.experiments.study_b_summary import bucket_order, item_factors, summarize
from forgetlab.methods import METHODS
from forgetlab.metrics.exposure import (
    LOG2_E,
    Convention,
    describe,
    expected_unseen_exposure,
    exposure_rank,
    fit_skewnorm,
    generalized_exposure,
    relative_exposure_change,
    relative_exposure_rank,
)
from forgetlab.metrics.memorization import Similarity, nearest_neighbors
from forgetlab.metrics.utility import greedy_generate, heldout_loss_from, translation_quality
from forgetlab.models import ModelSpec, load_model
from forgetlab.scoring import Scorer, encode_pair
from forgetlab.scratch_model import (
    ScratchSpec,
    build_scratch_model,
    load_tokenizer,
    parameter_count,
    save_tokenizer,
    train_bpe_tokenizer,
)
from forgetlab.store import Run
from forgetlab.train import DivergenceError, EncodedItem, save_state, train_items, trainable_state

StopRule = Literal["exposure_baseline", "genex_zero"]
SCRATCH = "scratch"
SPARES_PER_ITEM = 32  # candidates per forget item among which its stand-in in the reference stream is chosen


# ============================================================================ configuration


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

    rules: list[StopRule] = Field(default_factory=lambda: ["exposure_baseline", "genex_zero"])
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
        return list(self.batch_sizes or [self.batch_size])


class StudyBEvalSpec(Spec):
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


class IdVsOodConfig(ExperimentConfig):
    """Study B: train original/reference models with inserted forget sets, unlearn each group by gradient ascent."""

    experiment: Literal["id_vs_ood"] = "id_vs_ood"
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(name=SCRATCH))
    scratch: ScratchSpec = Field(default_factory=ScratchSpec)
    corpus: CorpusSpec = Field(default_factory=CorpusSpec)
    train_size: int = Field(5000, ge=1, description="base training pairs (after the ID forget pool is taken out)")
    test_size: int = Field(200, ge=1, description="test pairs kept (utility is scored on the first eval.utility_size)")
    canaries: CanarySpec = Field(default_factory=CanarySpec)
    groups: GroupSpec = Field(default_factory=GroupSpec)
    train: PretrainSpec = Field(default_factory=PretrainSpec)
    unlearn: UnlearnSpec = Field(default_factory=UnlearnSpec)
    eval: StudyBEvalSpec = Field(default_factory=StudyBEvalSpec)
    buckets: BucketSpec = Field(default_factory=BucketSpec)
    cpu_threads: int | None = Field(None, ge=1, description="torch CPU threads for this run (None: torch's default)")
    save_models: bool = Field(True, description="keep the original and reference weights in the run directory")

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




# ============================================================================ data


@dataclass
class StudyData:
    """Everything the run trains on and scores, as saved in the ``data`` stage."""

    base: list[Pair]
    groups: list[ForgetGroup]
    references: list[Pair]
    unseen: list[Pair]
    test: list[Pair]
    heldout: list[Pair]
    dropped: dict[str, int] = field(default_factory=dict)
    spares: dict[str, list[Pair]] = field(default_factory=dict)

    def group(self, name: str) -> ForgetGroup:
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(f"no forget group {name!r}")

    def to_dict(self) -> dict[str, Any]:
        pairs = lambda ps: [p.to_dict() for p in ps]  # noqa: E731
        return {
            "base": pairs(self.base), "groups": [g.to_dict() for g in self.groups], "references": pairs(self.references),
            "unseen": pairs(self.unseen), "test": pairs(self.test), "heldout": pairs(self.heldout), "dropped": self.dropped,
            "spares": {kind: pairs(ps) for kind, ps in self.spares.items()},
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "StudyData":
        pairs = lambda key: [Pair.from_dict(p) for p in row[key]]  # noqa: E731
        return cls(
            pairs("base"), [ForgetGroup.from_dict(g) for g in row["groups"]], pairs("references"), pairs("unseen"),
            pairs("test"), pairs("heldout"), dict(row.get("dropped", {})),
            {kind: [Pair.from_dict(p) for p in ps] for kind, ps in row.get("spares", {}).items()},
        )


def build_data(config: IdVsOodConfig) -> StudyData:
    """Seeded corpus subsets, ID groups (held-out train pairs), canaries and the reference model's spares.

    The training split is shuffled once and cut into the ID forget pool, the base training set and
    (``train.reference: replace``) up to ``SPARES_PER_ITEM`` spare pairs per ID forget item; as many
    spare canaries per canary are fresh secrets. The training stage picks each forget item's stand-in
    among them by token counts. The base set, groups, references and test/held-out pairs do not
    depend on ``train.reference``.
    """
    corpus = load_corpus(config.corpus)
    rng = random.Random(f"study_b:{config.seed}")
    spec, replace = config.groups, config.train.reference == "replace"
    train = corpus.split("train")[:]
    rng.shuffle(train)
    n_id = spec.per_group * len(spec.repetitions) if "id" in spec.kinds else 0
    n_spare = n_id if replace else 0  # the least that works: one stand-in per item
    if len(train) < n_id + config.train_size + n_spare:
        raise ValueError(
            f"corpus {corpus.name!r}: {len(train)} training pairs after cleaning, {n_id} (ID forget sets) + "
            f"{config.train_size} (train_size) + {n_spare} (ID stand-ins for the reference model) needed"
        )
    groups: list[ForgetGroup] = []
    reps = spec.repetitions if "ood" in spec.kinds else []
    n_spares = SPARES_PER_ITEM * len(reps) * spec.per_group if replace else 0
    canaries = make_canaries(config.canaries, reps, spec.per_group, config.seed, n_spares=n_spares)
    for kind in spec.kinds:
        groups.extend(canaries.groups if kind == "ood" else make_id_groups(train[:n_id], spec.repetitions, spec.per_group))
    start = n_id + config.train_size
    spares = {"ood": canaries.spares, "id": train[start : start + SPARES_PER_ITEM * n_id]} if replace else {}
    return StudyData(
        base=train[n_id : n_id + config.train_size],
        groups=groups,
        references=canaries.references,
        unseen=canaries.unseen,
        test=_sample(corpus.split("test"), config.test_size, rng, "test"),
        heldout=_sample(corpus.split("validation"), config.eval.heldout_size, rng, "validation"),
        dropped=corpus.dropped,
        spares=spares,
    )


def _sample(pairs: Sequence[Pair], n: int, rng: random.Random, split: str) -> list[Pair]:
    if len(pairs) < n:
        raise ValueError(f"the corpus {split} split has {len(pairs)} pairs after cleaning, {n} needed")
    return rng.sample(list(pairs), n)


def encode_pairs(tokenizer: Any, pairs: Sequence[Pair], max_length: int, eos: bool) -> list[EncodedItem]:
    """(prompt, target) pairs as training items, tokenised exactly like the scoring engine (+ EOS if asked)."""
    cache: dict[str, EncodedItem] = {}
    items = []
    for pair in pairs:
        if pair.pair_id not in cache:
            ctx, cont = encode_pair(tokenizer, pair.prompt, pair.target)
            seq = ctx + cont + ([tokenizer.eos_token_id] if eos else [])
            if len(seq) > max_length:
                raise ValueError(f"pair {pair.pair_id}: {len(seq)} tokens, longer than the model's {max_length}")
            cache[pair.pair_id] = EncodedItem(pair.pair_id, [seq], [len(ctx)], 0)
        items.append(cache[pair.pair_id])
    return items


def stream_tokens(items: Sequence[EncodedItem]) -> dict[str, int]:
    """Tokens of a training stream: whole sequences, and the trained-on targets (after the prompt, EOS included)."""
    return {
        "tokens": sum(len(item.sequences[0]) for item in items),
        "target_tokens": sum(len(item.sequences[0]) - item.answer_starts[0] for item in items),
    }


# ============================================================================ stopping rules


class StopUnlearning(Exception):
    """Raised from the evaluation callback when a stopping rule fires (caught by the runner)."""


@dataclass
class StopRules:
    """Tracks when each unlearning criterion is first met, and whether the enabled ones say stop.

    ``exposure_baseline`` applies to OOD groups only (mean exposure <= ``baseline + tolerance``);
    ``genex_zero`` to every group (mean generalized exposure <= 0).
    """

    kind: str
    enabled: Sequence[str]
    baseline: float
    mode: str = "all"
    tolerance: float = 0.0
    first: dict[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.first = {rule: None for rule in self.applicable()}

    def applicable(self) -> list[str]:
        return ["exposure_baseline", "genex_zero"] if self.kind == "ood" else ["genex_zero"]

    @property
    def primary(self) -> str:
        """The criterion behind "steps until unlearned": exposure for canaries, GenEx otherwise."""
        return "exposure_baseline" if self.kind == "ood" else "genex_zero"

    def met(self, rule: str, values: dict[str, float]) -> bool:
        if rule == "exposure_baseline":
            return values["exposure_mean"] <= self.baseline + self.tolerance
        return values["genex_mean"] <= 0.0

    def update(self, step: int, values: dict[str, float]) -> list[str]:
        """Record the rules first met at ``step``; returns them."""
        newly = [r for r in self.applicable() if self.first[r] is None and self.met(r, values)]
        for rule in newly:
            self.first[rule] = step
        return newly

    @property
    def should_stop(self) -> bool:
        active = [self.first[rule] is not None for rule in self.enabled if rule in self.first]
        if not active:
            return False
        return all(active) if self.mode == "all" else any(active)


# ============================================================================ evaluation during unlearning


@dataclass
class Job:
    """One unlearning run: a forget group (or one tercile of it) at one batch size."""

    key: str
    group: str
    kind: str
    repetitions: int
    batch_size: int
    items: list[Pair]
    ll_original: np.ndarray
    ll_reference: np.ndarray
    bucket: str | None = None


def score_pairs(scorer: Scorer, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """Summed log-likelihood and target token count of each pair; NaN/inf is a divergence."""
    scored = scorer.loglikelihood([p.request() for p in pairs], names=[p.pair_id for p in pairs])
    ll = np.array([s.logprob for s in scored], dtype=np.float64)
    if not np.all(np.isfinite(ll)):
        raise DivergenceError(f"log-likelihood became NaN/inf for {int((~np.isfinite(ll)).sum())} item(s)")
    return ll, np.array([s.n_tokens for s in scored], dtype=np.float64)


def forget_values(
    job: Job, ll: np.ndarray, n: np.ndarray, refs: tuple[np.ndarray, np.ndarray] | None,
    test: tuple[np.ndarray, np.ndarray], per_token: bool, convention: Convention = "forgetlab",
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Group-level values and per-item arrays of one evaluation (exposure only with references).

    ``refs`` and ``test`` are (log-likelihoods, target token counts) under the current model. Relative
    exposure (a) ranks the items among ``refs`` when given (canaries), else among ``test`` (ID items),
    by log-perplexity per target token (``per_token``) or summed.
    """
    genex = generalized_exposure(ll, job.ll_reference)
    per_item = {"ll": ll, "genex": genex, "relexp_change": relative_exposure_change(ll, job.ll_original)}
    values = {"loss": float(-ll.mean()), **describe(genex, "genex_")}
    values["relexp_change_mean"] = float(per_item["relexp_change"].mean())
    pool_ll, pool_n = refs if refs is not None else test
    item_ppl, pool_ppl = (-ll / n, -pool_ll / pool_n) if per_token else (-ll, -pool_ll)
    per_item["relexp_rank"] = relative_exposure_rank(item_ppl, pool_ppl, convention)
    values["relexp_rank_mean"] = float(per_item["relexp_rank"].mean())
    if refs is not None:
        per_item["exposure"] = exposure_rank(-ll, -refs[0], convention)
        values.update(describe(per_item["exposure"], "exposure_"))
        try:
            per_item["exposure_extrapolated"] = fit_skewnorm(-refs[0]).exposure(-ll)
            values["exposure_extrapolated_mean"] = float(per_item["exposure_extrapolated"].mean())
        except ValueError:  # references collapsed to one value: no distribution to fit, rank exposure only
            pass
    return values, per_item


class GroupEvaluator:
    """The ``evaluate(step)`` callback of one unlearning run; keeps its own rows and raises :class:`StopUnlearning`."""

    def __init__(self, runner: "StudyBRunner", job: Job, stop: StopRules, max_steps: int) -> None:
        self.runner, self.job, self.stop, self.max_steps = runner, job, stop, max_steps
        self.rows: list[dict[str, Any]] = []
        self.history: list[tuple[int, dict[str, float], dict[str, float]]] = []
        self.per_item: dict[str, np.ndarray] = {}
        self.samples: list[dict[str, Any]] = []
        self.n_evals = 0

    def __call__(self, step: int) -> list[dict[str, Any]]:
        runner, cfg = self.runner, self.runner.config.eval
        scorer = runner.scorer()
        ll, n = score_pairs(scorer, self.job.items)
        refs = score_pairs(scorer, runner.data.references) if self.job.kind == "ood" else None
        test = score_pairs(scorer, runner.data.test[: cfg.utility_size])
        forget, self.per_item = forget_values(self.job, ll, n, refs, test, cfg.per_token_relative, cfg.exposure)
        newly = self.stop.update(step, forget)
        stopping = self.stop.should_stop or step >= self.max_steps
        utility = heldout_loss_values(test)
        if self._translate_now(step, newly, stopping):
            utility.update(runner.translation(self.samples, step, self.job.key))
        self._record(step, forget, utility)
        self.n_evals += 1
        if self.stop.should_stop:
            raise StopUnlearning(step)
        return []

    def _translate_now(self, step: int, newly: list[str], stopping: bool) -> bool:
        if self.runner.config.eval.bleu_size == 0:
            return False
        regular = self.n_evals % self.runner.config.eval.bleu_every == 0
        return regular or stopping or self.stop.primary in newly or step == 0

    def _record(self, step: int, forget: dict[str, float], utility: dict[str, float]) -> None:
        self.history.append((step, forget, utility))
        base = {"task": self.job.key, "group": self.job.group, "kind": self.job.kind, "stage": "unlearn", "step": step}
        self.rows.extend(dict(base, split="forget", metric=k, value=v) for k, v in forget.items())
        self.rows.extend(dict(base, split="test", metric=k, value=v) for k, v in utility.items())

    @property
    def last_step(self) -> int:
        return self.history[-1][0] if self.history else 0


def heldout_loss_values(test: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Held-out loss (nats/token) and perplexity from scored test pairs."""
    return heldout_loss_from(test[0].tolist(), test[1].tolist())


# ============================================================================ the recipe


class IdVsOod:
    """The Study B recipe."""

    config = IdVsOodConfig

    def validate(self, config: IdVsOodConfig) -> None:
        for section in ("train", "unlearn"):
            try:
                METHODS.get(getattr(config, section).method)
            except KeyError as error:
                raise KeyError(f"{section}.method: {error.args[0]}") from None
        try:
            CORPORA.get(config.corpus.name)
        except KeyError as error:
            raise KeyError(f"corpus.name: {error.args[0]}") from None

    def inputs(self, config: IdVsOodConfig) -> Inputs:
        models = [] if config.model.name == SCRATCH else [config.model]
        return Inputs(files=corpus_input_files(config.corpus), models=models)

    def run(self, config: IdVsOodConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        threads = torch.get_num_threads()
        if config.cpu_threads:
            torch.set_num_threads(config.cpu_threads)
        try:
            return StudyBRunner(config, run, accelerator).run()
        finally:
            torch.set_num_threads(threads)


EXPERIMENTS.register("id_vs_ood")(IdVsOod())


class StudyBRunner:
    """The stages of one Study B run, each skipped when the run directory already holds it."""

    def __init__(self, config: IdVsOodConfig, run: Run, accelerator: Accelerator) -> None:
        self.config, self.run_, self.acc = config, run, accelerator
        self.model: torch.nn.Module | None = None
        self.tokenizer: Any = None
        self.data: StudyData | None = None
        self.baseline: dict[str, Any] = {}
        self.stage_seconds: dict[str, float] = {}

    # --- orchestration -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.time()
        self.data = StudyData.from_dict(self._stage("data", lambda: build_data(self.config).to_dict()))
        self._prepare_tokenizer()
        training = {role: self._stage(f"train/{role}", lambda r=role: self._train(r)) for role in ("original", "reference")}
        baseline = self.baseline = self._stage("baseline", self._baseline)
        jobs = self._main_jobs(baseline) + self._bucket_jobs(baseline)
        results = {job.key: self._stage(f"unlearn/{job.key}", lambda j=job: self._unlearn(j)) for job in jobs}
        if not self.config.save_models and self.acc.is_main_process:
            for role in ("original", "reference"):
                self._weights_path(role).unlink(missing_ok=True)
        summary = summarize(self.config, self.run_.id, self.data, training, baseline, jobs, results)
        if self.acc.is_main_process:
            from forgetlab.report.study_b_plots import plot_study_b

            plot_study_b(self.run_.dir, summary)
            # each stage's seconds as recorded when it ran; total: this invocation (a resumed run: its last part)
            self.run_.save_timings({"total_seconds": time.time() - started, "stages": self.stage_seconds})
        self.acc.wait_for_everyone()
        return summary

    def _stage(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self.acc.wait_for_everyone()
        payload = self.run_.stage(key)
        if payload is None:
            started = time.time()
            payload = compute()
            payload.setdefault("seconds", time.time() - started)
            if self.acc.is_main_process:
                self.run_.save_stage(key, payload)
            self.acc.wait_for_everyone()
        if "seconds" in payload:
            self.stage_seconds[key] = payload["seconds"]
        return payload

    # --- tokenizer and models ------------------------------------------------------------------------

    def _prepare_tokenizer(self) -> None:
        """The corpus-trained BPE tokenizer (scratch models) or the pretrained model's own."""
        if self.config.model.name != SCRATCH:
            self.model, self.tokenizer = load_model(self.config.model)
            return
        path = self.run_.dir / "stages" / "weights" / "tokenizer.json"

        def compute() -> dict[str, Any]:
            spec = self.config.scratch
            texts = [p.prompt + p.target for p in self.data.base]
            tokenizer = train_bpe_tokenizer(texts, spec.vocab_size, spec.min_frequency)
            if self.acc.is_main_process:
                save_tokenizer(tokenizer, path)
            return {"vocab_size": len(tokenizer), "trained_on": len(texts)}

        self._stage("tokenizer", compute)
        self.tokenizer = load_tokenizer(path)

    def _fresh_model(self) -> torch.nn.Module:
        """The initial model: seeded scratch weights, or the pretrained checkpoint."""
        if self.config.model.name == SCRATCH:
            return build_scratch_model(self.config.scratch, self.tokenizer)
        model, _ = load_model(self.config.model)
        return model

    def _weights_path(self, role: str) -> Path:
        return self.run_.dir / "stages" / "weights" / f"{role}.safetensors"

    def _load_weights(self, role: str) -> torch.nn.Module:
        """The model with the trained weights of ``role`` (original or reference) loaded."""
        if self.model is None:
            self.model = self._fresh_model()
        self.model.load_state_dict(load_file(str(self._weights_path(role))), strict=False)
        self.model.eval()
        return self.model

    def _max_length(self) -> int:
        from forgetlab.scoring import resolve_max_length

        return resolve_max_length(self.model.config, self.tokenizer)

    def scorer(self) -> Scorer:
        """A scoring engine on the current model (no progress bars: it runs at every evaluation)."""
        ev = self.config.eval
        return Scorer(
            self.model, self.tokenizer, batch_size=ev.batch_size, on_overlong=ev.on_overlong, accelerator=self.acc, progress=False
        )

    def translation(self, samples: list[dict[str, Any]], step: int, key: str) -> dict[str, float]:
        """BLEU and exact match of greedy translations of the first ``eval.bleu_size`` test pairs."""
        ev = self.config.eval
        pairs = self.data.test[: ev.bleu_size]
        prompts = [p.prompt for p in pairs]
        hyps = greedy_generate(
            self.model, self.tokenizer, prompts, max_new_tokens=ev.max_new_tokens, batch_size=ev.generate_batch_size
        )
        base = {"task": key, "stage": "translation", "step": step}
        samples.extend(
            dict(base, pair_id=p.pair_id, hypothesis=h, reference=p.target.strip()) for p, h in zip(pairs[:3], hyps[:3])
        )
        return translation_quality(hyps, [p.target for p in pairs])

    # --- training ------------------------------------------------------------------------------------

    def _stream(self, role: str) -> tuple[list[StreamEntry], dict[str, str]]:
        """The training stream of ``role``: forget sets inserted (original), or replaced / removed (reference);
        and each forget item's stand-in (``pair_id`` to ``pair_id``), closest in prompt and target tokens."""
        spec = self.config.train
        stream = training_stream(self.data.base, self.data.groups, spec.epochs, self.config.seed)
        if role == "original" or spec.reference == "remove":
            return (stream if role == "original" else reference_stream(stream)), {}
        stand_ins = stand_in_map(self.data.groups, self.data.spares, self._token_lengths)
        return reference_stream(stream, stand_ins), {k: v.pair_id for k, v in stand_ins.items()}

    def _token_lengths(self, pair: Pair) -> tuple[int, int]:
        """Prompt and target tokens of a pair, tokenised as for training."""
        ctx, cont = encode_pair(self.tokenizer, pair.prompt, pair.target)
        return len(ctx), len(cont)

    def _train(self, role: str) -> dict[str, Any]:
        """Train a fresh model on the original stream (forget sets inserted) or the reference stream."""
        spec = self.config.train
        stream, stand_ins = self._stream(role)
        self.model = self._fresh_model()
        items = encode_pairs(self.tokenizer, [e.pair for e in stream], self._max_length(), spec.append_eos)
        method = METHODS.get(spec.method)(loss=spec.loss, reduction=spec.reduction)
        result = train_items(
            self.model, items, method, spec.model_copy(update={"epochs": 1.0}), pad_id=self.tokenizer.pad_token_id,
            seed=self.config.seed, accelerator=self.acc, checkpoint_dir=self._weights_path(role).with_suffix(".checkpoint"),
            desc=f"train {role}", shuffle=False,
        )
        self._save_weights(role)
        rows = [
            {"task": "train", "stage": f"train_{role}", "step": i + 1, "split": "train", "metric": "loss", "value": loss}
            for i, loss in enumerate(result.losses)
        ]
        base = {p.pair_id for p in self.data.base}
        counts = {
            "items": len(stream), "forget_items": sum(e.group is not None for e in stream),
            "stand_in_items": sum(e.group is None and e.pair.pair_id not in base for e in stream),
        }
        return {"steps": result.steps, **counts, **stream_tokens(items), "stand_ins": stand_ins, "metrics": rows}

    def _save_weights(self, role: str) -> None:
        if self.acc.is_main_process:
            path = self._weights_path(role)
            save_state(trainable_state(self.model), path)
            shutil.rmtree(path.with_suffix(".checkpoint"), ignore_errors=True)
        self.acc.wait_for_everyone()

    # --- before unlearning ---------------------------------------------------------------------------

    def _baseline(self) -> dict[str, Any]:
        """Score both models on every group, the references, the unseen canaries and the test pairs."""
        scores = {role: self._score_role(role) for role in ("original", "reference")}
        rows: list[dict[str, Any]] = []
        for role, sc in scores.items():
            rows.extend(self._baseline_rows(role, sc))
        return {
            "parameters": parameter_count(self.model),
            "vocab_size": len(self.tokenizer),
            "scores": scores,
            "metrics": rows,
            "examples": self._baseline_examples(scores),
        }

    def _score_role(self, role: str) -> dict[str, Any]:
        self._load_weights(role)
        scorer, data = self.scorer(), self.data
        groups = {g.name: score_pairs(scorer, g.items) for g in data.groups}
        refs = score_pairs(scorer, data.references)
        unseen = score_pairs(scorer, data.unseen) if data.unseen else (np.zeros(0), np.zeros(0))
        test = score_pairs(scorer, data.test[: self.config.eval.utility_size])
        utility = heldout_loss_values(test)
        samples: list[dict[str, Any]] = []
        if self.config.eval.bleu_size:
            utility.update(self.translation(samples, 0, role))
        as_lists = lambda pair: [pair[0].tolist(), pair[1].tolist()]  # noqa: E731
        return {
            "groups": {name: as_lists(v) for name, v in groups.items()},
            "references": as_lists(refs), "unseen": as_lists(unseen), "test": as_lists(test),
            "utility": utility, "samples": samples,
        }

    def _baseline_rows(self, role: str, sc: dict[str, Any]) -> list[dict[str, Any]]:
        refs = -np.asarray(sc["references"][0])
        fit = fit_skewnorm(refs)
        base = {"stage": role, "step": 0}
        rows = [dict(base, task="test", split="test", metric=k, value=v) for k, v in sc["utility"].items()]
        if len(sc["unseen"][0]):
            unseen = exposure_rank(-np.asarray(sc["unseen"][0]), refs, self.config.eval.exposure)
            rows.append(dict(base, task="unseen", split="unseen", metric="exposure_mean", value=float(unseen.mean())))
            rows.append(dict(base, task="unseen", split="unseen", metric="exposure_extrapolated_mean",
                             value=float(fit.exposure(-np.asarray(sc["unseen"][0])).mean())))
        for group in self.data.groups:
            ll = np.asarray(sc["groups"][group.name][0])
            gbase = dict(base, task=group.name, group=group.name, kind=group.kind, split="forget")
            rows.append(dict(gbase, metric="ll_mean", value=float(ll.mean())))
            if group.kind == "ood":
                exposure = exposure_rank(-ll, refs, self.config.eval.exposure)
                rows.append(dict(gbase, metric="exposure_mean", value=float(exposure.mean())))
                rows.append(dict(gbase, metric="exposure_extrapolated_mean", value=float(fit.exposure(-ll).mean())))
        return rows

    def _baseline_examples(self, scores: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        for group in self.data.groups:
            factors = item_factors(scores, group.name)
            exposures = {
                role: exposure_rank(
                    -np.asarray(sc["groups"][group.name][0]), -np.asarray(sc["references"][0]), self.config.eval.exposure
                )
                for role, sc in scores.items()
            } if group.kind == "ood" else {}
            base = {"task": group.name, "stage": "baseline", "kind": group.kind, "repetitions": group.repetitions}
            for i, pair in enumerate(group.items):
                row = dict(base, pair_id=pair.pair_id)
                row.update({k: (v[i] if isinstance(v, (list, np.ndarray)) else v) for k, v in factors.items()})
                row.update({f"exposure_{role}": float(e[i]) for role, e in exposures.items()})
                rows.append(_plain(row))
        return rows

    def exposure_baseline(self, baseline: dict[str, Any]) -> float:
        """The exposure an unlearned canary should come down to (``unlearn.stop.exposure_baseline``)."""
        choice = self.config.unlearn.stop.exposure_baseline
        if isinstance(choice, (int, float)):
            return float(choice)
        if choice == "expected":
            return expected_unseen_exposure(len(self.data.references), self.config.eval.exposure)
        if choice == "unseen":
            sc = baseline["scores"]["original"]
            if not len(sc["unseen"][0]):
                raise ValueError("unlearn.stop.exposure_baseline 'unseen' needs canaries.n_unseen > 0")
            unseen, refs = -np.asarray(sc["unseen"][0]), -np.asarray(sc["references"][0])
            return float(exposure_rank(unseen, refs, self.config.eval.exposure).mean())
        return LOG2_E

    # --- unlearning ----------------------------------------------------------------------------------

    def _main_jobs(self, baseline: dict[str, Any]) -> list[Job]:
        sizes = self.config.unlearn.sizes()
        jobs = []
        for group in self.data.groups:
            ll_o, ll_r = _group_ll(baseline, group.name)
            for size in sizes:
                key = group.name if len(sizes) == 1 else f"{group.name}@bs{size}"
                jobs.append(Job(key, group.name, group.kind, group.repetitions, size, group.items, ll_o, ll_r))
        return jobs

    def _bucket_jobs(self, baseline: dict[str, Any]) -> list[Job]:
        jobs = []
        size = self.config.unlearn.sizes()[0]
        for name in self.config.buckets.groups:
            group = self.data.group(name)
            ll_o, ll_r = _group_ll(baseline, name)
            factors = item_factors(baseline["scores"], name)
            for factor in self.config.buckets.factors:
                labels = factors[f"{factor}_bucket"]
                for label in dict.fromkeys(bucket_order(factor)):
                    index = [i for i, lab in enumerate(labels) if lab == label]
                    if not index:
                        continue
                    jobs.append(Job(
                        f"{name}/{factor}_{label}", name, group.kind, group.repetitions, size,
                        [group.items[i] for i in index], ll_o[index], ll_r[index], bucket=f"{factor}_{label}",
                    ))
        return jobs

    def _unlearn(self, job: Job) -> dict[str, Any]:
        """Gradient ascent on one job from the original weights, evaluated and stopped by the rules."""
        spec = self.config.unlearn
        model = self._load_weights("original")
        stop = StopRules(
            job.kind, spec.stop.rules, self.exposure_baseline(self.baseline), spec.stop.mode, spec.stop.exposure_tolerance
        )
        evaluator = GroupEvaluator(self, job, stop, spec.max_steps)
        nearby, similarity = self._nearby_sets(job)
        before = {name: score_pairs(self.scorer(), pairs)[0] for name, pairs in nearby.items()}
        method = METHODS.get(spec.method)(loss=spec.loss, reduction=spec.reduction)
        items = encode_pairs(self.tokenizer, job.items, self._max_length(), eos=False)
        retain = encode_pairs(self.tokenizer, self.data.base, self._max_length(), eos=False) if method.needs_retain else None
        try:
            train_items(
                model, items, method, spec.model_copy(update={"batch_size": job.batch_size}), pad_id=self.tokenizer.pad_token_id,
                seed=self.config.seed, accelerator=self.acc, evaluate=evaluator, desc=f"unlearn {job.key}", retain_items=retain,
            )
            reason = "max_steps"
        except StopUnlearning:
            reason = "rule"
            _check_finite(model, job.key, evaluator.last_step)
        except DivergenceError as error:
            return {"status": "diverged", "error": str(error), "steps": evaluator.last_step, "metrics": [], "examples": []}
        finally:
            self.acc.free_memory()
        after = {name: score_pairs(self.scorer(), pairs)[0] for name, pairs in nearby.items()}
        return {
            "status": "ok", "stop_reason": reason, "steps": evaluator.last_step, "primary": stop.primary,
            "first_met": stop.first, "exposure_baseline": stop.baseline, "exposure_tolerance": stop.tolerance,
            "history": [{"step": s, "forget": f, "test": u} for s, f, u in evaluator.history],
            "nearby": _nearby_summary(before, after, similarity),
            "metrics": evaluator.rows,
            "examples": self._job_examples(job, evaluator) + evaluator.samples,
        }

    def _job_examples(self, job: Job, evaluator: GroupEvaluator) -> list[dict[str, Any]]:
        rows = []
        for i, pair in enumerate(job.items):
            row = {"task": job.key, "stage": "unlearned", "step": evaluator.last_step, "pair_id": pair.pair_id}
            row.update({name: float(values[i]) for name, values in evaluator.per_item.items()})
            rows.append(row)
        return rows

    def _nearby_sets(self, job: Job) -> tuple[dict[str, list[Pair]], float | None]:
        """Nearest training items of the job's items, random training items, never-trained held-out items."""
        ev = self.config.eval
        if ev.neighbors == 0:
            return {}, None
        own = {p.pair_id for p in job.items}
        pool = list({p.pair_id: p for p in self.data.base + [q for g in self.data.groups for q in g.items]}.values())
        pool = [p for p in pool if p.pair_id not in own]
        found = nearest_neighbors([p.text for p in job.items], [p.text for p in pool], ev.neighbors, ev.similarity)
        chosen = sorted({i for row in found for i, _ in row})
        similarity = float(np.mean([s for row in found for _, s in row]))
        rng = random.Random(f"nearby:{self.config.seed}:{job.key}")
        sets = {
            "neighbors": [pool[i] for i in chosen],
            "random_train": rng.sample(self.data.base, min(ev.nearby_random, len(self.data.base))),
            "heldout": self.data.heldout[: ev.nearby_random],
        }
        return sets, similarity


# ============================================================================ helpers


def _check_finite(model: torch.nn.Module, key: str, step: int) -> None:
    for name, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise DivergenceError(f"unlearn {key}: parameter {name} became NaN/inf by step {step}")


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars as Python numbers (JSON)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


def _group_ll(baseline: dict[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    scores = baseline["scores"]
    return np.asarray(scores["original"]["groups"][name][0]), np.asarray(scores["reference"]["groups"][name][0])


def _nearby_summary(before: dict[str, np.ndarray], after: dict[str, np.ndarray], similarity: float | None) -> dict[str, Any]:
    """Mean log-likelihood change (nats) of each comparison set."""
    if not before:
        return {}
    out: dict[str, Any] = {"similarity_mean": similarity}
    for name in before:
        out[f"{name}_delta_ll"] = float((after[name] - before[name]).mean())
        out[f"{name}_n"] = int(before[name].size)
    return out
