"""Membership inference: can an attacker tell the forget set (members) from held-out data (non-members)?

Every attack turns an item's per-token statistics into a **membership score oriented so that higher
means "more member-like"** (more likely to have been trained on):

* ``loss`` (Yeom et al. 2018): ``−(1/n) Σ_t −log p(x_t|x<t)``, the negated mean token NLL;
* ``zlib`` (Carlini et al. 2021, "Extracting Training Data from Large Language Models"):
  ``−loss / zlib(x)``, the mean NLL divided by the length in bytes of the zlib-compressed UTF-8 text;
* ``min_k`` (Shi et al. 2024, "Detecting Pretraining Data from Large Language Models", Min-K% Prob):
  the mean of the lowest ``k``-fraction of the token log-probabilities;
* ``min_k_pp`` (Zhang et al. 2024, "Min-K%++: Improved Baseline for Detecting Pre-Training Data from
  Large Language Models"): per token ``z_t = (log p(x_t|x<t) − μ_t) / σ_t`` with
  ``μ_t = E_{v~p(·|x<t)}[log p(v|x<t)]`` and ``σ_t² = E_{v~p(·|x<t)}[(log p(v|x<t) − μ_t)²]`` over the
  vocabulary, averaged over the lowest ``k``-fraction of the ``z_t``;
* ``ref`` (reference-model ratio; Carlini et al. 2021, Mireshghallah et al. 2022):
  ``−(loss_target − loss_reference)``, the calibrated loss.

"Lowest k-fraction" keeps ``max(1, ⌊k·n⌋)`` tokens (the published code's ``int(n·k)``, never empty).

**AUC direction.** Members (label 1) are the forget items, non-members (label 0) the held-out items.
``AUC = P(score(member) > score(non-member)) + ½ P(tie)`` (= scikit-learn's ``roc_auc_score``).
0.5: indistinguishable (the goal of unlearning); > 0.5: the forget items still look like training
data (under-unlearned); < 0.5: they look *less* likely than data never seen, which is just as
detectable (over-unlearned, a "Streisand effect"). ``auc_gap = |AUC − 0.5|`` is the distance to
indistinguishable. TPR at a fixed FPR (Carlini et al. 2022, "Membership Inference Attacks From First
Principles") is the largest true-positive rate among ROC points with ``FPR ≤`` the target (``≤``: the
target is an upper bound, so 1 false positive among 100 non-members is allowed at 1 %). LiRA's code
(``tpr[np.where(fpr < .001)[0][-1]]``) uses a strict ``<``; the two differ only when an ROC point has
FPR exactly equal to the target, and :func:`forgetlab.stats.tpr_at_fpr` gives LiRA's number with ``strict=True``.
"""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np

from forgetlab.metrics.registry import register_metric
from forgetlab.scoring import TokenScores
from forgetlab.stats import bootstrap_auc_ci, roc_auc, tpr_at_fpr

MIA_ATTACKS = ("loss", "zlib", "min_k", "min_k_pp", "ref")
TPR_AT = {"tpr_1pct": 0.01, "tpr_0.1pct": 0.001}


# ------------------------------------------------------------------------- per-token statistics
#
# Per-token statistics come from the scoring engine, :meth:`forgetlab.scoring.Scorer.token_scores`
# (the one place that turns (context, continuation) pairs into log-likelihoods): for each target
# token ``log p(x_t|x<t)``, whether it is the argmax, and μ_t, σ_t over the vocabulary.


def item_loss(stats: TokenScores) -> float:
    """Mean token NLL of one item."""
    return float(-np.mean(stats.logprobs))


# ------------------------------------------------------------------------- attack scores


def lowest_k_mean(values: np.ndarray, k: float) -> float:
    """Mean of the ``max(1, ⌊k·n⌋)`` smallest values."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no tokens")
    n = max(1, int(values.size * k))
    return float(np.sort(values)[:n].mean())


def zlib_length(text: str) -> int:
    """Bytes of the zlib-compressed (default level) UTF-8 text."""
    return len(zlib.compress(text.encode("utf-8")))


def loss_score(logprobs: np.ndarray) -> float:
    """LOSS attack: mean token log-probability (= −mean NLL)."""
    return float(np.mean(logprobs))


def zlib_score(logprobs: np.ndarray, text: str) -> float:
    """zlib attack: ``−(mean NLL) / zlib_length(text)``."""
    return loss_score(logprobs) / zlib_length(text)


def min_k_score(logprobs: np.ndarray, k: float) -> float:
    """Min-K% Prob: mean of the lowest k-fraction of token log-probabilities."""
    return lowest_k_mean(logprobs, k)


SIGMA_FLOOR = 1e-10


def min_k_pp_token_scores(logprobs: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Min-K%++ per token: ``(log p(x_t) − μ_t) / σ_t``.

    Where ``σ_t < 1e-10`` (a uniform or one-point distribution, where ``log p`` is constant over the
    vocabulary's support and the published code divides 0 by 0) the score is 0.
    """
    logprobs, mu, sigma = (np.asarray(a, dtype=float) for a in (logprobs, mu, sigma))
    ok = sigma >= SIGMA_FLOOR
    return np.where(ok, (logprobs - mu) / np.where(ok, sigma, 1.0), 0.0)


def min_k_pp_score(logprobs: np.ndarray, mu: np.ndarray, sigma: np.ndarray, k: float) -> float:
    """Min-K%++: mean of the lowest k-fraction of the standardised token scores."""
    return lowest_k_mean(min_k_pp_token_scores(logprobs, mu, sigma), k)


def reference_score(loss_target: float, loss_reference: float) -> float:
    """Reference-model ratio: ``−(loss_target − loss_reference)`` (log-likelihood ratio per token)."""
    return -(loss_target - loss_reference)


def attack_scores(stats: Sequence[TokenScores], texts: Sequence[str], k: float,
                  reference_losses: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """Membership scores of every item under every attack (``ref`` only with reference losses)."""
    scores = {
        "loss": [loss_score(s.logprobs) for s in stats],
        "zlib": [zlib_score(s.logprobs, t) for s, t in zip(stats, texts)],
        "min_k": [min_k_score(s.logprobs, k) for s in stats],
        "min_k_pp": [min_k_pp_score(s.logprobs, s.mu, s.sigma, k) for s in stats],
    }
    if reference_losses is not None:
        scores["ref"] = [reference_score(item_loss(s), r) for s, r in zip(stats, reference_losses)]
    return {name: np.asarray(values, dtype=float) for name, values in scores.items()}


def mia_summary(members: Sequence[float], nonmembers: Sequence[float], *, n_resamples: int = 1000,
                seed: int = 0) -> dict[str, float]:
    """``auc``, ``auc_gap`` (= |auc − 0.5|), ``tpr_1pct``, ``tpr_0.1pct`` and the AUC's bootstrap interval."""
    auc = roc_auc(members, nonmembers)
    out: dict[str, float] = {"auc": auc, "auc_gap": abs(auc - 0.5)}
    for name, fpr in TPR_AT.items():
        out[name] = tpr_at_fpr(members, nonmembers, fpr)
    interval = bootstrap_auc_ci(members, nonmembers, n_resamples=n_resamples, seed=seed)
    if interval is not None:
        out["auc_ci_low"], out["auc_ci_high"] = interval
    return out


def evaluate_attacks(members: dict[str, np.ndarray], nonmembers: dict[str, np.ndarray], *, n_resamples: int = 1000,
                     seed: int = 0) -> dict[str, dict[str, Any]]:
    """:func:`mia_summary` of every attack present in both score dicts."""
    return {
        name: mia_summary(members[name], nonmembers[name], n_resamples=n_resamples, seed=seed)
        for name in MIA_ATTACKS
        if name in members and name in nonmembers
    }


def _register_attack_metrics() -> None:
    sources = {
        "loss": "Yeom et al. 2018", "zlib": "Carlini et al. 2021", "min_k": "Shi et al. 2024 (Min-K% Prob)",
        "min_k_pp": "Zhang et al. 2024 (Min-K%++)", "ref": "Carlini et al. 2021; Mireshghallah et al. 2022",
    }
    for attack, source in sources.items():
        register_metric(f"{attack}_auc", "closer", source, f"ROC-AUC of the {attack} attack, forget vs holdout (0.5: indistinguishable)", 0.5)
        register_metric(f"{attack}_auc_gap", "lower", source, f"|AUC - 0.5| of the {attack} attack")
        for stat, fpr in TPR_AT.items():
            register_metric(f"{attack}_{stat}", "lower", f"{source}; Carlini et al. 2022 (TPR at low FPR)", f"TPR of the {attack} attack at FPR <= {fpr}")
        for bound in ("auc_ci_low", "auc_ci_high"):
            register_metric(f"{attack}_{bound}", None, source, f"bound of the 95 % bootstrap interval of the {attack} AUC")


_register_attack_metrics()
