"""The retain term every unlearning method can add to its loss (Liu, Mireshghallah et al. 2022; TOFU's
"grad_diff" and "KL" baselines, Maini et al. 2024)::

    λ · R(retain),   R = NLL(retain)  (``retain_loss: nll``)   or   KL(p_ref ‖ p_θ)(retain)  (``kl``)

λ = ``retain_weight`` (0: no term, no retain batches). The KL form needs the frozen original model.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch

from forgetlab.methods.base import Batch, Method, labelled_logits, per_row, token_nll

RetainLoss = Literal["nll", "kl"]


def configure_retain(method: Method, weight: float, kind: str) -> None:
    """Set a method's retain options and, per instance, whether it needs retain batches and a reference.

    ``weight`` is λ (0 disables the term); ``kind`` is ``nll`` or ``kl`` (the latter needs the reference).
    """
    if kind not in ("nll", "kl"):
        raise ValueError(f"method {method.name}: retain_loss must be 'nll' or 'kl', got {kind!r}")
    if weight < 0:
        raise ValueError(f"method {method.name}: retain_weight must be >= 0, got {weight}")
    method.retain_weight = float(weight)
    method.retain_kind = kind
    method.needs_retain = weight > 0
    method.needs_reference = type(method).needs_reference or (weight > 0 and kind == "kl")


def kl_to_reference(model: torch.nn.Module, reference: torch.nn.Module, batch: Batch, reduction: str = "mean") -> torch.Tensor:
    """``KL(p_ref ‖ p_θ)`` of the next-token distributions at the labelled positions.

    Per position ``t``: ``Σ_v p_ref(v|x<t) (log p_ref(v|x<t) − log p_θ(v|x<t))``; ``mean``: averaged over
    the batch's labelled positions, ``sum``: summed per sequence and averaged over sequences
    (the same reductions as :func:`forgetlab.methods.base.token_nll`).
    """
    mask = batch.labels[:, 1:] != -100
    logp = torch.log_softmax(labelled_logits(model, batch).float(), dim=-1)
    with torch.no_grad():
        ref_logp = torch.log_softmax(labelled_logits(reference, batch).float(), dim=-1)
    per_position = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    if reduction == "sum":
        return per_row(batch, mask, per_position).sum(-1).mean()
    return per_position.sum() / mask.sum().clamp(min=1)


def retain_term(method: Method, model: torch.nn.Module, retain: Batch | None) -> torch.Tensor:
    """``λ · R(retain)`` for a method set up by :func:`configure_retain` (0 when λ = 0)."""
    weight = method.retain_weight
    if weight == 0:
        return torch.zeros((), device=next(model.parameters()).device)
    if retain is None:
        raise ValueError(f"method {method.name}: retain_weight > 0 but no retain batch was given")
    if method.retain_kind == "kl":
        if method.reference is None:
            raise ValueError(f"method {method.name}: retain_loss 'kl' needs the reference model (attach_reference)")
        return weight * kl_to_reference(model, method.reference, retain, method.reduction)
    return weight * token_nll(model, retain, method.reduction)


class RetainingMethod(Method):
    """An unlearning method that adds the retain term ``λ · R(retain)`` to its loss.

    Options ``retain_weight`` (λ; default the class's ``default_retain_weight``) and ``retain_loss``
    (``nll`` or ``kl``); subclasses take their own options and pass the rest on.
    """

    supported_losses = ("answer", "full")
    #: λ when the recipe does not set ``retain_weight`` (0: no retain batches unless asked).
    default_retain_weight: ClassVar[float] = 0.0

    def __init__(self, loss: str = "answer", reduction: str = "mean", *, retain_weight: float | None = None,
                 retain_loss: RetainLoss = "nll", **options: Any) -> None:
        super().__init__(loss, reduction, **options)
        configure_retain(self, self.default_retain_weight if retain_weight is None else retain_weight, retain_loss)

    def retain_term(self, model: torch.nn.Module, retain: Batch | None) -> torch.Tensor:
        """``λ · R(retain)`` (:func:`retain_term`)."""
        return retain_term(self, model, retain)
