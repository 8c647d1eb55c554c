"""Membership-inference metrics: ROC statistics equal scikit-learn's, attacks equal their published formulas."""

import math
import zlib

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve as sk_roc_curve

from forgetlab.methods import Batch
from forgetlab.metrics.mia import (
    TokenStats,
    attack_scores,
    bootstrap_auc_ci,
    lowest_k_mean,
    mia_summary,
    min_k_pp_score,
    min_k_pp_token_scores,
    min_k_score,
    roc_auc,
    roc_curve,
    token_statistics,
    tpr_at_fpr,
    vocab_moments,
    zlib_score,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run far faster on one thread than on two contended ones (a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _scores(seed, n_members, n_nonmembers, ties):
    rng = np.random.default_rng(seed)
    members = rng.normal(0.3, 1.0, n_members)
    nonmembers = rng.normal(0.0, 1.0, n_nonmembers)
    if ties:  # coarse rounding makes many ties, within and across the groups
        members, nonmembers = np.round(members, 1), np.round(nonmembers, 1)
    return members, nonmembers


@pytest.mark.parametrize(
    "seed, n_members, n_nonmembers, ties", [(0, 30, 40, False), (1, 200, 150, True), (2, 7, 3, True), (3, 1000, 1000, False)]
)
def test_auc_roc_and_tpr_equal_sklearn(seed, n_members, n_nonmembers, ties):
    members, nonmembers = _scores(seed, n_members, n_nonmembers, ties)
    labels = np.r_[np.ones(n_members), np.zeros(n_nonmembers)]
    scores = np.r_[members, nonmembers]
    assert roc_auc(members, nonmembers) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, thresholds = roc_curve(members, nonmembers)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thresholds[1:], sk_thr[1:])
    for target in (0.01, 0.001, 0.1):
        assert tpr_at_fpr(members, nonmembers, target) == pytest.approx(sk_tpr[sk_fpr <= target].max())


def test_auc_direction_and_summary():
    members, nonmembers = np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0])
    assert roc_auc(members, nonmembers) == 1.0  # higher score = member: perfectly separated
    assert roc_auc(nonmembers, members) == 0.0  # members look *less* likely: also detectable
    assert roc_auc([1.0, 1.0], [1.0, 1.0]) == 0.5  # indistinguishable
    summary = mia_summary(members, nonmembers, n_resamples=200, seed=0)
    assert summary["auc"] == 1.0 and summary["auc_gap"] == 0.5
    assert summary["tpr_1pct"] == 1.0 and summary["tpr_0.1pct"] == 1.0
    assert summary["auc_ci_low"] == summary["auc_ci_high"] == 1.0
    with pytest.raises(ValueError, match="members"):
        roc_auc([], [1.0])


def test_bootstrap_interval_is_stratified_and_seeded():
    members, nonmembers = _scores(5, 40, 60, ties=False)
    low, high = bootstrap_auc_ci(members, nonmembers, n_resamples=500, seed=3)
    assert 0.0 <= low < roc_auc(members, nonmembers) < high <= 1.0
    assert bootstrap_auc_ci(members, nonmembers, n_resamples=500, seed=3) == (low, high)
    # each resample keeps 40 members and 60 non-members, so its AUC is the rank formula on them
    rng = np.random.default_rng(3)
    m = members[rng.integers(0, 40, size=(500, 40))]
    n = nonmembers[rng.integers(0, 60, size=(500, 60))]
    aucs = [roc_auc_score(np.r_[np.ones(40), np.zeros(60)], np.r_[a, b]) for a, b in zip(m, n)]
    assert (low, high) == pytest.approx(tuple(np.quantile(aucs, [0.025, 0.975])))
    assert bootstrap_auc_ci(members, nonmembers, n_resamples=0) is None


# ----------------------------------------------------------------------------- attack formulas

LOGITS = torch.tensor(
    [[2.0, 1.0, 0.5, -1.0, 0.0], [0.1, 0.2, 3.0, -0.5, 1.5], [-2.0, 4.0, 0.0, 0.3, 0.3], [1.0, 1.0, 1.0, 1.0, 1.0]]
)
TOKENS = [0, 4, 2, 3]


def published_min_k_pp(logits, tokens, k):
    """Min-K%++ exactly as the authors' reference code (zjysteven/mink-plus-plus, run.py)."""
    probs = torch.softmax(logits.double(), dim=-1)
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    token_log_probs = log_probs.gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)
    mu = (probs * log_probs).sum(-1)
    sigma = (probs * torch.square(log_probs)).sum(-1) - torch.square(mu)
    mink_plus = (token_log_probs - mu) / sigma.sqrt()
    k_length = int(len(mink_plus) * k)
    return float(np.mean(np.sort(mink_plus.numpy())[:k_length])), mink_plus.numpy(), mu.numpy(), sigma.sqrt().numpy()


def test_min_k_pp_matches_the_published_formula_on_fixed_logits():
    logp, mu, sigma = vocab_moments(LOGITS[:3])
    picked = logp.gather(-1, torch.tensor(TOKENS[:3])[:, None]).squeeze(-1).numpy()
    for k in (0.34, 0.67, 1.0):
        expected, per_token, mu_ref, sigma_ref = published_min_k_pp(LOGITS[:3], TOKENS[:3], k)
        np.testing.assert_allclose(mu.numpy(), mu_ref, rtol=1e-12)
        np.testing.assert_allclose(sigma.numpy(), sigma_ref, rtol=1e-10)
        np.testing.assert_allclose(min_k_pp_token_scores(picked, mu.numpy(), sigma.numpy()), per_token, rtol=1e-10)
        assert min_k_pp_score(picked, mu.numpy(), sigma.numpy(), k) == pytest.approx(expected, rel=1e-10)
    # a uniform distribution has σ = 0: the token's standardised score is defined as 0, not NaN
    logp, mu, sigma = vocab_moments(LOGITS[3:])
    assert sigma.item() < 1e-10
    assert min_k_pp_token_scores(np.array([logp[0, 3].item()]), mu.numpy(), sigma.numpy()).tolist() == [0.0]


def test_min_k_loss_and_zlib_by_hand():
    logprobs = np.array([-0.5, -3.0, -1.0, -0.1, -2.0])
    assert min_k_score(logprobs, 0.4) == pytest.approx((-3.0 - 2.0) / 2)  # 2 lowest of 5
    assert min_k_score(logprobs, 0.1) == -3.0  # never empty: at least one token
    assert lowest_k_mean(logprobs, 1.0) == pytest.approx(logprobs.mean())
    with pytest.raises(ValueError):
        lowest_k_mean(logprobs, 0.0)
    text = "the cat sat on the mat"
    assert zlib_score(logprobs, text) == pytest.approx(logprobs.mean() / len(zlib.compress(text.encode())))
    stats = [
        TokenStats(logprobs, np.zeros(5), np.ones(5), np.ones(5, bool)),
        TokenStats(logprobs[:2], np.zeros(2), np.ones(2), np.ones(2, bool)),
    ]
    scores = attack_scores(stats, [text, "x"], k=0.4, reference_losses=[1.0, 2.0])
    assert scores["loss"].tolist() == pytest.approx([logprobs.mean(), logprobs[:2].mean()])
    assert scores["min_k_pp"].tolist() == pytest.approx([-2.5, -3.0])  # μ = 0, σ = 1: z = log p
    assert scores["ref"].tolist() == pytest.approx([-(1.32 - 1.0), -(1.75 - 2.0)])
    assert "ref" not in attack_scores(stats, [text, "x"], k=0.4)


class FixedLogits(torch.nn.Module):
    """A 'model' whose logits at every row are the fixed table (position t predicts token t+1)."""

    def forward(self, input_ids, attention_mask=None):
        rows = input_ids.shape[0]
        logits = torch.cat([LOGITS, torch.zeros(1, 5)])[None].expand(rows, -1, -1)
        return type("Out", (), {"logits": logits[:, : input_ids.shape[1]]})()


def test_token_statistics_reads_labelled_positions_only():
    ids = torch.tensor([[1, 0, 4, 2, 3], [1, 0, 4, 0, 0]])
    labels = torch.tensor([[-100, 0, 4, 2, 3], [-100, -100, 4, -100, -100]])
    batch = Batch(ids, torch.tensor([[1] * 5, [1, 1, 1, 0, 0]]), labels, torch.tensor([0, 0]), 1)
    first, second = token_statistics(FixedLogits(), batch)
    expected, per_token, mu, sigma = published_min_k_pp(LOGITS, TOKENS, 1.0)
    log_probs = torch.log_softmax(LOGITS.double(), -1)
    np.testing.assert_allclose(first.logprobs, [log_probs[i, t].item() for i, t in enumerate(TOKENS)])
    np.testing.assert_allclose(first.mu, mu, rtol=1e-12)
    np.testing.assert_allclose(first.sigma[:3], sigma[:3], rtol=1e-10)
    assert first.sigma[3] < 1e-10  # uniform row: the published code's σ² is -0.0 (NaN after sqrt); ours is ~0
    assert min_k_pp_token_scores(first.logprobs, first.mu, first.sigma)[3] == 0.0
    assert first.greedy.tolist() == [True, False, False, False]
    assert second.logprobs.tolist() == pytest.approx([log_probs[1, 4].item()])
    assert first.loss == pytest.approx(-np.mean(first.logprobs))
    assert math.isfinite(min_k_pp_score(first.logprobs, first.mu, first.sigma, 0.5))
