"""Extraction: does the model still reproduce the forget targets?

* **Exact memorization** (Tirumala et al. 2022, "Memorization Without Overfitting"): the fraction of
  target tokens that are the model's greedy (argmax) prediction given the *true* prefix
  (teacher forcing). 1 = every token would be predicted, higher = more memorized.
* **Verbatim continuation match** (Carlini et al. 2021/2023, extractable memorization): greedy
  generation of ``|y|`` tokens from the prompt equals the target tokens exactly (0/1 per item).
* **Prefix match**: the fraction of target tokens greedy generation reproduces before its first
  mismatch.

Greedy decoding reproduces the target iff every teacher-forced argmax is the target token, so in
exact arithmetic ``verbatim == (exact memorization == 1)``; the experiment really
generates (:func:`forgetlab.scoring.greedy_generate`: a KV cache and left padding) so the reported match
is what a user would extract.
Targets are compared as token ids, tokenised like the scoring engine (``encode_pair``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from forgetlab.metrics.registry import register_metric


def exact_memorization(greedy: Sequence[np.ndarray]) -> np.ndarray:
    """Per item: the mean of its per-token "argmax == target" flags."""
    return np.asarray([float(np.mean(g)) for g in greedy])


def _check(generated: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> None:
    if len(generated) != len(targets):
        raise ValueError(f"{len(generated)} generations for {len(targets)} targets")
    if any(len(t) == 0 for t in targets):
        raise ValueError("empty target")


def verbatim_match(generated: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> np.ndarray:
    """Per item: 1.0 if the first ``len(target)`` generated tokens are the target, else 0.0."""
    _check(generated, targets)
    return np.asarray([float(list(g[: len(t)]) == list(t)) for g, t in zip(generated, targets)])


def prefix_match(generated: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> np.ndarray:
    """Per item: (number of leading target tokens generated before the first mismatch) / ``len(target)``."""
    _check(generated, targets)
    out = []
    for g, t in zip(generated, targets):
        n = 0
        while n < len(t) and n < len(g) and g[n] == t[n]:
            n += 1
        out.append(n / len(t))
    return np.asarray(out)


register_metric("token_acc", "lower", "Tirumala et al. 2022 (exact memorization)", "share of target tokens that are the greedy prediction given the true prefix")
register_metric("verbatim", "lower", "Carlini et al. 2021/2023 (extractable memorization)", "greedy generation reproduces the whole target (share of items)")
register_metric("prefix_match", "lower", "Carlini et al. 2021/2023", "share of target tokens greedy generation reproduces before its first mismatch")
