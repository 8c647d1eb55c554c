"""Negative Preference Optimization (Zhang, Lin, Bai & Mei 2024, "Negative Preference Optimization:
From Catastrophic Collapse to Effective Unlearning", arXiv 2404.05868)::

    L_NPO = −(2/β) · E_(x,y)∈forget [ log σ( −β · (log πθ(y|x) − log πref(y|x)) ) ]  (+ λ · R(retain))

``log π(y|x)`` is the *summed* log-probability of the answer tokens (a sequence log-likelihood, as in
the paper); ``πref`` is the frozen model before unlearning; E is the mean over the batch's items.
Sign convention: L is minimised. It decreases as ``log πθ(y|x)`` falls below ``log πref(y|x)``; at
θ = ref it equals ``(2/β)·log 2`` and its gradient is the gradient-ascent direction scaled by 1
(``∂L/∂ log πθ = 2 σ(β·Δ)`` with ``Δ = log πθ − log πref``). As β → 0 it tends to gradient ascent on
the summed NLL. Options: ``beta`` (β > 0, default 0.1), ``retain_weight`` (λ, default 0: the paper's
plain NPO; > 0: NPO+RT), ``retain_loss`` (``nll`` or ``kl``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from forgetlab.methods.base import METHODS, Batch, Method, sequence_logprobs
from forgetlab.methods.retain import RetainingMethod


def npo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """``−(2/β) · mean log σ(−β (logp − ref_logp))`` over items (sequence log-probabilities)."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()


def reference_logprobs(method: Method, batch: Batch) -> torch.Tensor:
    """Summed answer log-probabilities of each row under the method's frozen reference model."""
    if method.reference is None:
        raise ValueError(f"method {method.name} needs the reference model (attach_reference)")
    with torch.no_grad():
        return sequence_logprobs(method.reference, batch)[0]


@METHODS.register("npo")
class NPO(RetainingMethod):
    """NPO against the frozen original model; options ``beta``, ``retain_weight``, ``retain_loss``."""

    name = "npo"
    ascent = True
    needs_reference = True

    def __init__(self, loss: str = "answer", reduction: str = "mean", *, beta: float = 0.1, **options: Any) -> None:
        super().__init__(loss, reduction, **options)
        if beta <= 0:
            raise ValueError(f"method npo: beta must be > 0, got {beta}")
        self.beta = float(beta)

    def loss(self, model: torch.nn.Module, batch: Batch, retain: Batch | None = None) -> torch.Tensor:
        logp = sequence_logprobs(model, batch)[0]
        return npo_loss(logp, reference_logprobs(self, batch), self.beta) + self.retain_term(model, retain)
