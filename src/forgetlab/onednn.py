"""fp32 ``nn.Linear`` on CPUs through oneDNN, bit for bit what PyTorch's own path (MKL) gives; for inference.

Why: PyTorch's CPU wheels send fp32 matrix products (``aten::addmm``, so every ``nn.Linear``) to MKL's sgemm,
which on CPUs not made by Intel runs a slower code path. On this project's 2-core AMD EPYC (AVX-512), 2 threads,
a [2048, 576] × [576, 1536] product ran at 170 GFLOP/s through MKL and at 400 through oneDNN, which ships in
the same wheel. Their sums run in different orders, so results differ in the last bits (a 30-token
log-likelihood by up to 1.3e-4), except that MKL, once a product has 12 rows or more, sums the K products in
blocks of 192 (each block from zero, the blocks added in turn), and oneDNN reproduces that exactly when it gets
the blocks one at a time: ``linear(x[:, :192], W[:, :192]) + linear(x[:, 192:384], W[:, 192:384]) + ...``.

* :func:`matching_block` finds, for a weight shape on this machine and thread count, the block size at which
  blockwise oneDNN equals ``torch.nn.functional.linear`` bit for bit on random inputs of several row counts
  (``None`` when no candidate does: that shape stays on PyTorch's path).
* :class:`OneDnnLinears`, a context around inference-only forward passes (the Scorer's), sends every plain
  fp32 ``nn.Linear`` on the CPU whose shape has a matching block through oneDNN, its weight blocks prepacked once
  per context (weights may change between contexts: training). Inputs with fewer than :data:`MIN_ROWS` rows
  (where MKL runs other kernels), under autocast or needing gradients take PyTorch's path.

It is switched on only where MKL is the slow one (:func:`enabled`: x86 CPUs not made by Intel). Numbers are
the same with or without it, so it is no part of any run's identity. Cost: a second copy of the weights while a
context is open, and about 0.3 s per context to pack SmolLM2-135M's.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

#: Below this many rows MKL uses other kernels (on the EPYC above, 5-7 rows and fewer than 12 columns differ).
MIN_ROWS = 12
#: Scoring calls of fewer tokens stay on PyTorch's path: packing the weights costs more than oneDNN saves (SmolLM2-135M,
#: 2 threads: 4 PIQA requests, 141 tokens, 0.21 s through MKL and 0.34 s through oneDNN; 20 requests, 664 tokens,
#: 0.93 s and 0.79 s; 200 requests, 7,446 tokens, 8.8 s and 6.1 s).
WORTH_PACKING_TOKENS = 256
#: Block sizes tried, most likely first; a block at least K wide means one unsplit product.
CANDIDATE_BLOCKS = (192, 256, 128, 384, 96, 512, 64)
#: Row counts a block must reproduce PyTorch's result at: every count up to 40, then a few larger ones. (On the
#: EPYC above, blockwise oneDNN equalled PyTorch at every count from 12 to 699 and at 3,000-16,384, on 1 and 2 threads.)
CALIBRATION_ROWS = (*range(MIN_ROWS, 41), 64, 100, 257, 1000)
#: Calibrate at most this many output columns: the order of a sum depends on K's blocking, not on the columns.
CALIBRATION_COLUMNS = 2048


@functools.lru_cache(maxsize=1)
def enabled() -> bool:
    """Whether linears go through oneDNN here: a CPU build with oneDNN and MKL, on an x86 CPU not made by Intel."""
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkl.is_available()):
        return False
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    return cpu_vendor() not in ("", "GenuineIntel")


def cpu_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's ``vendor_id`` (``AuthenticAMD``, ``GenuineIntel``, ...); "" where it cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "vendor_id":
            return value.strip()
    return ""


def block_bounds(k: int, block: int) -> tuple[int, ...]:
    """Where K's blocks start and end: ``(0, block, 2*block, ..., k)``."""
    return (*range(0, k, block), k)


def pack(weight: torch.Tensor, bounds: tuple[int, ...]) -> list[torch.Tensor]:
    """The weight's K blocks in oneDNN's own layout (prepacked once, so no product reorders it again)."""
    return [
        torch.ops.mkldnn._reorder_linear_weight(weight[:, a:b].contiguous(), None)
        for a, b in zip(bounds, bounds[1:])
    ]


def blockwise_linear(
    x: torch.Tensor, packed: list[torch.Tensor], bounds: tuple[int, ...], bias: torch.Tensor | None
) -> torch.Tensor:
    """``x @ W.T + bias`` as MKL sums it: one oneDNN product per K block (the first adds the bias), added in turn."""
    out = torch.ops.mkldnn._linear_pointwise(x[..., bounds[0]:bounds[1]], packed[0], bias, "none", [], "")
    for i in range(1, len(packed)):
        out.add_(torch.ops.mkldnn._linear_pointwise(x[..., bounds[i]:bounds[i + 1]], packed[i], None, "none", [], ""))
    return out


def matching_block(out_features: int, in_features: int, bias: bool) -> int | None:
    """The block size at which blockwise oneDNN reproduces ``F.linear`` bit for bit for this shape, at this
    thread count, on every row count of :data:`CALIBRATION_ROWS`; ``None`` if none does (or oneDNN fails)."""
    return _matching_block(out_features, in_features, bias, torch.get_num_threads())


@functools.lru_cache(maxsize=None)
def _matching_block(out_features: int, in_features: int, bias: bool, threads: int) -> int | None:
    generator = torch.Generator().manual_seed(0)  # never the global RNG: runs draw from it
    columns = min(out_features, CALIBRATION_COLUMNS)
    weight = torch.randn(columns, in_features, generator=generator) * in_features ** -0.5
    offset = torch.randn(columns, generator=generator) if bias else None
    inputs = [torch.randn(rows, in_features, generator=generator) for rows in CALIBRATION_ROWS]
    with torch.inference_mode():
        expected = [F.linear(x, weight, offset) for x in inputs]
        tried: set[tuple[int, ...]] = set()
        for block in CANDIDATE_BLOCKS:
            bounds = block_bounds(in_features, block)
            if bounds in tried:
                continue
            tried.add(bounds)
            try:
                packed = pack(weight, bounds)
                if all(torch.equal(blockwise_linear(x, packed, bounds, offset), y) for x, y in zip(inputs, expected)):
                    return block
            except RuntimeError:
                return None
    return None


class OneDnnLinears:
    """Within the context, the model's plain fp32 CPU ``nn.Linear`` modules compute through oneDNN (see module doc)
    if ``wanted`` and :func:`enabled`.

    ``routed`` counts the modules sent through oneDNN. A module with a forward of its own (accelerate's hooks)
    or of a subclass (quantized layers) is left alone.
    """

    def __init__(self, model: torch.nn.Module, wanted: bool = True) -> None:
        self.model = model
        self.wanted = wanted
        self.routed = 0
        self._patched: list[torch.nn.Linear] = []

    def __enter__(self) -> OneDnnLinears:
        if not (self.wanted and enabled()):
            return self
        try:
            for module in self.model.modules():
                if self._eligible(module):
                    block = matching_block(module.out_features, module.in_features, module.bias is not None)
                    if block is not None:
                        module.forward = _Routed(module, block_bounds(module.in_features, block))
                        self._patched.append(module)
        except BaseException:  # no module may keep a routed forward (and its packs) past a failed entry
            self.__exit__()
            raise
        self.routed = len(self._patched)
        return self

    def __exit__(self, *exc: Any) -> None:
        for module in self._patched:
            del module.forward
        self._patched = []

    @staticmethod
    def _eligible(module: torch.nn.Module) -> bool:
        return (
            type(module) is torch.nn.Linear
            and "forward" not in vars(module)
            and module.weight.device.type == "cpu"
            and module.weight.dtype == torch.float32
        )


class _Routed:
    """One linear's forward through oneDNN; the weight is packed at the first call of the context."""

    def __init__(self, module: torch.nn.Linear, bounds: tuple[int, ...]) -> None:
        self.module = module
        self.bounds = bounds
        self.packed: list[torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.module.weight, self.module.bias
        if (
            x.dtype != torch.float32
            or x.numel() < MIN_ROWS * weight.shape[1]
            or torch.is_autocast_enabled("cpu")
            or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        ):
            return F.linear(x, weight, bias)
        if self.packed is None:
            self.packed = pack(weight.detach(), self.bounds)
        return blockwise_linear(x, self.packed, self.bounds, None if bias is None else bias.detach())
