"""Relearning: fine-tune the forgotten model for a few steps on data that is NOT the forget set (Deeb & Roger
2024, arXiv 2410.08827: other facts of the same kind; Hu et al. 2024, "Jogging the memory", arXiv 2406.13356:
loosely related benign text). If the metrics of the forget set come back within a few steps, the knowledge
was hidden, not removed. The same attack on a control model (one that never learned the forget set) shows
how much the relearning data teaches by itself; the experiment reports both.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from forgetlab.attacks.base import ATTACKS, Attack, AttackContext, Measure, Results
from forgetlab.config import OptimSpec
from forgetlab.methods import METHODS
from forgetlab.models import unwrap_model
from forgetlab.train import train_items

DATA = ("disjoint", "benign")


@ATTACKS.register("relearn")
class Relearn(Attack):
    """Fine-tune on ``data`` (``disjoint``: other items of the forgotten kind; ``benign``: unrelated text) and
    measure after each of ``steps`` optimizer steps; variants ``<data>_step<k>``."""

    name = "relearn"
    controls = ("never_learned",)  # relearning on a model that never saw the forget set: what the data teaches

    def __init__(self, data: str = "disjoint", steps: list[int] | tuple[int, ...] = (1, 2, 5, 10, 20), lr: float = 1e-5,
                 batch_size: int = 8) -> None:
        if data not in DATA:
            raise ValueError(f"attack relearn: data must be one of {list(DATA)}, got {data!r}")
        if not steps or any(int(k) < 1 for k in steps):
            raise ValueError(f"attack relearn: steps must be positive step counts, got {list(steps)}")
        if lr < 0:
            raise ValueError(f"attack relearn: lr must be >= 0, got {lr}")
        self.data, self.steps, self.lr, self.batch_size = data, sorted({int(k) for k in steps}), float(lr), int(batch_size)

    def spec(self) -> OptimSpec:
        """The fine-tuning: plain cross-entropy on the targets, AdamW at ``lr``, no schedule, ``max(steps)`` steps."""
        spec = OptimSpec(method="finetune", batch_size=self.batch_size, max_steps=max(self.steps), eval_every=1, max_grad_norm=1.0)
        return spec.model_copy(update={"lr": self.lr})  # lr 0 (a no-op attack, for checks) is below the recipe bound

    def run(self, model: torch.nn.Module, context: AttackContext, measure: Measure) -> Results:
        items = context.relearn_items.get(self.data)
        if not items:
            raise ValueError(f"attack relearn: no {self.data!r} items to relearn on (the experiment gives none)")
        attacked = copy.deepcopy(unwrap_model(model))
        results: Results = {}

        def evaluate(step: int) -> list[dict[str, Any]]:
            if step in self.steps:
                results[f"{self.data}_step{step}"] = measure(attacked)
            return []

        train_items(attacked, items, METHODS.get("finetune")(), self.spec(), pad_id=context.tokenizer.pad_token_id,
                    seed=context.seed, accelerator=context.accelerator, evaluate=evaluate, desc=f"relearn ({self.data})")
        return results
