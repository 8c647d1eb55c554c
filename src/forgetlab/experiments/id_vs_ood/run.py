"""Study B (Baluta et al. 2024): unlearning in- vs out-of-distribution data with gradient ascent, scored by exposure.

Baluta, Lamblin, Tarlow, Pedregosa & Dziugaite, "Unlearning in- vs. out-of-distribution data in LLMs
under gradient-based methods" (arXiv 2411.04388). The recipe, stage by stage (each stage is saved when
it finishes, so a killed run resumes at the first unfinished one):

1. ``data``: the (prompt, target) corpus (translation German→English by default), the base training
   subset, in-distribution (ID) forget groups (held-out corpus pairs) and out-of-distribution (OOD)
   canary groups, one per repetition count, the never-inserted reference secrets, unseen control
   canaries, a test subset (utility) and held-out controls (nearby examples) (:mod:`.data`);
2. ``tokenizer`` (``model.name: scratch`` only): a byte-level BPE tokenizer trained on the base corpus;
3. ``train/original`` and ``train/reference``: the same code path (:func:`forgetlab.train.train_items`,
   same initialisation) on the seeded training stream with the forget groups inserted, and on the
   identical stream with every forget item replaced by a fresh stand-in (``train.reference: replace``,
   same steps and schedule; see :mod:`forgetlab.data.canaries`) or removed (``remove``);
4. ``baseline``: both models scored — exposure per canary group, generalized exposure, memorization and
   difficulty per item, the unseen canaries' exposure (≈ log2 e), utility (:mod:`.evaluate`);
5. ``unlearn/<group>``: for each forget group (and batch size), from the original weights, gradient
   ascent through the method registry, evaluated every ``unlearn.eval_every`` steps (exposure,
   generalized exposure, both relative exposures, held-out loss, BLEU, exact match), stopped by the
   configured criteria (:mod:`.stopping`); nearby-example effects at the end; a diverged run (NaN/inf) is
   reported as such and none of its numbers are recorded;
6. ``unlearn/<group>/<factor>_<bucket>``: the same on each memorization/difficulty tercile of the
   groups named in ``buckets.groups`` (:mod:`.jobs`);
7. with ``attacks``: ``robustness/data`` (fresh canaries and unused corpus pairs to relearn on), then for
   each group that did not diverge ``unlearn/<group>/robustness/models`` and one stage per attack,
   ``unlearn/<group>/robustness/<i>-<attack>``, on its unlearned weights (kept for them as
   ``stages/weights/unlearned/<group>``), the original and the reference model (:mod:`.robustness`);
8. ``summary.json`` (per group: steps until unlearned, utility at that point, exposure and generalized
   exposure before and after, with attacks its ``robustness``, findings; :mod:`.summary`); wall-clock
   seconds go to ``timings.json`` so that identical runs write byte-identical summaries. The report draws
   the curves from ``metrics.jsonl`` and ``examples.jsonl`` (:mod:`.report`).
"""

from __future__ import annotations

import shutil
import time
from functools import partial
from typing import Any, Callable

import torch
from accelerate import Accelerator

from forgetlab.data.canaries import StreamEntry
from forgetlab.data.corpus import CORPORA, corpus_input_files
from forgetlab.data.types import Pair
from forgetlab.experiments.base import Experiment, Inputs, StagedRunner
from forgetlab.experiments.id_vs_ood.config import IdVsOodConfig
from forgetlab.experiments.id_vs_ood.data import (
    IdVsOodData,
    build_data,
    original_training_stream,
    reference_training_stream,
    stream_tokens,
    token_lengths,
)
from forgetlab.experiments.id_vs_ood.evaluate import (
    Evaluation,
    GroupEvaluator,
    baseline_examples,
    baseline_rows,
    nearby_sets,
    nearby_summary,
    score_pairs,
)
from forgetlab.experiments.id_vs_ood.jobs import Job, unlearning_jobs
from forgetlab.experiments.id_vs_ood.report import ID_VS_OOD_SECTIONS, robustness
from forgetlab.experiments.id_vs_ood.robustness import GroupRobustness, attack_pools, attacked_jobs, build_attack_data
from forgetlab.experiments.id_vs_ood.stopping import StopUnlearning, UnlearningCriteria, exposure_baseline
from forgetlab.experiments.id_vs_ood.summary import summarize
from forgetlab.experiments.robustness import check_attacks, run_attacks
from forgetlab.methods import METHODS
from forgetlab.metrics.utility import greedy_translations
from forgetlab.models import load_model
from forgetlab.scoring import Scorer, resolve_max_length
from forgetlab.scratch_model import build_scratch_model, load_tokenizer, parameter_count, save_tokenizer, train_bpe_tokenizer
from forgetlab.store import Run
from forgetlab.train import DivergenceError, EncodedItem, check_finite, encode_pairs, train_items, trainable_state

ROLES = ("original", "reference")  # the model trained with the forget sets, and the one trained without them


class IdVsOodRunner(StagedRunner):
    """The stages of one ``id_vs_ood`` run, each skipped when the run directory already holds it."""

    config: IdVsOodConfig

    def __init__(self, config: IdVsOodConfig, run: Run, accelerator: Accelerator) -> None:
        super().__init__(config, run, accelerator)
        self.data: IdVsOodData | None = None
        self.evaluation: Evaluation | None = None
        self.baseline: dict[str, Any] = {}

    def run(self) -> dict[str, Any]:
        started = time.time()
        self._open_data(lambda: build_data(self.config).to_dict())
        training = {
            "original": self.stage("train/original", self._train_original),
            "reference": self.stage("train/reference", self._train_reference),
        }
        baseline = self.baseline = self.stage("baseline", self._baseline)
        jobs = unlearning_jobs(self.config, self.data, baseline)
        results = {job.key: self.stage(f"unlearn/{job.key}", lambda j=job: self._unlearn(j)) for job in jobs}
        robustness = self.robustness(jobs, results) if self.config.attacks else {}
        if not self.config.save_models and self.is_main:
            for role in ROLES:
                self.weights_path("weights", role).unlink(missing_ok=True)
            shutil.rmtree(self.weights_path("weights", "unlearned").with_suffix(""), ignore_errors=True)
        summary = summarize(self.config, self.run_.id, self.data, training, baseline, jobs, results)
        for key, found in robustness.items():
            summary["groups"][key]["robustness"] = found
        # each stage's seconds as recorded when it ran; total: this invocation (a resumed run: its last part)
        self.save_timings(total_seconds=time.time() - started)
        self.accelerator.wait_for_everyone()
        return summary

    def _open_data(self, build: Callable[[], dict[str, Any]]) -> None:
        """The run's items (stage ``data``), their evaluation and the tokenizer."""
        self.data = IdVsOodData.from_dict(self.stage("data", build))
        self.evaluation = Evaluation(self.config.eval, self.data, self._current_scorer, self._generate)
        self._prepare_tokenizer()

    def finished_jobs(self) -> tuple[list[Job], dict[str, dict[str, Any]]]:
        """Of this (finished) run: its items, tokenizer and baseline loaded; its unlearning jobs and their results."""

        def missing() -> dict[str, Any]:
            raise FileNotFoundError(f"run {self.run_.id}: a stage is missing; it is not a finished id_vs_ood run")

        self._open_data(missing)
        self.baseline = self.run_.stage("baseline") or missing()
        jobs = unlearning_jobs(self.config, self.data, self.baseline)
        return jobs, {job.key: self.run_.stage(f"unlearn/{job.key}") or missing() for job in jobs}

    # --- tokenizer and models ------------------------------------------------------------------------

    def _prepare_tokenizer(self) -> None:
        """The corpus-trained BPE tokenizer (scratch models) or the pretrained model's own."""
        if not self.config.from_scratch:
            self.model, self.tokenizer = load_model(self.config.model, self.accelerator.device)
            return
        path = self.run_.path("stages", "weights", "tokenizer.json")

        def compute() -> dict[str, Any]:
            spec = self.config.scratch
            texts = [p.prompt + p.target for p in self.data.base]
            tokenizer = train_bpe_tokenizer(texts, spec.vocab_size, spec.min_frequency)
            if self.is_main:
                save_tokenizer(tokenizer, path)
            return {"vocab_size": len(tokenizer), "trained_on": len(texts)}

        self.stage("tokenizer", compute)
        self.tokenizer = load_tokenizer(path)

    def _fresh_model(self) -> torch.nn.Module:
        """The initial model: seeded scratch weights, or the pretrained checkpoint."""
        if self.config.from_scratch:
            return build_scratch_model(self.config.scratch, self.tokenizer).to(self.accelerator.device)
        model, _ = load_model(self.config.model, self.accelerator.device)
        return model

    def trained_model(self, role: str) -> torch.nn.Module:
        """The model with the trained weights of ``role`` (original or reference) loaded, in eval mode."""
        if self.model is None:
            self.model = self._fresh_model()
        self.load_weights(self.model, "weights", role)
        self.model.eval()
        return self.model

    def unlearned_model(self, key: str) -> torch.nn.Module:
        """The model after unlearning job ``key`` (weights kept when the run has attacks), in eval mode."""
        return self.load_weights(self.trained_model("original"), "weights", "unlearned", key).eval()

    def training_items(self, pairs: list[Pair]) -> list[EncodedItem]:
        """Pairs encoded as the original and reference models trained on them (with EOS if ``train.append_eos``)."""
        if self.model is None:
            self.model = self._fresh_model()
        return encode_pairs(self.tokenizer, pairs, self._max_length(), eos=self.config.train.append_eos)

    def _max_length(self) -> int:
        return resolve_max_length(self.model.config, self.tokenizer)

    def _current_scorer(self) -> Scorer:
        """A scoring engine on the current model (no progress bars: it runs at every evaluation)."""
        spec = self.config.eval
        return self.scorer(self.model, self.tokenizer, batch_size=spec.batch_size, on_overlong=spec.on_overlong)

    def _generate(self, prompts: list[str]) -> list[str]:
        """Greedy continuations of ``prompts`` by the current model."""
        spec = self.config.eval
        return greedy_translations(
            self.model, self.tokenizer, prompts, max_new_tokens=spec.max_new_tokens, batch_size=spec.generate_batch_size
        )

    # --- training ------------------------------------------------------------------------------------

    def _train_original(self) -> dict[str, Any]:
        return self._train("original", original_training_stream(self.config, self.data), {})

    def _train_reference(self) -> dict[str, Any]:
        stream, stand_ins = reference_training_stream(self.config, self.data, partial(token_lengths, self.tokenizer))
        return self._train("reference", stream, stand_ins)

    def _train(self, role: str, stream: list[StreamEntry], stand_ins: dict[str, str]) -> dict[str, Any]:
        """Train a fresh model on ``role``'s stream; its loss curve, counts of items and tokens, and stand-ins."""
        spec = self.config.train
        self.model = self._fresh_model()
        items = encode_pairs(self.tokenizer, [e.pair for e in stream], self._max_length(), eos=spec.append_eos)
        method = METHODS.get(spec.method)(loss=spec.loss, reduction=spec.reduction)
        checkpoint = self.weights_path("weights", role).with_suffix(".checkpoint")
        result = train_items(
            self.model, items, method, spec.model_copy(update={"epochs": 1.0}), pad_id=self.tokenizer.pad_token_id,
            seed=self.config.seed, accelerator=self.accelerator, checkpoint_dir=checkpoint, desc=f"train {role}", shuffle=False,
        )
        self.save_weights(trainable_state(self.model), "weights", role)
        if self.is_main:
            shutil.rmtree(checkpoint, ignore_errors=True)
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

    # --- before unlearning ---------------------------------------------------------------------------

    def _baseline(self) -> dict[str, Any]:
        """Score both models on every group, the references, the unseen canaries and the test pairs."""
        scores = {}
        for role in ROLES:
            self.trained_model(role)
            scores[role] = self.evaluation.score_model(role)
        convention = self.config.eval.exposure
        return {
            "parameters": parameter_count(self.model),
            "vocab_size": len(self.tokenizer),
            "scores": scores,
            "metrics": [row for role in ROLES for row in baseline_rows(role, scores[role], self.data.groups, convention)],
            "examples": baseline_examples(scores, self.data.groups, convention),
        }

    # --- unlearning ----------------------------------------------------------------------------------

    def _criteria(self, job: Job) -> UnlearningCriteria:
        stop, convention = self.config.unlearn.stop, self.config.eval.exposure
        original = self.baseline["scores"]["original"]
        baseline = exposure_baseline(stop.exposure_baseline, original, len(self.data.references), convention)
        return UnlearningCriteria(job.kind, stop.rules, baseline, stop.mode, stop.exposure_tolerance)

    def _unlearn(self, job: Job) -> dict[str, Any]:
        """Gradient ascent on one job from the original weights, evaluated and stopped by the criteria."""
        spec = self.config.unlearn
        model = self.trained_model("original")
        criteria = self._criteria(job)
        evaluator = GroupEvaluator(job, criteria, spec.max_steps, self.evaluation)
        nearby, similarity = nearby_sets(job, self.data, self.config.eval, self.config.seed)
        before = {name: score_pairs(self._current_scorer(), pairs)[0] for name, pairs in nearby.items()}
        method = METHODS.get(spec.method)(loss=spec.loss, reduction=spec.reduction)
        items = encode_pairs(self.tokenizer, job.items, self._max_length(), eos=False)
        retain = encode_pairs(self.tokenizer, self.data.base, self._max_length(), eos=False) if method.needs_retain else None
        try:
            train_items(
                model, items, method, spec.model_copy(update={"batch_size": job.batch_size}), pad_id=self.tokenizer.pad_token_id,
                seed=self.config.seed, accelerator=self.accelerator, evaluate=evaluator, desc=f"unlearn {job.key}",
                retain_items=retain,
            )
            reason = "max_steps"
        except StopUnlearning:
            reason = "rule"
            check_finite(model, f"unlearn {job.key}", evaluator.last_step)
        except DivergenceError as error:
            return {"status": "diverged", "error": str(error), "steps": evaluator.last_step, "metrics": [], "examples": []}
        finally:
            self.accelerator.free_memory()
        after = {name: score_pairs(self._current_scorer(), pairs)[0] for name, pairs in nearby.items()}
        if (self.config.attacks or self.config.save_models) and job.bucket is None:  # recovery attacks start from these
            self.save_trained(model, "weights", "unlearned", job.key)
        return {
            "status": "ok", "stop_reason": reason, "steps": evaluator.last_step, "primary": criteria.primary,
            "first_met": criteria.first, "exposure_baseline": criteria.baseline, "exposure_tolerance": criteria.tolerance,
            "history": [{"step": s, "forget": f, "test": u} for s, f, u in evaluator.history],
            "nearby": nearby_summary(before, after, similarity),
            "metrics": evaluator.rows,
            "examples": evaluator.item_rows() + evaluator.samples,
        }

    # --- recovery attacks ----------------------------------------------------------------------------

    def robustness(self, jobs: list[Job], results: dict[str, dict[str, Any]], stages: StagedRunner | None = None) -> dict[str, dict[str, Any]]:
        """The recovery attacks on each group's unlearned model (one stage per attack and group, saved through
        ``stages``: this run, or an attack run of it), by job key."""
        stages = stages or self
        pools = attack_pools(stages.stage("robustness/data", lambda: build_attack_data(self.config, self.data)), self.data)
        return {
            job.key: run_attacks(stages, f"unlearn/{job.key}/", self.config.attacks, GroupRobustness(self, job, pools).target(),
                                 self.config.attack_data.bootstrap, self.config.seed)
            for job in attacked_jobs(jobs, results)
        }


class IdVsOod(Experiment):
    """The ``id_vs_ood`` experiment: Study B (Baluta et al. 2024)."""

    config = IdVsOodConfig
    report_sections = ID_VS_OOD_SECTIONS
    sweep_metrics = ("groups.*.steps_to_unlearn", "groups.*.relexp_change_after")

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
        check_attacks(config.attacks, {"disjoint": None, "benign": None})  # attack_data gives both kinds to every group

    def inputs(self, config: IdVsOodConfig) -> Inputs:
        models = [] if config.from_scratch else [config.model]
        return Inputs(files=corpus_input_files(config.corpus), models=models)

    def run(self, config: IdVsOodConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        return IdVsOodRunner(config, run, accelerator).run()

    # --- recovery attacks on a finished run (forgetlab attack) --------------------------------------

    attack_fields = ("attack_data",)
    robustness_section = staticmethod(robustness)

    def attack_finished(self, runner: StagedRunner, config: IdVsOodConfig, source: Run) -> dict[str, Any]:
        """The attacks on each group's unlearned model of ``source`` (``groups.<group>.robustness``)."""
        attacked = IdVsOodRunner(config, source, runner.accelerator)
        jobs, results = attacked.finished_jobs()
        return {"groups": {key: {"robustness": found} for key, found in attacked.robustness(jobs, results, runner).items()}}
