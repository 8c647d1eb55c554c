"""What the recovery attacks of an ``id_vs_ood`` run attack (:mod:`forgetlab.experiments.robustness` runs
them), once per forget group unlearned without diverging (the buckets' terciles are not attacked): the model
after unlearning the group (*forgotten*, kept as ``stages/weights/unlearned/<group>``), the original model
(*original*) and the reference model, which never saw any forget item (*never_learned*, the control). Each is
measured as at an evaluation during unlearning (:func:`.evaluate.measure_job`): exposure (canary groups),
generalized exposure, forget loss and relative exposure (a), per item for paired intervals, and held-out loss.

Relearning trains on items drawn once for the whole run (stage ``robustness/data``), apart from everything
the run trains on or scores (:func:`check_attack_data` raises otherwise): ``attack_data.canaries`` fresh
canaries of the same format (a canary that is a reference or an unseen control would bias exposure's candidate
space) and ``attack_data.pairs`` corpus pairs no model trained on. ``disjoint`` relearning uses the group's
own kind (canaries for a canary group, corpus pairs for an ID group), ``benign`` the other kind.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Protocol, Sequence

import torch

from forgetlab.attacks import AttackContext
from forgetlab.data.canaries import canary_pair, random_secrets
from forgetlab.data.corpus import load_corpus
from forgetlab.data.types import Pair
from forgetlab.experiments.id_vs_ood.config import IdVsOodConfig
from forgetlab.experiments.id_vs_ood.data import IdVsOodData
from forgetlab.experiments.id_vs_ood.evaluate import Evaluation, heldout_loss_values, measure_job
from forgetlab.experiments.id_vs_ood.jobs import Job
from forgetlab.experiments.robustness import Target, membership_splits
from forgetlab.scoring import Scorer
from forgetlab.train import EncodedItem

#: The numbers recovery is computed for (the report's figures draw the first four); exposure for canary
#: groups only. All but the held-out loss have per-item values (paired bootstrap intervals).
HEADLINE = ("forget/exposure_mean", "forget/genex_mean", "forget/loss", "forget/relexp_rank_mean", "test/loss")
#: Per-item values behind each headline key: (array of :func:`~.evaluate.forget_values`, sign).
ITEMS = {"forget/exposure_mean": ("exposure", 1.0), "forget/genex_mean": ("genex", 1.0), "forget/loss": ("ll", -1.0),
         "forget/relexp_rank_mean": ("relexp_rank", 1.0)}
CORPUS_SPLITS = ("train", "validation", "test")


# --- the relearning data ---------------------------------------------------------------------------------


def _used(data: IdVsOodData) -> list[Pair]:
    """Every item the run trains on or scores: base, forget groups, references, unseen canaries, test and
    held-out pairs, and the reference model's stand-in spares (chosen or not)."""
    spares = [p for pairs in data.spares.values() for p in pairs]
    return [*data.base, *(p for g in data.groups for p in g.items), *data.references, *data.unseen, *data.test,
            *data.heldout, *spares]


def build_attack_data(config: IdVsOodConfig, data: IdVsOodData) -> dict[str, Any]:
    """The ``robustness/data`` stage: fresh canaries and unused corpus pairs to relearn on (seeded)."""
    spec = config.attack_data
    rng = random.Random(f"attack_data:{config.seed}")
    used = _used(data)
    texts, ids = {p.text for p in used}, {p.pair_id for p in used}
    canaries: list[Pair] = []
    drawn: set[str] = set()
    while len(canaries) < spec.canaries:  # a secret whose canary is taken is drawn again
        for secret in random_secrets(spec.canaries - len(canaries), config.canaries, rng, exclude=drawn):
            drawn.add(secret)
            pair = canary_pair(config.canaries, f"relearn-canary-{len(canaries)}", secret)
            if pair.text not in texts:
                canaries.append(pair)
    corpus = load_corpus(config.corpus)
    pool = list({p.text: p for split in CORPUS_SPLITS for p in corpus.split(split)
                 if p.text not in texts and p.pair_id not in ids}.values())
    if len(pool) < spec.pairs:
        raise ValueError(f"attack_data.pairs: {spec.pairs} corpus pairs no model trained on and no evaluation scores "
                         f"are needed, the corpus {corpus.name!r} has {len(pool)} left")
    pairs = rng.sample(pool, spec.pairs)
    check_attack_data(canaries, pairs, data)
    return {"canaries": [p.to_dict() for p in canaries], "pairs": [p.to_dict() for p in pairs]}


def check_attack_data(canaries: Sequence[Pair], pairs: Sequence[Pair], data: IdVsOodData) -> None:
    """Raise ValueError when a relearning item shares its id or its text with an item the run trains on or
    scores, or the two pools share one."""
    used = _used(data)
    texts, ids = {p.text for p in used}, {p.pair_id for p in used}
    items = [*canaries, *pairs]
    clash = [p.pair_id for p in items if p.text in texts or p.pair_id in ids]
    if clash or len({p.text for p in items}) < len(items) or len({p.pair_id for p in items}) < len(items):
        raise ValueError(f"robustness/data: relearning items overlap the run's own items or each other ({clash[:3]})")


def attack_pools(payload: dict[str, Any], data: IdVsOodData) -> dict[str, list[Pair]]:
    """The ``robustness/data`` stage's items by kind (``canaries``, ``pairs``), checked again."""
    pools = {kind: [Pair.from_dict(p) for p in payload[kind]] for kind in ("canaries", "pairs")}
    check_attack_data(pools["canaries"], pools["pairs"], data)
    return pools


# --- the target of one group -----------------------------------------------------------------------------


class AttackedRunner(Protocol):
    """What the attacks use of the runner (:class:`forgetlab.experiments.id_vs_ood.run.IdVsOodRunner`)."""

    config: IdVsOodConfig
    tokenizer: Any
    accelerator: Any
    evaluation: Evaluation | None
    data: IdVsOodData | None

    def trained_model(self, role: str) -> torch.nn.Module:
        """The model with ``role``'s trained weights (original or reference), in eval mode."""

    def unlearned_model(self, key: str) -> torch.nn.Module:
        """The model after unlearning job ``key`` (its kept weights), in eval mode."""

    def scorer(self, model: torch.nn.Module, tokenizer: Any, *, batch_size: int, progress: bool = False, **options: Any) -> Scorer:
        """The scoring engine on ``model``."""

    def training_items(self, pairs: Sequence[Pair]) -> list[EncodedItem]:
        """Pairs encoded as the models were trained on them."""


class GroupRobustness:
    """The attacks' target for one unlearning job: its forgotten, original and never-learned models."""

    def __init__(self, runner: AttackedRunner, job: Job, pools: dict[str, list[Pair]]) -> None:
        self.runner, self.job, self.pools = runner, job, pools

    def roles(self) -> dict[str, Callable[[], torch.nn.Module]]:
        return {"forgotten": lambda: self.runner.unlearned_model(self.job.key),
                "original": lambda: self.runner.trained_model("original"),
                "never_learned": lambda: self.runner.trained_model("reference")}

    def measure(self, model: torch.nn.Module) -> dict[str, Any]:
        """The job's values under ``model``, as at an evaluation during unlearning (no translation)."""
        runner, spec = self.runner, self.runner.config.eval
        scorer = runner.scorer(model, runner.tokenizer, batch_size=spec.batch_size, on_overlong=spec.on_overlong)
        forget, per_item, test = measure_job(runner.evaluation, scorer, self.job)
        metrics = {**{f"forget/{k}": v for k, v in forget.items()},
                   **{f"test/{k}": v for k, v in heldout_loss_values(test).items()}}
        items = {key: (sign * per_item[name]).tolist() for key, (name, sign) in ITEMS.items() if name in per_item}
        return {"metrics": metrics, "items": items}

    def context(self) -> AttackContext:
        """Relearning data by kind (the group's own kind is ``disjoint``), the group's items as forget requests."""
        canaries, pairs = self.pools["canaries"], self.pools["pairs"]
        own, other = (canaries, pairs) if self.job.kind.has_references else (pairs, canaries)
        runner = self.runner
        data = runner.data
        never_trained = data.unseen if self.job.kind.has_references else data.heldout  # the same kind, never in training
        return AttackContext(tokenizer=runner.tokenizer, seed=runner.config.seed, accelerator=runner.accelerator,
                             relearn_items={"disjoint": runner.training_items(own), "benign": runner.training_items(other)},
                             forget_requests=[p.request() for p in self.job.items],
                             probe_splits=membership_splits(self.job.items, never_trained),
                             score_tokens=runner.config.compute.score_tokens)

    def target(self) -> Target:
        return Target(roles=self.roles(), measure=self.measure, context=self.context, metrics=HEADLINE)


def attacked_jobs(jobs: Sequence[Job], results: dict[str, dict[str, Any]]) -> list[Job]:
    """The jobs attacked: every group at every batch size (not the terciles) that did not diverge."""
    return [job for job in jobs if job.bucket is None and results[job.key]["status"] == "ok"]
