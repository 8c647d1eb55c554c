"""SimNPO (Fan, Liu, Lin, Jia, Zhang, Mei & Liu 2024, "Simplicity Prevails: Rethinking Negative
Preference Optimization for LLM Unlearning", arXiv 2410.07163)::

    L_SimNPO = −(2/β) · E_(x,y)∈forget [ log σ( −(β/|y|) · log πθ(y|x) − γ ) ]  (+ λ · R(retain))

No reference model: the length-normalised log-likelihood ``log πθ(y|x)/|y|`` (``|y|`` = answer
tokens) replaces NPO's reference ratio, and γ ≥ 0 is a reward margin (outside the β factor, as in the
paper; OpenUnlearning writes ``β·(NLL/|y| − δ)``, i.e. γ = β·δ). Sign convention: L is minimised and
falls as the per-token log-likelihood of the forget answer falls. Options: ``beta`` (default 2.5),
``gamma`` (default 0), ``retain_weight`` (λ, default 0), ``retain_loss`` (``nll`` or ``kl``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from forgetlab.methods.base import METHODS, Batch, sequence_logprobs
from forgetlab.methods.retain import RetainingMethod


def simnpo_loss(logp: torch.Tensor, n_tokens: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """``−(2/β) · mean log σ(−(β/|y|)·logp − γ)`` over items."""
    return -(2.0 / beta) * F.logsigmoid(-(beta / n_tokens.clamp(min=1)) * logp - gamma).mean()


@METHODS.register("simnpo")
class SimNPO(RetainingMethod):
    """Reference-free, length-normalised NPO; options ``beta``, ``gamma``, ``retain_weight``, ``retain_loss``."""

    name = "simnpo"
    ascent = True

    def __init__(self, loss: str = "answer", reduction: str = "mean", *, beta: float = 2.5, gamma: float = 0.0,
                 **options: Any) -> None:
        super().__init__(loss, reduction, **options)
        if beta <= 0:
            raise ValueError(f"method simnpo: beta must be > 0, got {beta}")
        self.beta, self.gamma = float(beta), float(gamma)

    def loss(self, model: torch.nn.Module, batch: Batch, retain: Batch | None = None) -> torch.Tensor:
        logp, n_tokens = sequence_logprobs(model, batch)
        return simnpo_loss(logp, n_tokens, self.beta, self.gamma) + self.retain_term(model, retain)
