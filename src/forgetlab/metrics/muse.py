"""MUSE's metrics (Shi et al. 2024), as its authors' code computes them (``swj0419/muse_bench``: ``eval.py``,
``metrics/{verbmem,knowmem,privleak}.py``; OpenUnlearning's port where it differs is an option of the experiment).

* **VerbMem**: ROUGE-L F1 (``rouge_score``, no stemmer) between the greedy continuation of a forget-article prefix
  (128 new tokens) and the true continuation cut to its first 128 tokens (BOS included when the tokenizer adds one),
  averaged and × 100;
* **KnowMem**: ROUGE-L F1 × 100 of greedy answers (32 new tokens, cut before ``"\\n\\n"``, ``"\\nQuestion"`` or
  ``"Question:"``) to questions asked after all in-context examples (:func:`knowmem_prompt`);
* **PrivLeak**: ``(AUC_unlearned − AUC_retrain) / AUC_retrain × 100``, where AUC is the ROC-AUC of the Min-K % Prob
  score (k = 0.4) telling the privleak *holdout* texts (label 1) from the *forget* texts (label 0), scored by
  ``−MinK``: ≈ 0 for a model that memorised the forget texts, ≈ 0.5 for one that never saw them. Negative
  PrivLeak: under-unlearned (the forget texts still look seen); positive: over-unlearned; 0 is the goal.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from forgetlab.metrics.mia import lowest_k_mean
from forgetlab.metrics.registry import register_metric
from forgetlab.stats import roc_auc

#: Where MUSE cuts a KnowMem answer (``get_prefix_before_words_occur``).
KNOWMEM_STOP = ("\n\n", "\nQuestion", "Question:")
KNOWMEM_NEW_TOKENS = 32
VERBMEM_NEW_TOKENS = 128
MIN_K = 0.4


def knowmem_prompt(examples: Sequence[tuple[str, str]], question: str) -> str:
    """Every in-context (question, answer) as ``"Question: {q}\\nAnswer: {a}\\n\\n"``, then ``"Question: {q}\\nAnswer: "``."""
    shots = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in examples)
    return f"{shots}Question: {question}\nAnswer: "


def cut_at_stop_words(text: str, stop: Sequence[str] = KNOWMEM_STOP) -> str:
    """The text before the first of the stop words, applied in turn (``string.split(word)[0]`` for each)."""
    for word in stop:
        text = text.split(word)[0]
    return text


def min_k_prob(logprobs: Sequence[float], k: float = MIN_K) -> float:
    """MUSE's Min-K % score: minus the mean of the lowest ``⌊k·n⌋`` token log-probabilities (at least one; MUSE's
    code gives NaN for texts under 1/k tokens). Higher: less likely, so less likely a member."""
    return -lowest_k_mean(np.asarray(logprobs, dtype=np.float64), k)


def muse_auc(forget_scores: Sequence[float], holdout_scores: Sequence[float]) -> float:
    """MUSE's ``sweep``: the ROC-AUC of ``−score`` with holdout = 1, forget = 0, i.e. ``P(score(holdout) <
    score(forget))`` (ties count one half) for Min-K scores."""
    return roc_auc(-np.asarray(holdout_scores, dtype=np.float64), -np.asarray(forget_scores, dtype=np.float64))


def privleak(auc_unlearned: float, auc_retrain: float) -> float:
    """``(AUC_unlearned − AUC_retrain) / AUC_retrain × 100``."""
    if auc_retrain <= 0:
        raise ValueError(f"the retrained model's AUC is {auc_retrain}: PrivLeak is undefined (divides by it)")
    return (auc_unlearned - auc_retrain) / auc_retrain * 100.0


register_metric("verbmem", "lower", "MUSE", "ROUGE-L F1 × 100 of greedy continuations of forget prefixes against the truth")
register_metric("knowmem", "lower", "MUSE", "ROUGE-L F1 × 100 of greedy answers to questions with in-context examples")
register_metric("privleak", "closer", "MUSE", "(AUC − AUC_retrain) / AUC_retrain × 100 of Min-K% (k=0.4) forget vs holdout", 0.0)
register_metric("privleak_auc", None, "MUSE", "ROC-AUC of −Min-K%: holdout (1) vs forget (0); 0.5: never seen")
