"""Utility of a (prompt, target) model on held-out pairs: loss/perplexity, BLEU and exact match.

* **Held-out loss** (nats per target token, lower is better) ``= -Σ ll / Σ n_tokens`` over the test
  pairs, from the scoring engine's summed log-likelihoods; **perplexity** ``= exp(loss)``.
* **BLEU** (Papineni et al. 2002) of greedy translations, corpus-level, ``sacrebleu.corpus_bleu``
  with its defaults (13a tokenisation, 0-100, higher is better) — the metric of the paper's
  translation setting.
* **Exact match** (0-1, higher is better): the share of greedy outputs equal to the reference after
  whitespace normalisation.

Greedy outputs: the prompt is tokenised exactly as for scoring (``encode_pair``'s context), decoding
stops at EOS, after ``max_new_tokens``, or at the first newline (the corpus targets are one line).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import sacrebleu

from forgetlab.scoring import ScoredRequest, encode_pair, greedy_generate


def heldout_loss(scores: Sequence[ScoredRequest]) -> dict[str, float]:
    """Token-level loss and perplexity over scored held-out pairs."""
    return heldout_loss_from([s.logprob for s in scores], [s.n_tokens for s in scores])


def heldout_loss_from(logprobs: Sequence[float], n_tokens: Sequence[float]) -> dict[str, float]:
    """``loss = -Σ logprob / Σ n_tokens`` (nats per token) and ``perplexity = exp(loss)`` (capped at e^700)."""
    tokens = float(sum(n_tokens))
    if tokens == 0:
        raise ValueError("held-out loss of no tokens")
    loss = -float(sum(logprobs)) / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0))}


def normalize(text: str) -> str:
    """Whitespace-normalised text (what exact match compares)."""
    return " ".join(text.split())


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100) of hypotheses against one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"BLEU: {len(hypotheses)} hypotheses for {len(references)} references")
    if not hypotheses:
        raise ValueError("BLEU of no sentences")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Share of hypotheses equal to their reference after whitespace normalisation."""
    if len(hypotheses) != len(references) or not hypotheses:
        raise ValueError(f"exact match: {len(hypotheses)} hypotheses for {len(references)} references")
    return sum(normalize(h) == normalize(r) for h, r in zip(hypotheses, references)) / len(hypotheses)


def greedy_translations(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int = 48, batch_size: int = 32) -> list[str]:
    """Greedy continuations of each prompt (:func:`forgetlab.scoring.greedy_generate`, stopping at the
    tokenizer's EOS), decoded, cut at the first newline and stripped."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    contexts = [encode_pair(tokenizer, p, "x")[0] for p in prompts]
    rows = greedy_generate(model, contexts, max_new_tokens, pad_id=pad, eos_id=tokenizer.eos_token_id, batch_size=batch_size)
    return [tokenizer.decode(row, skip_special_tokens=True).split("\n", 1)[0].strip() for row in rows]


def translation_quality(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """BLEU and exact match of greedy outputs against the (stripped) reference targets."""
    refs = [r.strip() for r in references]
    return {"bleu": bleu(hypotheses, refs), "exact_match": exact_match(hypotheses, refs)}
