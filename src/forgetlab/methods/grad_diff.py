"""Gradient difference: ascend the loss on the forget batch, descend a retain loss.

Liu, Mireshghallah et al. 2022 ("Continual Learning and Private Unlearning"); the TOFU baselines
"grad_diff" and "KL" (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs")::

    L = -NLL(forget) + λ · R(retain)

with ``R`` the retain NLL (``retain_loss: nll``, default) or the KL divergence from the frozen
original model ``KL(p_ref ‖ p_θ)`` on the retain batch (``retain_loss: kl``; loads the reference).
Sign convention: the returned value is minimised, so its forget part is the *negated* NLL.

The retain term is :mod:`forgetlab.methods.retain` (every unlearning method can add it).
"""

from __future__ import annotations

from typing import Any

import torch

from forgetlab.methods.base import METHODS, Batch, Method, token_nll
from forgetlab.methods.retain import RetainLoss, configure_retain, retain_term


@METHODS.register("grad_diff")
class GradDiff(Method):
    """``−NLL(forget) + λ · (NLL | KL)(retain)``; options ``retain_weight`` (λ, default 1), ``retain_loss``."""

    name = "grad_diff"
    ascent = True
    needs_retain = True
    supported_losses = ("answer", "full")

    def __init__(self, loss: str = "answer", reduction: str = "mean", *, retain_weight: float = 1.0,
                 retain_loss: RetainLoss = "nll", **options: Any) -> None:
        super().__init__(loss, reduction, **options)
        configure_retain(self, retain_weight, retain_loss)

    def loss(self, model: torch.nn.Module, batch: Batch, retain: Batch | None = None) -> torch.Tensor:
        return -token_nll(model, batch, self.reduction) + retain_term(self, model, retain)
