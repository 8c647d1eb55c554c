"""Exposure, generalized exposure and relative exposure: how much a model still "knows" one item.

All inputs are log-likelihoods ``ll = log p(target | prompt)`` (natural log, summed over the target's
tokens) from :class:`forgetlab.scoring.Scorer`, or log-perplexities ``logppl = -ll``.

* **Exposure** (Carlini, Liu, Erlingsson, Kos & Song, "The Secret Sharer", USENIX Security 2019):
  the canary is ranked among ``n`` never-inserted references of the same format by log-perplexity,
  ``rank = 1 + #{references at least as likely, i.e. logppl_ref <= logppl_canary}`` and

      exposure = log2(N) - log2(rank),   N = n + 1 (the candidate space: references plus the canary)

  so exposure lies in ``[0, log2 N]``: ``log2 N`` when the canary is the likeliest candidate, 0 when
  it is the least likely. Higher = more memorized. A canary the model never saw is exchangeable with
  the references, its rank is uniform on ``1..N``, and ``E[exposure] = log2 N - log2(N!)/N ≈ log2 e
  ≈ 1.44`` bits (Stirling), so "unlearned" means ≈ 1.44, and values near 0 mean over-unlearning.
* **Extrapolated exposure** (same paper, §4.3): fit a skew-normal to the references'
  log-perplexities (``scipy.stats.skewnorm``) and use ``-log2 CDF(logppl_canary)``; it estimates the
  same quantity without needing the canary to be beaten by any sampled reference (not capped at
  ``log2 N``). Never-seen canaries also average ≈ log2 e (``-log2 U``, U uniform).
* **Generalized exposure** (Baluta et al. 2024, "Unlearning in- vs. out-of-distribution data in LLMs
  under gradient-based methods"): ``ll_model(x) - ll_reference(x)`` in nats, the reference model never
  having trained on ``x``. 0 = indistinguishable from retraining without ``x``; > 0 residual
  memorization; < 0 over-unlearned. Needs no space of random alternatives, so it works for
  in-distribution data.
* **Relative exposure**, two readings (the paper's public text does not pin it down), each named:
  (a) ``relative_exposure_rank``: exposure's formula with the item ranked among held-out items of
  the same distribution under the same model (per-token log-perplexity by default, since real
  sentences differ in length), direction as exposure;
  (b) ``relative_exposure_change``: ``ll_now(x) - ll_original(x)`` in nats, the change from the model
  before unlearning (0 at the start, negative as the item is pushed away). Neither needs a
  reference model.

**Conventions** (``convention=``). ``"forgetlab"`` (the default, above): the candidate space is the
references plus the canary, ``log2(|R| + 1)``, so exposure is never negative; extrapolation fits
log-perplexities and goes through ``logcdf`` (finite deep in the tail). ``"tf_privacy"``: the
secret sharer code of tensorflow_privacy (``privacy_tests/secret_sharer/exposures.py``, commit
40d73ed, 2022), which the Study B authors' pipeline (google-research ``learn_to_forget``) calls
with ``-score``, i.e. the same summed log-perplexity in nats: interpolation
``log2(|R|) - log2(rank)`` with ``rank = 1 + #{references <= candidate}`` (its sort puts a tied
reference first, so ties count as at least as likely, as here), which is negative,
``log2(|R|/(|R|+1))``, for a canary less likely than every reference; extrapolation
``-log2(skewnorm.cdf(x, *skewnorm.fit(references)))`` on whatever values it is given, unchecked:
``inf`` where the CDF underflows to 0. The two conventions' rank exposures differ by the constant
``log2((|R|+1)/|R|)``; their extrapolated exposures agree wherever tensorflow_privacy's is finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy.stats import skewnorm

from forgetlab.metrics.registry import register_metric

LOG2_E = math.log2(math.e)
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
Convention = Literal["forgetlab", "tf_privacy"]


def _array(values: Sequence[float] | np.ndarray | float) -> np.ndarray:
    return np.atleast_1d(np.asarray(values, dtype=np.float64))


def _space(n_references: int, convention: Convention) -> int:
    """The ``|R|`` or ``|R| + 1`` whose log2 is the largest exposure."""
    if convention not in ("forgetlab", "tf_privacy"):
        raise ValueError(f"exposure convention {convention!r}: 'forgetlab' or 'tf_privacy'")
    return n_references + 1 if convention == "forgetlab" else n_references


def exposure_rank(
    candidate_logppl: Sequence[float] | float, reference_logppl: Sequence[float], convention: Convention = "forgetlab"
) -> np.ndarray:
    """Rank exposure of each candidate among the ``n`` references, ``rank = 1 + #{ref <= candidate}``:
    ``log2(n + 1) - log2(rank)`` (forgetlab) or ``log2(n) - log2(rank)`` (tf_privacy)."""
    refs = np.sort(_array(reference_logppl))
    if refs.size == 0:
        raise ValueError("exposure needs at least one reference")
    ranks = 1 + np.searchsorted(refs, _array(candidate_logppl), side="right")
    return np.log2(_space(refs.size, convention)) - np.log2(ranks)


def expected_unseen_exposure(n_references: int, convention: Convention = "forgetlab") -> float:
    """Exact mean rank exposure of a never-seen canary among ``n`` references (rank uniform on ``1..n+1``):
    ``log2 S - log2((n+1)!)/(n+1)`` with ``S = n + 1`` (forgetlab) or ``n`` (tf_privacy)."""
    n = n_references + 1
    return math.log2(_space(n_references, convention)) - math.lgamma(n + 1) / math.log(2) / n


@dataclass(frozen=True)
class SkewNormFit:
    """A skew-normal fitted to reference log-perplexities."""

    a: float
    loc: float
    scale: float

    def exposure(self, candidate_logppl: Sequence[float] | float) -> np.ndarray:
        """``-log2 CDF(logppl)`` (computed through ``logcdf``, exact deep in the tail)."""
        log_cdf = skewnorm.logcdf(_array(candidate_logppl), self.a, loc=self.loc, scale=self.scale)
        return -np.maximum(log_cdf, np.log(np.finfo(np.float64).tiny)) / math.log(2)


def fit_skewnorm(reference_logppl: Sequence[float]) -> SkewNormFit:
    """Maximum-likelihood skew-normal fit of the references' log-perplexities."""
    refs = _array(reference_logppl)
    if refs.size < 3 or not np.all(np.isfinite(refs)) or np.ptp(refs) == 0:
        raise ValueError("the skew-normal fit needs at least 3 finite, not all equal references")
    a, loc, scale = skewnorm.fit(refs)
    if not all(math.isfinite(v) for v in (a, loc, scale)) or scale <= 0:
        raise ValueError(f"the skew-normal fit failed (a={a}, loc={loc}, scale={scale})")
    return SkewNormFit(float(a), float(loc), float(scale))


def exposure_extrapolated(
    candidate_logppl: Sequence[float] | float, reference_logppl: Sequence[float], convention: Convention = "forgetlab"
) -> np.ndarray:
    """Extrapolated exposure ``-log2 CDF_skewnorm(logppl)`` with the skew-normal fitted to the references.

    ``tf_privacy``: its formula as is, on the values given (no checks; ``inf`` where the CDF underflows).
    """
    _space(1, convention)  # rejects an unknown convention
    if convention == "tf_privacy":
        params = skewnorm.fit(_array(reference_logppl))
        with np.errstate(divide="ignore"):
            return -np.log2(skewnorm.cdf(_array(candidate_logppl), *params))
    return fit_skewnorm(reference_logppl).exposure(candidate_logppl)


def generalized_exposure(ll_model: Sequence[float], ll_reference: Sequence[float]) -> np.ndarray:
    """Per item ``ll_model - ll_reference`` (nats): 0 like retraining, > 0 residual memorization, < 0 over-unlearned."""
    model, reference = _array(ll_model), _array(ll_reference)
    if model.shape != reference.shape:
        raise ValueError(f"generalized exposure: {model.size} model scores vs {reference.size} reference scores")
    return model - reference


def relative_exposure_rank(
    item_logppl: Sequence[float], heldout_logppl: Sequence[float], convention: Convention = "forgetlab"
) -> np.ndarray:
    """Reading (a): exposure's rank formula with held-out items of the same distribution as candidates."""
    return exposure_rank(item_logppl, heldout_logppl, convention)


def relative_exposure_change(ll_now: Sequence[float], ll_original: Sequence[float]) -> np.ndarray:
    """Reading (b): ``ll_now - ll_original`` per item (nats), the change since before unlearning."""
    return generalized_exposure(ll_now, ll_original)


def describe(values: Sequence[float], prefix: str = "") -> dict[str, float]:
    """Mean and the 10/25/50/75/90 % quantiles of per-item values, as ``{prefix}mean``, ``{prefix}q25``, ..."""
    data = _array(values)
    if data.size == 0:
        return {}
    out = {f"{prefix}mean": float(data.mean())}
    for q, value in zip(QUANTILES, np.quantile(data, QUANTILES)):
        out[f"{prefix}q{int(round(q * 100))}"] = float(value)
    return out


register_metric("exposure", "lower", "Carlini et al. 2019 (The Secret Sharer)", "log2 |R| - log2 rank of a canary among never-inserted references (bits)")
register_metric("genex", "lower", "Baluta et al. 2024", "generalized exposure: ll_model - ll_reference of an item (nats; <= 0: no more than a model never trained on it)")
