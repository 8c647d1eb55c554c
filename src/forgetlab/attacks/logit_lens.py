"""Latent read-out: the logit lens (nostalgebraist 2020; Łucki et al. 2024, "An adversarial perspective on
machine unlearning for AI safety"). Each decoder layer's output is put through the model's final norm and
unembedding, as if the model stopped there; the log-probability of each request's continuation under that
early exit shows at which depth the forgotten answer is still readable. The last layer's read-out is the
model's own output.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from forgetlab.attacks.base import ATTACKS, Attack, AttackContext, Measure, Results
from forgetlab.models import decoder_layers, unwrap_model
from forgetlab.precision import forward_autocast
from forgetlab.scoring import encode_pair

FINAL_NORMS = ("norm", "final_layernorm", "ln_f")  # the final norm's attribute on the base model (Llama/Gemma/Qwen, Phi, GPT-2)


def final_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The norm applied after the last decoder layer, found by its usual names on the base model."""
    base = unwrap_model(model).base_model
    for name in FINAL_NORMS:
        module = getattr(base, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise ValueError(f"logit lens: no final norm ({', '.join(FINAL_NORMS)}) on {type(base).__name__}")


def layer_outputs(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """Each decoder layer's own output (before any final norm), ``(batch, seq, hidden)`` per layer."""
    captured: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)

    _, layers = decoder_layers(model)
    hooks = [layer.register_forward_hook(keep) for layer in layers]
    try:
        model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


@torch.no_grad()
def lens_logits(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """Logits read off every layer: ``lm_head(final_norm(layer output))``, one ``(batch, seq, vocab)`` per layer."""
    model = unwrap_model(model)
    norm, head = final_norm(model), model.get_output_embeddings()
    with forward_autocast(input_ids.device):
        return [head(norm(hidden)).float() for hidden in layer_outputs(model, input_ids, attention_mask)]


@torch.no_grad()
def lens_logprobs(model: torch.nn.Module, tokenizer: Any, requests: Sequence[tuple[str, str]], batch_size: int = 8) -> np.ndarray:
    """``log p(continuation | context)`` of every request read off every layer: ``(layers, requests)``,
    tokenised like the scoring engine."""
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pairs = [encode_pair(tokenizer, context, continuation) for context, continuation in requests]
    columns = []
    try:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            width = max(len(c) + len(t) for c, t in chunk)
            ids = torch.tensor([c + t + [0] * (width - len(c) - len(t)) for c, t in chunk], device=device)
            mask = torch.tensor([[1] * (len(c) + len(t)) + [0] * (width - len(c) - len(t)) for c, t in chunk], device=device)
            per_layer = lens_logits(model, ids, mask)
            columns.append(np.stack([_continuation_logprobs(logits, chunk) for logits in per_layer]))
    finally:
        model.train(was_training)
    return np.concatenate(columns, axis=1)


def _continuation_logprobs(logits: torch.Tensor, chunk: Sequence[tuple[list[int], list[int]]]) -> np.ndarray:
    logprobs = torch.log_softmax(logits, dim=-1)
    out = []
    for row, (context, continuation) in enumerate(chunk):
        positions = torch.arange(len(context) - 1, len(context) + len(continuation) - 1)
        out.append(float(logprobs[row, positions, torch.tensor(continuation)].sum()))
    return np.asarray(out)


@ATTACKS.register("logit_lens")
class LogitLens(Attack):
    """Read the forget set out of every layer (a read-out: ``measure`` is not used): variants ``layer<i>``
    (i = 1 … L) with ``lens_logprob``, the forget targets' (multiple choice: gold answers') log-probability
    per token read off decoder layer i, and for multiple-choice items ``lens_acc``, the share whose gold
    answer has the highest read-off log-likelihood."""

    name = "logit_lens"
    controls = ("original", "never_learned")

    def __init__(self, batch_size: int = 8) -> None:
        self.batch_size = int(batch_size)

    def run(self, model: torch.nn.Module, context: AttackContext, measure: Measure) -> Results:
        if context.forget_choices:
            return self._multiple_choice(model, context)
        if not context.forget_requests:
            raise ValueError("attack logit_lens: the experiment gives no forget requests to read out")
        sums = lens_logprobs(model, context.tokenizer, context.forget_requests, self.batch_size)
        tokens = _tokens(context.tokenizer, context.forget_requests)
        return {f"layer{i + 1}": {"lens_logprob": float(row.sum() / tokens)} for i, row in enumerate(sums)}

    def _multiple_choice(self, model: torch.nn.Module, context: AttackContext) -> Results:
        requests = [request for choices, _ in context.forget_choices for request in choices]
        sums = lens_logprobs(model, context.tokenizer, requests, self.batch_size)
        starts = np.cumsum([0] + [len(choices) for choices, _ in context.forget_choices])
        golds = starts[:-1] + np.asarray([gold for _, gold in context.forget_choices])
        tokens = _tokens(context.tokenizer, [requests[g] for g in golds])
        results = {}
        for i, row in enumerate(sums):
            correct = [int(np.argmax(row[a:b])) == gold for (a, b), (_, gold) in zip(zip(starts[:-1], starts[1:]), context.forget_choices)]
            results[f"layer{i + 1}"] = {"lens_logprob": float(row[golds].sum() / tokens), "lens_acc": float(np.mean(correct))}
        return results


def _tokens(tokenizer: Any, requests: Sequence[tuple[str, str]]) -> int:
    return sum(len(encode_pair(tokenizer, c, t)[1]) for c, t in requests)
