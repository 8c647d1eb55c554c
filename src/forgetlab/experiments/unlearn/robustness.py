"""Did it really forget? The recovery attacks of an ``unlearn`` run (``attacks:`` in the recipe).

After unlearning, the selected model (the *forgotten* one), the model before unlearning (*original*) and —
when the run has a ``learn`` stage — the model before it, which never saw the forget set (*never_learned*,
the control), are measured as at an evaluation; then each attack runs on the forgotten model and on its
controls (quantization: the original model; relearning: the never-learned one). Stages
``robustness/models`` and ``robustness/<i>-<attack>`` are saved like the others, so a killed run resumes
at the first unfinished attack (an attack recomputes from its start, with the same numbers).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import torch

from forgetlab.attacks import AttackContext, AttackSpec, build_attack
from forgetlab.data.types import Pair
from forgetlab.experiments.unlearn.config import SET_ORDER
from forgetlab.experiments.unlearn.data import training_items
from forgetlab.experiments.unlearn.evaluate import EvalSet, EvaluatedRunner, Evaluator, Selection
from forgetlab.metrics.recovery import recovery
from forgetlab.scoring import resolve_max_length
from forgetlab.store import Run



class AttackedRunner(EvaluatedRunner, Protocol):
    """What the attacks use of the runner (:class:`forgetlab.experiments.unlearn.run.UnlearnRunner`)."""

    run_: Run

    def load(self, learned: bool) -> None:
        """Load the configured model (with the learned weights if asked) as ``model``."""

    def load_weights(self, model: torch.nn.Module, *parts: str) -> torch.nn.Module:
        """Load kept weights into ``model``."""

    def eval_set(self, items: list[Pair], max_length: int) -> EvalSet:
        """Items encoded for scoring."""

#: The numbers recovery is computed for: per forget item (with paired bootstrap intervals) or for the set.
ITEM_METRICS = ("forget/loss", "forget/token_acc", "forget/verbatim", "forget/prefix_match")
SET_METRICS = ("mia/loss_auc", "mia/min_k_pp_auc", "mia/zlib_auc", "mia/min_k_auc", "mia/ref_auc")
RELEARN_SETS = {"disjoint": "relearn", "benign": "benign"}  # the relearn attack's data → the set it trains on


def attack_label(index: int, spec: AttackSpec) -> str:
    """The stage key of the ``index``-th attack of a recipe."""
    return f"{index}-{spec.name}"


class Robustness:
    """Runs the attacks of an unlearn run on its forgotten, original and control models."""

    def __init__(self, runner: AttackedRunner, sets: dict[str, list[Pair]]) -> None:
        self.runner, self.sets, self.config = runner, sets, runner.config
        self._evaluator: Evaluator | None = None

    def roles(self) -> dict[str, Callable[[], torch.nn.Module]]:
        """How to load each model attacked: forgotten (selected step, else final), original, never_learned."""
        roles = {"forgotten": self._forgotten, "original": lambda: self._fresh(learned=self.config.learn is not None)}
        if self.config.learn is not None:
            roles["never_learned"] = lambda: self._fresh(learned=False)
        return roles

    def _fresh(self, learned: bool) -> torch.nn.Module:
        self.runner.load(learned=learned)
        return self.runner.model.eval()

    def _forgotten(self) -> torch.nn.Module:
        model = self._fresh(learned=False)
        selection = Selection(self.config.select, self.runner.run_.path("stages", "unlearn", "selection.json"))
        best = selection.best()
        name = f"selected-step{best['step']}" if best is not None else "final"
        return self.runner.load_weights(model, "unlearn", name)

    def evaluator(self) -> Evaluator:
        """The unlearning stage's evaluator (same sets, same MIA reference), to measure any model."""
        if self._evaluator is None:
            self.runner.load(learned=False)
            max_length = resolve_max_length(self.runner.model.config, self.runner.tokenizer)
            retain_size = self.config.eval.retain_size
            sets = {name: self.runner.eval_set(items[:retain_size] if name == "retain" else items, max_length)
                    for name, items in self.sets.items() if name in SET_ORDER}
            selection = Selection(self.config.select, self.runner.run_.path("stages", "unlearn", "selection.json"))
            self._evaluator = Evaluator(self.runner, sets, selection)
        return self._evaluator

    def models_stage(self) -> dict[str, Any]:
        """Every role's measurement before any attack."""
        measure = self.evaluator().measure
        return {"measured": {role: measure(load()) for role, load in self.roles().items()}}

    def attack_stage(self, spec: AttackSpec) -> dict[str, Any]:
        """One attack on the forgotten model and on its controls (those this run has)."""
        attack, roles = build_attack(spec), self.roles()
        measure, context = self.evaluator().measure, self._context()
        targets = ["forgotten", *(role for role in attack.controls if role in roles)]
        return {"attack": spec.model_dump(mode="json"), "results": {role: attack.run(roles[role](), context, measure) for role in targets}}

    def _context(self) -> AttackContext:
        tokenizer = self.runner.tokenizer
        max_length = resolve_max_length(self.runner.model.config, tokenizer)
        relearn = {
            kind: training_items(tokenizer, self.sets[name], None, self.config.seed, max_length)
            for kind, name in RELEARN_SETS.items() if name in self.sets
        }
        return AttackContext(tokenizer=tokenizer, seed=self.config.seed, accelerator=self.runner.accelerator,
                             relearn_items=relearn, forget_requests=[p.request() for p in self.sets["forget"]])


# --- summary (pure) ------------------------------------------------------------------------------------


def robustness_summary(models: dict[str, Any], attacks: dict[str, dict[str, Any]], n_resamples: int, seed: int) -> dict[str, Any]:
    """``summary.robustness``: per attack and variant, each headline metric's recovery with its raw values,
    intervals and the controls; read-outs (no metrics) as their values per role."""
    measured = models["measured"]
    return {
        "models": {role: {k: v for k, v in m["metrics"].items() if k in (*ITEM_METRICS, *SET_METRICS)} for role, m in measured.items()},
        "attacks": {label: _attack_summary(payload, measured, n_resamples, seed) for label, payload in attacks.items()},
    }


def _attack_summary(payload: dict[str, Any], measured: dict[str, Any], n_resamples: int, seed: int) -> dict[str, Any]:
    results = payload["results"]
    out: dict[str, Any] = {"name": payload["attack"]["name"], "options": payload["attack"]["options"], "variants": {}}
    for variant, attacked in results["forgotten"].items():
        if "metrics" not in attacked:  # a read-out: its values per role
            out["variants"][variant] = {role: results[role][variant] for role in results}
            continue
        controls = {role: results[role][variant] for role in results if role != "forgotten"}
        out["variants"][variant] = _variant_summary(attacked, controls, measured, n_resamples, seed)
    return out


def _variant_summary(attacked: dict[str, Any], controls: dict[str, dict[str, Any]], measured: dict[str, Any],
                     n_resamples: int, seed: int) -> dict[str, Any]:
    forgotten, original = measured["forgotten"], measured["original"]
    out = {}
    for key in (*ITEM_METRICS, *SET_METRICS):
        if key not in attacked["metrics"] or key not in original["metrics"]:
            continue
        values = [m["metrics"][key] for m in (attacked, forgotten, original)]
        items = tuple(m["items"][key] for m in (attacked, forgotten, original)) if key in attacked.get("items", {}) else None
        row = recovery(*values, items=items, n_resamples=n_resamples, seed=seed)
        for role, result in controls.items():
            before, after = measured[role]["metrics"][key], result["metrics"][key]
            row[f"control_{role}"] = {"before": before, "attacked": after, "difference": after - before}
        out[key] = row
    return out
