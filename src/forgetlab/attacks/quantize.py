"""Weight-only quantization (Zhang et al., ICLR 2025, arXiv 2410.16454: 4-bit quantization brings "forgotten"
knowledge back because unlearning moves weights by less than a quantization step).

Implemented with optimum-quanto (``quantize`` + ``freeze``): ``int8`` is symmetric per output channel,
``int4`` is affine (scale and zero point) over groups of 128 input weights. On CPU the quantized linear layers
dequantize and run in float32, so the result is the quantized model's numbers, not its speed. quanto was
chosen over torchao (its int4 CPU path needs the separate ``mslk`` kernels) and HQQ (no wheel; built from
source) because it installs as a pure-Python wheel and runs int8 and int4 on CPU with torch 2.13.

``nf4`` is bitsandbytes' 4-bit NormalFloat (blocks of 64, an absmax scale each; what ``load_in_4bit`` uses,
output embeddings left as they are), applied by quantizing and dequantizing every linear layer's weights —
the numbers a bitsandbytes 4-bit model computes with, on CPU as on CUDA.

The offline models come from Q4 GGUF files, whose weights already sit on a 4-bit grid of 32-weight blocks
(Q4_1: a scale and a minimum per block). quanto's groups (128 along the input) do not line up with those
blocks, so re-quantizing still moves weights, but by less than on a model trained in full precision: the
"control" (quantizing the original model) measures how much quantization alone moves each metric.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from typing import Any, Callable, Literal

import torch

from forgetlab.attacks.base import ATTACKS, Attack, AttackContext, Measure, Results
from forgetlab.models import unwrap_model

BITS = (8, 4, "nf4")
NF4_BLOCK = 64  # bitsandbytes' default block size for 4-bit weights


def quantized_copy(model: torch.nn.Module, bits: Literal[8, 4, "nf4"]) -> torch.nn.Module:
    """A copy of ``model`` with every linear layer's weights quantized (``bits`` 8, 4 or ``nf4``)."""
    if bits not in BITS:
        raise ValueError(f"attack quantize: bits must be 8, 4 or nf4, got {bits}")
    if bits == "nf4":
        return nf4_copy(model)
    from optimum.quanto import freeze, qint4, qint8, quantize

    attacked = copy.deepcopy(unwrap_model(model))
    quantize(attacked, weights=qint8 if bits == 8 else qint4)
    freeze(attacked)
    attacked.forward = _outside_inference_mode(attacked.forward)
    return attacked.eval()


@torch.no_grad()
def nf4_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose linear weights (not the output embeddings) are NF4-quantized and dequantized."""
    import bitsandbytes.functional as bnb

    attacked = copy.deepcopy(unwrap_model(model))
    head = attacked.get_output_embeddings()
    for module in attacked.modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            packed, state = bnb.quantize_4bit(module.weight.data.float(), blocksize=NF4_BLOCK, quant_type="nf4")
            module.weight.copy_(bnb.dequantize_4bit(packed, state).to(module.weight.dtype))
    return attacked.eval()


def _outside_inference_mode(forward: Callable[..., Any]) -> Callable[..., Any]:
    """quanto's int4 tensors cannot run under ``torch.inference_mode`` (what the scoring engine uses): run
    the forward pass with gradients off instead — the same numbers."""

    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode(False), torch.no_grad():
            return forward(*args, **kwargs)

    return run


@ATTACKS.register("quantize")
class Quantize(Attack):
    """Weight-only quantization to each of ``bits`` (default int8 and int4; also ``nf4``); variants ``int8``,
    ``int4``, ``nf4``."""

    name = "quantize"
    controls = ("original",)  # quantizing the original model: how much quantization alone moves each metric

    def __init__(self, bits: list[int | str] | tuple[int | str, ...] = (8, 4)) -> None:
        unknown = [b for b in bits if b not in BITS]
        if unknown or not bits:
            raise ValueError(f"attack quantize: bits must be among {list(BITS)}, got {list(bits)}")
        if "nf4" in bits and importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError("attack quantize: bits nf4 needs bitsandbytes (pip install 'forgetlab[nf4]')")
        self.bits = tuple(bits)

    def run(self, model: torch.nn.Module, context: AttackContext, measure: Measure) -> Results:
        return {_label(bits): measure(quantized_copy(model, bits)) for bits in self.bits}


def _label(bits: int | str) -> str:
    return bits if isinstance(bits, str) else f"int{bits}"
