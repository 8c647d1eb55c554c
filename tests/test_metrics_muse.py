"""MUSE metrics against re-typed copies of the authors' code (swj0419/muse_bench ``metrics/privleak.py``,
``metrics/knowmem.py``, ``eval.py`` at fcd6651) and scikit-learn's ROC."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc as sk_auc
from sklearn.metrics import roc_curve

from forgetlab.metrics.muse import cut_at_stop_words, knowmem_prompt, min_k_prob, muse_auc, privleak


def muse_min_k(all_prob: list[float], ratio: float) -> float:
    """``privleak.py``: ``k_length = int(len(all_prob)*ratio); -np.mean(np.sort(all_prob)[:k_length])``."""
    k_length = int(len(all_prob) * ratio)
    return float(-np.mean(np.sort(all_prob)[:k_length]).item())


def muse_sweep_auc(forget: list[float], holdout: list[float]) -> float:
    """``privleak.py``: ``ppl`` = nonmember (forget, y=0) + member (holdout, y=1); ``roc_curve(y, -ppl)``."""
    ppl = np.array(forget + holdout)
    y = np.array([0] * len(forget) + [1] * len(holdout))
    fpr, tpr, _ = roc_curve(y, -ppl)
    return float(sk_auc(fpr, tpr))


def test_min_k_equals_muse() -> None:
    rng = np.random.default_rng(3)
    for n in (3, 10, 257):
        logprobs = list(rng.normal(-3, 2, n))
        assert min_k_prob(logprobs, 0.4) == pytest.approx(muse_min_k(logprobs, 0.4), rel=1e-12)
    assert min_k_prob([-1.0, -5.0, -2.0, -4.0, -3.0], 0.4) == pytest.approx((5.0 + 4.0) / 2)  # ⌊0.4·5⌋ = 2 lowest
    assert min_k_prob([-1.0, -2.0], 0.4) == 2.0  # MUSE: NaN (no token); here the single lowest


def test_auc_and_privleak_equal_muse() -> None:
    rng = np.random.default_rng(4)
    forget, holdout = list(rng.normal(2.0, 1, 50)), list(rng.normal(2.5, 1, 60))
    forget[3] = holdout[5]  # a tie
    assert muse_auc(forget, holdout) == pytest.approx(muse_sweep_auc(forget, holdout), rel=1e-12)
    memorised = [0.1, 0.2, 0.3]  # low Min-K: the forget texts are likely, the model saw them
    assert muse_auc(memorised, [2.0, 3.0, 4.0]) == 0.0
    assert muse_auc([2.0, 3.0, 4.0], memorised) == 1.0
    # eval.py: (auc - AUC_RETRAIN) / AUC_RETRAIN * 100, e.g. news' retrain AUC 0.4772
    assert privleak(0.0, 0.4772) == pytest.approx(-100.0)
    assert privleak(0.6, 0.4772) == pytest.approx((0.6 - 0.4772) / 0.4772 * 100)
    with pytest.raises(ValueError, match="undefined"):
        privleak(0.3, 0.0)


def test_knowmem_prompt_and_stop_words_as_muse_writes_them() -> None:
    icl = [("Who won?", "Ann"), ("Where?", "Paris")]
    assert knowmem_prompt(icl, "When?") == "Question: Who won?\nAnswer: Ann\n\nQuestion: Where?\nAnswer: Paris\n\nQuestion: When?\nAnswer: "
    assert cut_at_stop_words("In May\n\nQuestion: next") == "In May"
    assert cut_at_stop_words("In May\nQuestion: x") == "In May"
    assert cut_at_stop_words("June Question: x") == "June "
    assert cut_at_stop_words("no stop here") == "no stop here"
