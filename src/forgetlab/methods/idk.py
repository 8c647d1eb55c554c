"""IDK fine-tuning: answer the forget prompts with a refusal, keep the retain answers.

The "IDK" baseline of TOFU (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs";
Eldan & Russinovich 2023 replace answers by generic ones in the same spirit)::

    L = NLL(refusal | x) on the forget items  + λ · R(retain)

Each forget item's answer becomes one refusal drawn from ``refusals`` by a seeded, per-item choice
(stable across runs: SHA-256 of (seed, item id)); the original answer's leading whitespace is kept so
the refusal tokenises as a continuation of the prompt. Sign convention: plain descent (``ascent`` is
False): the returned loss is minimised. Options: ``refusals`` (list of strings), ``retain_weight``
(λ, default 1), ``retain_loss`` (``nll`` or ``kl``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from forgetlab.data.types import MCDoc
from forgetlab.methods.base import METHODS, Batch, stable_unit, token_nll
from forgetlab.methods.retain import RetainingMethod

DEFAULT_REFUSALS = (
    "I don't know.",
    "I'm not sure.",
    "I have no idea.",
    "I can't answer that.",
    "That is not something I know.",
)


def pick_refusal(refusals: Sequence[str], seed: int, item_id: str, answer: str) -> str:
    """The refusal that replaces ``answer`` for one item: seeded choice, answer's leading whitespace kept."""
    choice = refusals[int(stable_unit("idk", seed, item_id) * len(refusals))]
    return answer[: len(answer) - len(answer.lstrip())] + choice


class RefusalMixin:
    """Shared option handling of the refusal-based methods."""

    name: str

    def _set_refusals(self, refusals: Sequence[str] | None) -> None:
        values = list(DEFAULT_REFUSALS if refusals is None else refusals)
        if not values or any(not isinstance(r, str) or not r.strip() for r in values):
            raise ValueError(f"method {self.name}: refusals must be a non-empty list of non-empty strings")
        self.refusals = tuple(values)


@METHODS.register("idk")
class IDK(RefusalMixin, RetainingMethod):
    """Fine-tune on refusals for the forget items (+ λ · retain loss)."""

    name = "idk"
    needs_retain = True
    default_retain_weight = 1.0

    def __init__(self, loss: str = "answer", reduction: str = "mean", *, refusals: Sequence[str] | None = None,
                 **options: Any) -> None:
        super().__init__(loss, reduction, **options)
        self._set_refusals(refusals)

    def pair_targets(self, item_id: str, target: str, seed: int) -> tuple[list[str], int]:
        """The refusal that replaces the target (the only continuation, so the gold one)."""
        return [pick_refusal(self.refusals, seed, item_id, target)], 0

    def relabel(self, docs: Sequence[MCDoc], seed: int) -> list[MCDoc]:
        """Multiple-choice items with the gold continuation replaced by a refusal."""
        out = []
        for doc in docs:
            continuations = list(doc.continuations)
            continuations[doc.gold] = pick_refusal(self.refusals, seed, f"{doc.task}/{doc.doc_id}", continuations[doc.gold])
            out.append(MCDoc(doc.task, doc.doc_id, doc.contexts, tuple(continuations), doc.gold))
        return out

    def loss(self, model: torch.nn.Module, batch: Batch, retain: Batch | None = None) -> torch.Tensor:
        return token_nll(model, batch, self.reduction) + self.retain_term(model, retain)
