"""Representation Misdirection for Unlearning (RMU; Li et al. 2024, "The WMDP Benchmark: Measuring
and Reducing Malicious Use With Unlearning", arXiv 2403.03218, Sec. 5)::

    L = mean_t ‖h_θ^ℓ(x_forget)_t − c·u‖² / d
        + α · mean_t ‖h_θ^ℓ(x_retain)_t − h_frozen^ℓ(x_retain)_t‖² / d

``h^ℓ`` is the output of decoder layer ``ℓ`` (0-based, WMDP's ``layer_id``; Hugging Face's
``hidden_states[ℓ + 1]``), ``d`` the hidden size, ``u`` a fixed unit vector drawn uniformly from
``[0, 1)^d`` and normalised (seeded by ``seed``; WMDP's ``torch.rand`` control vector), ``c`` the
steering coefficient and ``h_frozen`` the frozen model before unlearning. Both terms are mean squared
errors (``F.mse_loss``) over the *labelled* token positions of each batch (answer tokens, or the
whole sequence with ``loss: full``) — WMDP averages over every position of its padded batch.
Sign convention: plain descent: both terms are minimised. WMDP also updates only the MLPs of layers
``ℓ−2..ℓ``; restrict the trained parameters with the experiment's ``forget.trainable`` for that.
Options: ``layer`` (default 7), ``steering_coeff`` (c, default 6.5), ``alpha`` (α, default 100),
``seed`` (default 0).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from forgetlab.methods.base import METHODS, Batch, Method


def layer_activations(model: torch.nn.Module, batch: Batch, layer: int) -> torch.Tensor:
    """Outputs of decoder layer ``layer`` at the labelled token positions: ``(n_tokens, hidden)``."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    states = out.hidden_states
    if not 0 <= layer < len(states) - 1:
        raise ValueError(f"method rmu: layer {layer} out of range for a model with {len(states) - 1} layers")
    return states[layer + 1][batch.labels != -100].float()


def control_vector(hidden_size: int, seed: int, steering_coeff: float) -> torch.Tensor:
    """``c · u`` with ``u = r / ‖r‖``, ``r ~ U[0, 1)^d`` from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    r = torch.rand(hidden_size, generator=generator, dtype=torch.float32)
    return steering_coeff * r / r.norm()


@METHODS.register("rmu")
class RMU(Method):
    """Steer one layer's forget activations to ``c·u``, keep its retain activations.

    Options ``layer``, ``steering_coeff``, ``alpha``, ``seed``.
    """

    name = "rmu"
    needs_retain = True
    needs_reference = True

    def __init__(self, loss: str = "answer", reduction: str = "mean", *, layer: int = 7, steering_coeff: float = 6.5,
                 alpha: float = 100.0, seed: int = 0, **options: Any) -> None:
        super().__init__(loss, reduction, **options)
        if loss == "choice":
            raise ValueError("method rmu: the 'choice' loss is not supported (use answer or full)")
        if layer < 0 or alpha < 0:
            raise ValueError(f"method rmu: layer and alpha must be >= 0, got layer={layer}, alpha={alpha}")
        self.layer, self.steering_coeff, self.alpha, self.seed = int(layer), float(steering_coeff), float(alpha), int(seed)

    def forget_term(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """``MSE(h_θ^ℓ(forget), c·u)``."""
        acts = layer_activations(model, batch, self.layer)
        target = control_vector(acts.shape[-1], self.seed, self.steering_coeff).to(acts.device)
        return F.mse_loss(acts, target.expand_as(acts))

    def retain_term(self, model: torch.nn.Module, retain: Batch) -> torch.Tensor:
        """``MSE(h_θ^ℓ(retain), h_frozen^ℓ(retain))``."""
        if self.reference is None:
            raise ValueError("method rmu needs the frozen model (attach_reference)")
        acts = layer_activations(model, retain, self.layer)
        with torch.no_grad():
            frozen = layer_activations(self.reference, retain, self.layer)
        return F.mse_loss(acts, frozen)

    def loss(self, model: torch.nn.Module, batch: Batch, retain: Batch | None = None) -> torch.Tensor:
        if retain is None:
            raise ValueError("method rmu: no retain batch was given")
        return self.forget_term(model, batch) + self.alpha * self.retain_term(model, retain)
