"""How a run computes on its device: mixed precision, TF32 matrix products, and the tokens per scoring pass.

A recipe's ``compute`` block (:class:`~forgetlab.config.ComputeSpec`; every experiment has it) sets three
things, all of which change the last bits (or more) of results and so are part of a run's identity when they
differ from the defaults:

* ``mixed_precision: bf16`` runs every forward pass under ``torch.autocast`` with bfloat16 (matrix products
  and attention in bf16, reductions such as log-softmax in fp32, weights and optimizer state in fp32), the
  usual way to train and score on a GPU; backward passes and optimizer steps run outside autocast, as PyTorch
  recommends (backward ops follow the dtypes the forward recorded). ``no`` (default) computes in the weights' dtype
  (``model.dtype``). On a CPU without bf16 units autocast is emulated: correct, but slower than fp32.
* ``tf32: true`` lets CUDA matrix products use TensorFloat-32 (Ampere and later; ``false`` keeps them in full
  fp32, PyTorch's default); a no-op on CPUs.
* ``score_tokens``: at most this many tokens (rows × width, padding included) per scoring pass. 2,048 suits
  CPUs (see ``bench/bench_scoring.py``); a GPU fills with far more, e.g. 32,768.

:func:`compute_context` holds the block for a whole run (TF32 flags set, the autocast dtype remembered);
each forward pass opens its own :func:`forward_autocast`, like nanoGPT's ``with ctx:``. One autocast around
the whole run would be wrong: autocast caches the bf16 copies of the weights until its outermost context
exits, so a second training step, or scoring after weights were loaded in place, would compute with stale
weights. The forward passes: the training step (every method's loss, reference models included), the Scorer
(log-likelihoods, hidden states), generation and the logit lens.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

from forgetlab.config import ComputeSpec

AUTOCAST_DTYPES = {"bf16": torch.bfloat16}
_AUTOCAST: contextvars.ContextVar[torch.dtype | None] = contextvars.ContextVar("forgetlab_autocast", default=None)


@contextlib.contextmanager
def compute_context(spec: ComputeSpec, device: torch.device | str) -> Iterator[None]:
    """The block's settings for the duration: TF32 flags (restored after) and the dtype of :func:`forward_autocast`."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = spec.tf32
    torch.backends.cudnn.allow_tf32 = spec.tf32 or before[1]  # cuDNN's default is already on
    token = _AUTOCAST.set(AUTOCAST_DTYPES.get(spec.mixed_precision))
    try:
        yield
    finally:
        _AUTOCAST.reset(token)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def forward_autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """One forward pass's context on ``device``: autocast in the run's dtype (fresh weight casts each time), or
    nothing when the run computes in the weights' dtype."""
    dtype = _AUTOCAST.get()
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def device_name(device: torch.device | str) -> str:
    """What a run computed on, for its timings: ``cpu``, or ``cuda:0 (NVIDIA H200)``."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    return f"{device} ({torch.cuda.get_device_name(device)})"
