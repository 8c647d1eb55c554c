"""TOFU's metrics (Maini et al. 2024), as its code computes them (``locuslab/tofu``: ``evaluate_util.py``,
``aggregate_eval_stat.py``; ``locuslab/open-unlearning``: ``src/evals/metrics/memorization.py``, ``privacy.py``).

Every quantity starts from an answer's **average loss** ``ℓ(a | q) = −(1/|a|) Σ_t log p(a_t | q, a_<t)`` over
the answer's tokens (with the end-of-sequence token TOFU appends; see :mod:`forgetlab.experiments.tofu`):

* probability ``P(a | q) = exp(−ℓ(a | q))`` — length-normalised; on the real-authors and world-facts sets,
  normalised over the options: ``P(a) / (P(a) + Σ_j P(ã_j))``;
* truth ratio ``R = P̄(ã) / P(â)`` where ``P̄(ã) = exp(−(1/m) Σ_j ℓ(ã_j))`` is the geometric mean of the m
  perturbed answers' probabilities and ``â`` the paraphrased answer (the answer itself where there is no
  paraphrase: real authors, world facts). Reported as ``mean(max(0, 1 − R))`` on retained knowledge (higher:
  the model prefers the truth) and as ``mean(min(R, 1/R))`` on the forget set;
* ROUGE-L recall of the greedy answer against the answer (:mod:`forgetlab.metrics.rouge`);
* forget quality: the p-value of the two-sample Kolmogorov–Smirnov test between the forget set's truth ratios
  under the unlearned model and under the retain model (scipy's ``ks_2samp``, two-sided, ``method="auto"``);
* model utility: the harmonic mean of the nine retain / real-authors / world-facts numbers (probability,
  ROUGE-L recall, truth ratio of each).
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from forgetlab.metrics.registry import register_metric

#: The three sets that make up model utility, and the three numbers of each.
UTILITY_SETS = ("retain", "real_authors", "world_facts")
UTILITY_METRICS = ("probability", "rouge_l_recall", "truth_ratio")
PerturbedMean = Literal["geometric", "arithmetic"]


def probability(avg_losses: Sequence[float]) -> np.ndarray:
    """Per item ``exp(−ℓ)``: the length-normalised probability of the answer."""
    return np.exp(-np.asarray(avg_losses, dtype=np.float64))


def option_probability(answer_losses: Sequence[float], option_losses: Sequence[Sequence[float]]) -> np.ndarray:
    """Per item ``P(a) / (P(a) + Σ_j P(ã_j))``: the answer's share among the options (real authors, world facts)."""
    correct = probability(answer_losses)
    wrong = probability(np.asarray(option_losses, dtype=np.float64)).sum(axis=-1)
    return correct / (correct + wrong)


def truth_ratios(
    paraphrased_losses: Sequence[float], perturbed_losses: Sequence[Sequence[float]], mean: PerturbedMean = "geometric"
) -> np.ndarray:
    """Per item ``R = P̄(ã) / P(â)``: the perturbed answers' mean probability over the paraphrased answer's (above
    1: the model prefers the wrong answers). ``geometric``: ``P̄ = exp(−mean_j ℓ(ã_j))``, so ``R = exp(ℓ(â) −
    mean_j ℓ(ã_j))`` (OpenUnlearning; TOFU's ``aggregate_eval_stat.py`` and forget quality); ``arithmetic``:
    ``P̄ = mean_j exp(−ℓ(ã_j))`` (TOFU's ``utils.get_model_utility``, its evaluation during unlearning)."""
    paraphrased = np.asarray(paraphrased_losses, dtype=np.float64)
    perturbed = np.asarray(perturbed_losses, dtype=np.float64)
    if mean == "geometric":
        return np.exp(paraphrased - perturbed.mean(axis=-1))
    if mean == "arithmetic":
        return np.exp(-perturbed).mean(axis=-1) / np.exp(-paraphrased)
    raise ValueError(f"mean must be 'geometric' or 'arithmetic', got {mean!r}")


def truth_ratio_kept(ratios: Sequence[float]) -> float:
    """``mean(max(0, 1 − R))``: how much the model prefers true answers (retain, real authors, world facts)."""
    return float(np.mean(np.maximum(0.0, 1.0 - np.asarray(ratios, dtype=np.float64))))


def truth_ratio_forget(ratios: Sequence[float]) -> float:
    """``mean(min(R, 1/R))``: 1 when the model cannot tell true from false answers (the forget set)."""
    r = np.asarray(ratios, dtype=np.float64)
    return float(np.mean(np.minimum(r, 1.0 / r)))


def forget_quality(unlearned_ratios: Sequence[float], retain_model_ratios: Sequence[float]) -> float:
    """The two-sided two-sample KS test's p-value between the forget set's truth ratios under the unlearned
    model and under the retain model (high: indistinguishable from never having learned the forget set)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(np.asarray(unlearned_ratios), np.asarray(retain_model_ratios)).pvalue)


def model_utility(values: dict[str, float]) -> float:
    """The harmonic mean of the nine ``<set>/<metric>`` numbers of :data:`UTILITY_SETS` × :data:`UTILITY_METRICS`
    (scipy's ``hmean``: 0 when any is 0)."""
    from scipy.stats import hmean

    keys = [f"{s}/{m}" for s in UTILITY_SETS for m in UTILITY_METRICS]
    missing = [k for k in keys if k not in values]
    if missing:
        raise KeyError(f"model utility needs {', '.join(missing)}")
    numbers = np.array([values[k] for k in keys], dtype=np.float64)
    return 0.0 if (numbers == 0).any() else float(hmean(numbers))


register_metric("probability", "lower", "TOFU", "length-normalised probability of the answer, exp(−mean token NLL) "
                "(real authors, world facts: its share among the options)")
register_metric("rouge_l_recall", "lower", "TOFU", "ROUGE-L recall of the greedy answer against the answer")
register_metric("truth_ratio", None, "TOFU", "forget: mean min(R, 1/R) (1: true and false answers alike); kept "
                "sets: mean max(0, 1 − R) (1: the truth clearly preferred); R = P(perturbed) / P(paraphrased)")
register_metric("forget_quality", "higher", "TOFU", "KS-test p-value of the forget truth ratios against the retain model's")
register_metric("model_utility", "lower", "TOFU", "harmonic mean of probability, ROUGE-L recall and truth ratio on retain, "
                "real authors and world facts")
