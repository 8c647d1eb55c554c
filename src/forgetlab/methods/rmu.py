"""Representation Misdirection for Unlearning (RMU; Li et al. 2024, "The WMDP Benchmark: Measuring
and Reducing Malicious Use With Unlearning", arXiv 2403.03218, Sec. 5)::

    L = mean_t ‖h_θ^ℓ(x_forget)_t − c·u‖² / d
        + α · mean_t ‖h_θ^ℓ(x_retain)_t − h_frozen^ℓ(x_retain)_t‖² / d

``h^ℓ`` is the output of decoder layer ``ℓ`` (0-based, WMDP's ``layer_id``), read with a forward hook
on that layer as WMDP's ``forward_with_cache`` and OpenUnlearning's RMU do. It equals Hugging Face's
``hidden_states[ℓ + 1]`` except for the last layer, whose ``hidden_states`` entry has the final norm
applied. ``d`` is the hidden size, ``u`` a fixed unit vector drawn uniformly from ``[0, 1)^d`` and
normalised (seeded by ``seed``; WMDP's ``torch.rand`` control vector), ``c`` the steering coefficient
and ``h_frozen`` the frozen model before unlearning. Both terms are mean squared errors
(``F.mse_loss``) over the *labelled* token positions of each batch (answer tokens, or the whole
sequence with ``loss: full``) — WMDP averages over every position of its padded batch.
Sign convention: plain descent: both terms are minimised.

Trained parameters: as published (WMDP's ``layer_ids`` ℓ−2..ℓ with ``param_ids`` 6; OpenUnlearning's
``model.layers.(5|6|7).mlp.down_proj.weight``), by default only the weight of ``mlp.down_proj`` in
layers ``max(0, ℓ−2)..ℓ`` trains (:meth:`RMU.default_trainable`); with LoRA, only the adapters of
those projections (so ``model.lora.target_modules`` must include ``down_proj``). The experiment's
``forget.trainable`` regex overrides the default (needed for architectures without ``down_proj``,
e.g. GPT-2's ``mlp.c_proj``).
Options: ``layer`` (default 7), ``steering_coeff`` (c, default 6.5), ``alpha`` (α, default 100),
``seed`` (default 0).
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F

from forgetlab.methods.base import METHODS, Batch, Method
from forgetlab.models import decoder_layers, unwrap_model


def _check_layer(layer: int, n_layers: int) -> None:
    if not 0 <= layer < n_layers:
        raise ValueError(f"method rmu: layer {layer} out of range for a model with {n_layers} layers")


def layer_activations(model: torch.nn.Module, batch: Batch, layer: int) -> torch.Tensor:
    """Outputs of decoder layer ``layer`` (its own output, before any final norm) at the labelled
    token positions: ``(n_tokens, hidden)``."""
    captured: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)

    _, layers = decoder_layers(model)
    _check_layer(layer, len(layers))
    handle = layers[layer].register_forward_hook(keep)
    try:
        model(**batch.model_inputs(unwrap_model(model).dtype))
    finally:
        handle.remove()
    return captured[0][batch.labels != -100].float()


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
    supported_losses = ("answer", "full")

    def __init__(self, loss: str = "answer", reduction: str = "mean", *, layer: int = 7, steering_coeff: float = 6.5,
                 alpha: float = 100.0, seed: int = 0, **options: Any) -> None:
        super().__init__(loss, reduction, **options)
        if layer < 0 or alpha < 0:
            raise ValueError(f"method rmu: layer and alpha must be >= 0, got layer={layer}, alpha={alpha}")
        self.layer, self.steering_coeff, self.alpha, self.seed = int(layer), float(steering_coeff), float(alpha), int(seed)

    def default_trainable(self, model: torch.nn.Module) -> str:
        """WMDP's choice: the ``mlp.down_proj`` weights (or their LoRA adapters) of layers ``max(0, ℓ−2)..ℓ``."""
        prefix, modules = decoder_layers(model)
        _check_layer(self.layer, len(modules))
        layers = "|".join(str(i) for i in range(max(0, self.layer - 2), self.layer + 1))
        return rf"^{re.escape(prefix)}\.({layers})\.mlp\.down_proj\.(.+\.)?weight$"

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
