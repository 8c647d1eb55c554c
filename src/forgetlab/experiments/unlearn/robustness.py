"""What the recovery attacks of an ``unlearn`` run attack (:mod:`forgetlab.experiments.robustness` runs
them): the selected model (the *forgotten* one), the model before unlearning (*original*) and — when the
run has a ``learn`` stage — the model before it, which never saw the forget set (*never_learned*, the
control), each measured as at an evaluation; relearning trains on ``sets.relearn`` or ``sets.benign``.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from forgetlab.attacks import AttackContext
from forgetlab.data.types import Pair
from forgetlab.experiments.unlearn.config import SET_ORDER
from forgetlab.experiments.unlearn.data import training_items
from forgetlab.experiments.unlearn.evaluate import EvalSet, EvaluatedRunner, Evaluator, Selection
from forgetlab.experiments.robustness import Target, membership_splits
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

#: The numbers recovery is computed for (the report's figures draw the first four): the forget items' own
#: values (with paired bootstrap intervals) and the set-level MIA AUCs.
HEADLINE = ("forget/loss", "forget/verbatim", "mia/loss_auc", "mia/min_k_pp_auc", "forget/token_acc",
            "forget/prefix_match", "mia/zlib_auc", "mia/min_k_auc", "mia/ref_auc")
RELEARN_SETS = {"disjoint": "relearn", "benign": "benign"}  # the relearn attack's data → the set it trains on


class Robustness:
    """The attacks' target in an unlearn run: its forgotten, original and control models."""

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

    def _selection(self) -> Selection:
        """The unlearning stage's selection, as it saved it."""
        return Selection(self.config.select, self.runner.run_.path("stages", "unlearn", "selection.json"))

    def _forgotten(self) -> torch.nn.Module:
        model = self._fresh(learned=False)
        best = self._selection().best()
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
            self._evaluator = Evaluator(self.runner, sets, self._selection())
        return self._evaluator

    def target(self) -> Target:
        """The models, the measurement (the unlearning stage's metrics) and the attacks' data."""
        return Target(roles=self.roles(), measure=lambda model: self.evaluator().measure(model), context=self._context,
                      metrics=HEADLINE)

    def _context(self) -> AttackContext:
        tokenizer = self.runner.tokenizer
        max_length = resolve_max_length(self.runner.model.config, tokenizer)
        relearn = {
            kind: training_items(tokenizer, self.sets[name], None, self.config.seed, max_length)
            for kind, name in RELEARN_SETS.items() if name in self.sets
        }
        probes = membership_splits(self.sets["forget"], self.sets.get("holdout", []))  # members vs never-trained holdout
        return AttackContext(tokenizer=tokenizer, seed=self.config.seed, accelerator=self.runner.accelerator,
                             relearn_items=relearn, forget_requests=[p.request() for p in self.sets["forget"]],
                             probe_splits=probes, score_tokens=self.config.compute.score_tokens)
