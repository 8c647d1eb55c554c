"""Greedy generation: the one decoder, used for extraction (verbatim/prefix match) and translation quality.

Plain greedy decoding — no sampling, no beams, none of a checkpoint's own generation settings (repetition
penalty, ...) — from left-padded batches of token-id contexts; a row ends early at ``eos_id``. The model's
train/eval mode is restored afterwards.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import GenerationConfig

from forgetlab.models import unwrap_model
from forgetlab.precision import forward_autocast


@torch.no_grad()
def greedy_generate(
    model: Any,
    contexts: Sequence[Sequence[int]],
    max_new_tokens: int | Sequence[int],
    *,
    pad_id: int,
    eos_id: int | None,
    batch_size: int = 16,
) -> list[list[int]]:
    """The greedy continuation (token ids) of each context: ``max_new_tokens`` new tokens (one number, or
    one per context), fewer when the model emits ``eos_id``."""
    wanted = [max_new_tokens] * len(contexts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[list[int]] = []
    try:
        for start in range(0, len(contexts), batch_size):
            chunk, lengths = contexts[start : start + batch_size], wanted[start : start + batch_size]
            width = max(len(c) for c in chunk)
            ids = torch.tensor([[pad_id] * (width - len(c)) + list(c) for c in chunk], device=device)
            mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunk], device=device)
            config = GenerationConfig(
                max_new_tokens=max(lengths), do_sample=False, num_beams=1, pad_token_id=pad_id, eos_token_id=eos_id
            )
            with forward_autocast(device):
                generated = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
            out.extend(row[:n] for row, n in zip(generated[:, width:].tolist(), lengths))
    finally:
        model.train(was_training)
    return out


def greedy_texts(model: Any, tokenizer: Any, contexts: Sequence[Sequence[int]], max_new_tokens: int, *, batch_size: int = 16,
                 **decode: Any) -> list[str]:
    """:func:`greedy_generate` stopping at the tokenizer's EOS (the model's when the tokenizer has none; padding with
    the tokenizer's pad token, else EOS), each continuation decoded without special tokens (``decode``: more options
    of ``tokenizer.decode``)."""
    eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else unwrap_model(model).config.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    rows = greedy_generate(model, contexts, max_new_tokens, pad_id=pad_id, eos_id=eos_id, batch_size=batch_size)
    return [tokenizer.decode(row, skip_special_tokens=True, **decode) for row in rows]
