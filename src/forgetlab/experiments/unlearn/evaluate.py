"""Evaluation during unlearning: per-set loss and token accuracy, extraction on the forget set, membership
inference (forget = members, holdout = non-members), and the best-step selection (:class:`Evaluator`,
:class:`Selection`)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from accelerate import Accelerator

from forgetlab.data.types import Pair
from forgetlab.experiments.unlearn.config import SelectSpec, UnlearnConfig
from forgetlab.metrics.extraction import exact_memorization, prefix_match, verbatim_match
from forgetlab.metrics.mia import TPR_AT, attack_scores, evaluate_attacks, item_loss
from forgetlab.metrics.registry import METRICS, Metric, Role
from forgetlab.models import ModelSpec, load_model
from forgetlab.models import unwrap_model
from forgetlab.scoring import Scorer, TokenScores, greedy_generate
from forgetlab.store import atomic_write_json
from forgetlab.train import DivergenceError, EncodedItem

SET_METRICS = ("loss", "token_acc", "n")
#: What each set is for, which decides which way its metrics are better (see :mod:`forgetlab.metrics.registry`).
SET_ROLES: dict[str, Role] = {"forget": "forget", "holdout": "observe", "retain": "keep", "utility": "keep", "mia": "forget"}
EXTRACTION_METRICS = ("verbatim", "prefix_match")
MIA_STATS = ("auc", "auc_gap", *TPR_AT, "auc_ci_low", "auc_ci_high")


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


def metric_and_role(key: str) -> tuple[Metric, Role]:
    """The registered metric of a key ``<set>/<name>`` and the role of its set."""
    set_name, name = key.split("/", 1)
    return METRICS.get(name), SET_ROLES[set_name]


def objective_direction(key: str) -> str | None:
    """Which way the metric ``<set>/<name>`` is better in this experiment (``higher``/``lower``/``closer``)."""
    metric, role = metric_and_role(key)
    return metric.direction(role)


def objective_badness(key: str, value: float) -> float:
    """How bad ``value`` of the metric ``<set>/<name>`` is for unlearning (lower is better), from the metric
    registry's direction for that set's role."""
    metric, role = metric_and_role(key)
    return metric.badness(value, role)


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

    items: list[Pair]
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
        objective = self.spec.objective
        return min(feasible, key=lambda h: (objective_badness(objective, h["objective"]), h["step"]))  # ties: earliest

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


class EvaluatedRunner(Protocol):
    """What the evaluator uses of the runner (:class:`forgetlab.experiments.unlearn.run.UnlearnRunner`)."""

    config: UnlearnConfig
    model: torch.nn.Module
    tokenizer: Any
    accelerator: Accelerator

    def scorer(
        self, model: torch.nn.Module, tokenizer: Any, *, batch_size: int, progress: bool = False, **options: Any
    ) -> Scorer:
        """The scoring engine on ``model``, sharded over the processes."""

    def keep_selected(self, step: int) -> None:
        """Keep the current weights as those of the selected step."""


class Evaluator:
    """The ``evaluate(step)`` callback of the unlearning stage: metrics rows, best-step weights."""

    def __init__(self, runner: EvaluatedRunner, sets: dict[str, EvalSet], selection: Selection) -> None:
        self.runner, self.sets, self.selection = runner, sets, selection
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
            self.runner.keep_selected(step)
        if self.runner.accelerator.is_main_process:
            self.selection.save()
        self.runner.accelerator.wait_for_everyone()
        self.seconds += time.perf_counter() - started
        rows = [self._row(step, key, value) for key, value in metrics.items()]
        return rows + [dict(e, kind="example") for e in examples]

    def evaluate(self, step: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Flat metrics ``{"<split>/<name>": value}`` and per-item rows of the current model."""
        metrics, per_item = self._metrics_and_items(step)
        return metrics, self._examples(step, per_item)

    def measure(self, model: torch.nn.Module) -> dict[str, Any]:
        """Every metric of ``model`` (as at an evaluation, without touching the selection) and the forget items'
        own values: ``{"metrics": {key: value}, "items": {"forget/<name>": [per item]}}`` — what recovery
        attacks compare."""
        current = self.runner.model
        self.runner.model = model
        try:
            metrics, per_item = self._metrics_and_items(step=-1)
        finally:
            self.runner.model = current
        items = {f"forget/{name}": values.tolist() for name, values in per_item["forget"].items() if not name.startswith("mia_")}
        return {"metrics": metrics, "items": items}

    def _metrics_and_items(self, step: int) -> tuple[dict[str, float], dict[str, dict[str, np.ndarray]]]:
        stats = {name: self._token_scores(s, name) for name, s in self.sets.items()}
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
        return metrics, per_item

    def _scorer(self, model: torch.nn.Module, tokenizer: Any) -> Scorer:
        return self.runner.scorer(model, tokenizer, batch_size=self.config.eval.batch_size)

    def _token_scores(self, eval_set: EvalSet, name: str) -> list[TokenScores]:
        """Per-token statistics of each item's target (the scoring engine's ``token_scores``)."""
        names = [f"{name} item {item.pair_id}" for item in eval_set.items]
        return self._scorer(self.runner.model, self.runner.tokenizer).token_scores(eval_set.requests, names=names, desc=name)

    def _extraction(self) -> dict[str, np.ndarray]:
        forget = self.sets["forget"]
        targets = forget.targets()
        generated = self._generate(forget.contexts(), [len(t) for t in targets])
        return {"verbatim": verbatim_match(generated, targets), "prefix_match": prefix_match(generated, targets)}

    def _generate(self, contexts: list[list[int]], lengths: list[int]) -> list[list[int]]:
        """Greedy continuations, items sharded over the processes."""
        accelerator = self.runner.accelerator
        rank, world = accelerator.process_index, accelerator.num_processes
        mine = list(range(rank, len(contexts), world))
        model = self.runner.model
        out = greedy_generate(
            model, [contexts[i] for i in mine], [lengths[i] for i in mine], pad_id=self.runner.tokenizer.pad_token_id,
            eos_id=unwrap_model(model).config.eos_token_id, batch_size=self.config.eval.batch_size,
        )
        found = dict(zip(mine, out))
        merged = _gathered(found) if world > 1 else found
        return [merged[i] for i in range(len(contexts))]

    def _reference_losses(self) -> dict[str, list[float]] | None:
        reference = self.config.mia.reference
        if reference == "none" or "ref" not in self.config.mia.attacks:
            return None
        if reference == "original":
            return self.selection.state["start_losses"]
        if self.selection.state["reference_losses"] is None:
            self.selection.state["reference_losses"] = self._reference_model_losses(reference)
        return self.selection.state["reference_losses"]

    def _reference_model_losses(self, spec: ModelSpec) -> dict[str, list[float]]:
        """Mean token NLL of the forget and holdout items under a separate reference model (its own tokenizer)."""
        model, tokenizer = load_model(spec, self.runner.accelerator.device)
        scorer = self._scorer(model, tokenizer)
        out = {}
        for name in ("forget", "holdout"):
            scores = scorer.loglikelihood(self.sets[name].requests, desc=f"reference model: {name}")
            out[name] = [-s.logprob / s.n_tokens for s in scores]
        del scorer, model
        return out

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
                row = {"stage": "unlearn", "step": step, "split": name, "item_id": item.pair_id}
                row.update({key: float(values[i]) for key, values in columns.items()})
                rows.append(row)
        return rows

    @staticmethod
    def _row(step: int, key: str, value: float) -> dict[str, Any]:
        split, metric = key.split("/", 1)
        return {"stage": "unlearn", "step": step, "split": split, "metric": metric, "value": value}


def _gathered(found: dict[int, Any]) -> dict[int, Any]:
    """Every process's ``{index: value}`` shard, merged (on every process)."""
    from accelerate.utils import gather_object

    merged: dict[int, Any] = {}
    for part in gather_object([found]):
        merged.update(part)
    return merged
