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


import torch

from forgetlab.methods.base import METHODS, Batch, token_nll
from forgetlab.methods.retain import RetainingMethod


@METHODS.register("grad_diff")
class GradDiff(RetainingMethod):
    """``−NLL(forget) + λ · (NLL | KL)(retain)``; options ``retain_weight`` (λ, default 1), ``retain_loss``."""

    name = "grad_diff"
    ascent = True
    needs_retain = True
    default_retain_weight = 1.0

    def loss(self, model: torch.nn.Module, batch: Batch, retain: Batch | None = None) -> torch.Tensor:
        return -token_nll(model, batch, self.reduction) + self.retain_term(model, retain)
