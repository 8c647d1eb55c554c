"""IDK preference optimisation: prefer a refusal over the original answer, DPO-style.

Direct Preference Optimization (Rafailov et al. 2023) with the refusal as the preferred answer ``y_w``
and the original forget answer as the dispreferred ``y_l``, against the frozen original model
(the TOFU "IDK + DPO" baseline, Maini et al. 2024)::

    L = −E[ log σ( β · ((log πθ(y_w|x) − log πref(y_w|x)) − (log πθ(y_l|x) − log πref(y_l|x))) ) ]
        + λ · R(retain)

with summed answer log-probabilities. (OpenUnlearning multiplies the first term by 2/β; we keep the
original DPO scale.) Sign convention: L is minimised; it falls as the refusal gains and the original
answer loses likelihood relative to the reference; at θ = ref it is ``log 2``.

Batches hold each item's two continuations as consecutive rows (the ``choice`` collation: row
``2i`` the original answer, ``2i+1`` the refusal, ``gold`` = 1 marks the preferred row), so this
method requires ``loss: choice``. Options: ``beta`` (default 0.1), ``refusals``, ``retain_weight``
(λ, default 1), ``retain_loss``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from forgetlab.data.types import MCDoc
from forgetlab.methods.base import METHODS, Batch, sequence_logprobs
from forgetlab.methods.retain import RetainingMethod
from forgetlab.methods.idk import RefusalMixin, pick_refusal
from forgetlab.methods.npo import reference_logprobs


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float) -> torch.Tensor:
    """``−mean log σ(β·((chosen − ref_chosen) − (rejected − ref_rejected)))`` over items."""
    return -F.logsigmoid(beta * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()


def split_pairs(values: torch.Tensor, gold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row values of a two-choice batch → (preferred, dispreferred) per item."""
    pairs = values.view(-1, 2)
    index = torch.arange(pairs.shape[0], device=pairs.device)
    gold = gold.to(pairs.device)
    return pairs[index, gold], pairs[index, 1 - gold]


@METHODS.register("idk_dpo")
class IDKDPO(RefusalMixin, RetainingMethod):
    """DPO with the refusal preferred over the original answer; options ``beta``, ``refusals``, retain."""

    name = "idk_dpo"
    needs_reference = True
    needs_retain = True
    pairwise = True
    supported_losses = ("choice",)
    default_retain_weight = 1.0

    def __init__(self, loss: str = "choice", reduction: str = "mean", *, beta: float = 0.1,
                 refusals: Sequence[str] | None = None, **options: Any) -> None:
        super().__init__(loss, reduction, **options)
        if beta <= 0:
            raise ValueError(f"method idk_dpo: beta must be > 0, got {beta}")
        self.beta = float(beta)
        self._set_refusals(refusals)

    def pair_targets(self, item_id: str, target: str, seed: int) -> tuple[list[str], int]:
        """``[original answer, refusal]``, the refusal (index 1) preferred."""
        return [target, pick_refusal(self.refusals, seed, item_id, target)], 1

    def relabel(self, docs: Sequence[MCDoc], seed: int) -> list[MCDoc]:
        """Two-choice items (gold answer, refusal) with the refusal as the preferred choice."""
        out = []
        for doc in docs:
            context, answer = doc.request(doc.gold)
            refusal = pick_refusal(self.refusals, seed, f"{doc.task}/{doc.doc_id}", answer)
            out.append(MCDoc(doc.task, doc.doc_id, (context, context), (answer, refusal), 1))
        return out

    def loss(self, model: torch.nn.Module, batch: Batch, retain: Batch | None = None) -> torch.Tensor:
        if batch.n_choices != 2:
            raise ValueError(f"method idk_dpo: expected 2 rows per item, got {batch.n_choices} (use loss: choice)")
        chosen, rejected = split_pairs(sequence_logprobs(model, batch)[0], batch.gold)
        ref_chosen, ref_rejected = split_pairs(reference_logprobs(self, batch), batch.gold)
        return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, self.beta) + self.retain_term(model, retain)
