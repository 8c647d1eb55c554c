"""Scoring the models of an ``id_vs_ood`` run: both trained models before unlearning (the ``baseline``
stage), each unlearning run at every ``unlearn.eval_every`` steps (:class:`GroupEvaluator`), and the
nearby examples before and after it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from forgetlab.data.canaries import ForgetGroup
from forgetlab.data.types import Pair
from forgetlab.experiments.id_vs_ood.config import IdVsOodEvalSpec
from forgetlab.experiments.id_vs_ood.data import IdVsOodData
from forgetlab.experiments.id_vs_ood.jobs import Job, item_factors
from forgetlab.experiments.id_vs_ood.stopping import Criterion, StopUnlearning, UnlearningCriteria
from forgetlab.metrics.exposure import (
    Convention,
    describe,
    exposure_rank,
    fit_skewnorm,
    generalized_exposure,
    relative_exposure_change,
    relative_exposure_rank,
)
from forgetlab.metrics.memorization import nearest_neighbors
from forgetlab.metrics.utility import heldout_loss_from, translation_quality
from forgetlab.scoring import Scorer
from forgetlab.train import DivergenceError

Scores = tuple[np.ndarray, np.ndarray]  # summed log-likelihood and target token count of each pair


def score_pairs(scorer: Scorer, pairs: Sequence[Pair]) -> Scores:
    """Summed log-likelihood and target token count of each pair; NaN/inf is a divergence."""
    scored = scorer.loglikelihood([p.request() for p in pairs], names=[p.pair_id for p in pairs])
    ll = np.array([s.logprob for s in scored], dtype=np.float64)
    if not np.all(np.isfinite(ll)):
        raise DivergenceError(f"log-likelihood became NaN/inf for {int((~np.isfinite(ll)).sum())} item(s)")
    return ll, np.array([s.n_tokens for s in scored], dtype=np.float64)


def heldout_loss_values(test: Scores) -> dict[str, float]:
    """Held-out loss (nats/token) and perplexity from scored test pairs."""
    return heldout_loss_from(test[0].tolist(), test[1].tolist())


@dataclass
class Evaluation:
    """What every evaluation of a run uses: the ``eval`` settings, the data, and the model as it is now
    (a fresh scoring engine on it, greedy continuations of prompts by it)."""

    spec: IdVsOodEvalSpec
    data: IdVsOodData
    scorer: Callable[[], Scorer]
    generate: Callable[[list[str]], list[str]]

    @property
    def utility_pairs(self) -> list[Pair]:
        """The test pairs scored for held-out loss (the first ``eval.utility_size``)."""
        return self.data.test[: self.spec.utility_size]

    def translation(self, samples: list[dict[str, Any]], step: int, key: str) -> dict[str, float]:
        """BLEU and exact match of greedy translations of the first ``eval.bleu_size`` test pairs (three kept as samples)."""
        pairs = self.data.test[: self.spec.bleu_size]
        hyps = self.generate([p.prompt for p in pairs])
        base = {"task": key, "stage": "translation", "step": step}
        samples.extend(
            dict(base, pair_id=p.pair_id, hypothesis=h, reference=p.target.strip()) for p, h in zip(pairs[:3], hyps[:3])
        )
        return translation_quality(hyps, [p.target for p in pairs])

    def score_model(self, role: str) -> dict[str, Any]:
        """One trained model (``role``: original or reference) on every group, the references, the unseen
        canaries and the test pairs, with its utility."""
        scorer, data = self.scorer(), self.data
        groups = {g.name: score_pairs(scorer, g.items) for g in data.groups}
        refs = score_pairs(scorer, data.references)
        unseen = score_pairs(scorer, data.unseen) if data.unseen else (np.zeros(0), np.zeros(0))
        test = score_pairs(scorer, self.utility_pairs)
        utility = heldout_loss_values(test)
        samples: list[dict[str, Any]] = []
        if self.spec.bleu_size:
            utility.update(self.translation(samples, 0, role))
        as_lists = lambda pair: [pair[0].tolist(), pair[1].tolist()]  # noqa: E731
        return {
            "groups": {name: as_lists(v) for name, v in groups.items()},
            "references": as_lists(refs), "unseen": as_lists(unseen), "test": as_lists(test),
            "utility": utility, "samples": samples,
        }


# --- before unlearning ---------------------------------------------------------------------------------


def baseline_rows(
    role: str, scores: dict[str, Any], groups: Sequence[ForgetGroup], convention: Convention
) -> list[dict[str, Any]]:
    """metrics.jsonl rows of one trained model: utility, the unseen canaries' exposure, each group's likelihood
    (and exposure, for groups with references)."""
    refs = -np.asarray(scores["references"][0])
    fit = fit_skewnorm(refs)
    base = {"stage": role, "step": 0}
    rows = [dict(base, task="test", split="test", metric=k, value=v) for k, v in scores["utility"].items()]
    if len(scores["unseen"][0]):
        unseen = exposure_rank(-np.asarray(scores["unseen"][0]), refs, convention)
        rows.append(dict(base, task="unseen", split="unseen", metric="exposure_mean", value=float(unseen.mean())))
        rows.append(dict(base, task="unseen", split="unseen", metric="exposure_extrapolated_mean",
                         value=float(fit.exposure(-np.asarray(scores["unseen"][0])).mean())))
    for group in groups:
        ll = np.asarray(scores["groups"][group.name][0])
        gbase = dict(base, task=group.name, group=group.name, kind=group.kind, split="forget")
        rows.append(dict(gbase, metric="ll_mean", value=float(ll.mean())))
        if group.kind.has_references:
            exposure = exposure_rank(-ll, refs, convention)
            rows.append(dict(gbase, metric="exposure_mean", value=float(exposure.mean())))
            rows.append(dict(gbase, metric="exposure_extrapolated_mean", value=float(fit.exposure(-ll).mean())))
    return rows


def baseline_examples(scores: dict[str, Any], groups: Sequence[ForgetGroup], convention: Convention) -> list[dict[str, Any]]:
    """examples.jsonl rows: per forget item its likelihoods, memorization, difficulty (and exposure) before unlearning."""
    rows = []
    for group in groups:
        factors = item_factors(scores, group.name)
        exposures = {
            role: exposure_rank(-np.asarray(sc["groups"][group.name][0]), -np.asarray(sc["references"][0]), convention)
            for role, sc in scores.items()
        } if group.kind.has_references else {}
        base = {"task": group.name, "stage": "baseline", "kind": group.kind, "repetitions": group.repetitions}
        for i, pair in enumerate(group.items):
            row = dict(base, pair_id=pair.pair_id)
            row.update({k: (v[i] if isinstance(v, (list, np.ndarray)) else v) for k, v in factors.items()})
            row.update({f"exposure_{role}": float(e[i]) for role, e in exposures.items()})
            rows.append(_plain(row))
    return rows


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars as Python numbers (JSON)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


# --- during unlearning ---------------------------------------------------------------------------------


def forget_values(
    job: Job, ll: np.ndarray, n: np.ndarray, refs: Scores | None, test: Scores, per_token: bool,
    convention: Convention = "forgetlab",
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


def measure_job(evaluation: Evaluation, scorer: Scorer, job: Job) -> tuple[dict[str, float], dict[str, np.ndarray], Scores]:
    """One evaluation of a job's model (the one ``scorer`` scores): its group values and per-item arrays
    (:func:`forget_values`) and the scored utility pairs — what every evaluation during unlearning computes,
    and what the recovery attacks measure."""
    spec = evaluation.spec
    ll, n = score_pairs(scorer, job.items)
    refs = score_pairs(scorer, evaluation.data.references) if job.kind.has_references else None
    test = score_pairs(scorer, evaluation.utility_pairs)
    forget, per_item = forget_values(job, ll, n, refs, test, spec.per_token_relative, spec.exposure)
    return forget, per_item, test


class GroupEvaluator:
    """The ``evaluate(step)`` callback of one unlearning run; keeps its own rows and raises :class:`StopUnlearning`."""

    def __init__(self, job: Job, criteria: UnlearningCriteria, max_steps: int, evaluation: Evaluation) -> None:
        self.job, self.criteria, self.max_steps, self.evaluation = job, criteria, max_steps, evaluation
        self.rows: list[dict[str, Any]] = []
        self.history: list[tuple[int, dict[str, float], dict[str, float]]] = []
        self.per_item: dict[str, np.ndarray] = {}
        self.samples: list[dict[str, Any]] = []
        self.n_evals = 0

    def __call__(self, step: int) -> list[dict[str, Any]]:
        evaluation = self.evaluation
        forget, self.per_item, test = measure_job(evaluation, evaluation.scorer(), self.job)
        newly = self.criteria.update(step, forget)
        stopping = self.criteria.should_stop or step >= self.max_steps
        utility = heldout_loss_values(test)
        if self._translate_now(step, newly, stopping):
            utility.update(evaluation.translation(self.samples, step, self.job.key))
        self._record(step, forget, utility)
        self.n_evals += 1
        if self.criteria.should_stop:
            raise StopUnlearning(step)
        return []

    def _translate_now(self, step: int, newly: list[Criterion], stopping: bool) -> bool:
        spec = self.evaluation.spec
        if spec.bleu_size == 0:
            return False
        regular = self.n_evals % spec.bleu_every == 0
        return regular or stopping or self.criteria.primary in newly or step == 0

    def _record(self, step: int, forget: dict[str, float], utility: dict[str, float]) -> None:
        self.history.append((step, forget, utility))
        base = {"task": self.job.key, "group": self.job.group, "kind": self.job.kind, "stage": "unlearn", "step": step}
        self.rows.extend(dict(base, split="forget", metric=k, value=v) for k, v in forget.items())
        self.rows.extend(dict(base, split="test", metric=k, value=v) for k, v in utility.items())

    @property
    def last_step(self) -> int:
        return self.history[-1][0] if self.history else 0

    def item_rows(self) -> list[dict[str, Any]]:
        """examples.jsonl rows: each item's values at the last evaluation."""
        rows = []
        for i, pair in enumerate(self.job.items):
            row = {"task": self.job.key, "stage": "unlearned", "step": self.last_step, "pair_id": pair.pair_id}
            row.update({name: float(values[i]) for name, values in self.per_item.items()})
            rows.append(row)
        return rows


# --- nearby examples -----------------------------------------------------------------------------------


def nearby_sets(job: Job, data: IdVsOodData, spec: IdVsOodEvalSpec, seed: int) -> tuple[dict[str, list[Pair]], float | None]:
    """Nearest training items of the job's items, random training items, never-trained held-out items;
    and the mean similarity of the neighbours (none with ``eval.neighbors: 0``)."""
    if spec.neighbors == 0:
        return {}, None
    own = {p.pair_id for p in job.items}
    pool = list({p.pair_id: p for p in data.base + [q for g in data.groups for q in g.items]}.values())
    pool = [p for p in pool if p.pair_id not in own]
    found = nearest_neighbors([p.text for p in job.items], [p.text for p in pool], spec.neighbors, spec.similarity)
    chosen = sorted({i for row in found for i, _ in row})
    similarity = float(np.mean([s for row in found for _, s in row]))
    rng = random.Random(f"nearby:{seed}:{job.key}")
    sets = {
        "neighbors": [pool[i] for i in chosen],
        "random_train": rng.sample(data.base, min(spec.nearby_random, len(data.base))),
        "heldout": data.heldout[: spec.nearby_random],
    }
    return sets, similarity


def nearby_summary(before: dict[str, np.ndarray], after: dict[str, np.ndarray], similarity: float | None) -> dict[str, Any]:
    """Mean log-likelihood change (nats) of each comparison set."""
    if not before:
        return {}
    out: dict[str, Any] = {"similarity_mean": similarity}
    for name in before:
        out[f"{name}_delta_ll"] = float((after[name] - before[name]).mean())
        out[f"{name}_n"] = int(before[name].size)
    return out
