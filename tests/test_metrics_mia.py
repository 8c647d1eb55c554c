"""Membership-inference metrics: ROC statistics equal scikit-learn's, attacks equal their published formulas."""

import zlib

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve as sk_roc_curve

from forgetlab.metrics.mia import (
    attack_scores,
    bootstrap_auc_ci,
    lowest_k_mean,
    mia_summary,
    min_k_pp_score,
    min_k_pp_token_scores,
    min_k_score,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
    zlib_score,
)
from forgetlab.models import byte_tokenizer
from forgetlab.scoring import Scorer, TokenScores


pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_tpr_at_fpr_counts_a_point_exactly_at_the_target_fpr():
    """Convention: FPR <= target. 100 non-members at 0.00 .. 0.99; one false positive is FPR exactly 1 %."""
    nonmembers = np.arange(100) / 100
    members = np.array([2.0, 0.985, 0.5, 0.2])
    # by hand, thresholds from the top: 2.0 -> TP 1, FP 0; 0.99 -> TP 1, FP 1 (FPR 0.01); 0.985 -> TP 2, FP 1;
    # 0.98 -> FP 2 (FPR 0.02). At most 1 % FPR: TPR 2/4. Strictly below 1 %: only FP 0, TPR 1/4.
    assert tpr_at_fpr(members, nonmembers, 0.01) == 0.5
    assert tpr_at_fpr(members, nonmembers, 0.01, strict=True) == 0.25
    assert mia_summary(members, nonmembers, n_resamples=0)["tpr_1pct"] == 0.5
    # LiRA's line, re-typed (scikit-learn's default curve, strict <), gives the strict number
    labels, scores = np.r_[np.ones(4), np.zeros(100)], np.r_[members, nonmembers]
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, scores)
    assert sk_tpr[np.where(sk_fpr < 0.01)[0][-1]] == 0.25
    assert tpr_at_fpr(members, nonmembers, 0.001) == tpr_at_fpr(members, nonmembers, 0.001, strict=True) == 0.25


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
    _, per_token, mu, sigma = published_min_k_pp(LOGITS[:3], TOKENS[:3], 1.0)
    picked = torch.log_softmax(LOGITS[:3].double(), -1).gather(-1, torch.tensor(TOKENS[:3])[:, None]).squeeze(-1).numpy()
    np.testing.assert_allclose(min_k_pp_token_scores(picked, mu, sigma), per_token, rtol=1e-12)
    for k in (0.34, 0.67, 1.0):
        expected = published_min_k_pp(LOGITS[:3], TOKENS[:3], k)[0]
        assert min_k_pp_score(picked, mu, sigma, k) == pytest.approx(expected, rel=1e-12)
    # σ = 0 (a uniform distribution; the published code divides 0 by 0): the token's score is 0, not NaN
    assert min_k_pp_token_scores(np.array([-1.6, -0.5]), np.array([-1.6, -1.0]), np.array([0.0, 0.5])).tolist() == [0.0, 1.0]


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
        TokenScores(logprobs, np.ones(5, bool), np.zeros(5), np.ones(5)),
        TokenScores(logprobs[:2], np.ones(2, bool), np.zeros(2), np.ones(2)),
    ]
    scores = attack_scores(stats, [text, "x"], k=0.4, reference_losses=[1.0, 2.0])
    assert scores["loss"].tolist() == pytest.approx([logprobs.mean(), logprobs[:2].mean()])
    assert scores["min_k_pp"].tolist() == pytest.approx([-2.5, -3.0])  # μ = 0, σ = 1: z = log p
    assert scores["ref"].tolist() == pytest.approx([-(1.32 - 1.0), -(1.75 - 2.0)])
    assert "ref" not in attack_scores(stats, [text, "x"], k=0.4)


class Bigram(torch.nn.Module):
    """A causal LM whose next-token logits depend only on the current token: ``TABLE[x_t]``.

    Rows 0-3 of the table are the fixed logits above (over tokens 0-4; every other token gets -30).
    """

    def __init__(self, vocab: int) -> None:
        from transformers import LlamaConfig

        super().__init__()
        self.config = LlamaConfig(vocab_size=vocab, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                  max_position_embeddings=64)
        self.config._attn_implementation = "sdpa"
        table = torch.full((vocab, vocab), -30.0)
        table[:, :5] = 0.0
        table[:4, :5] = LOGITS
        self.register_buffer("table", table)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the engine reads the device from a parameter

    @property
    def dtype(self):
        return torch.float32

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
        return type("Out", (), {"logits": self.table[input_ids]})()


def test_scoring_engine_token_scores_on_fixed_logits():
    """Scorer.token_scores through the real engine (prefix trees and plain rows) on known logits."""
    tokenizer = byte_tokenizer()  # ids 0-4 are the characters !"#$% (no merges, no special tokens added)
    model = Bigram(len(tokenizer))
    context, continuation = tokenizer.decode([0]), tokenizer.decode([4, 2, 3])
    assert tokenizer.encode(context + continuation) == [0, 4, 2, 3]
    # position t predicts x_{t+1} from TABLE[x_t]: rows 0, 4, 2 predict the targets 4, 2, 3
    for prefix_sharing in (True, False):
        scorer = Scorer(model, tokenizer, prefix_sharing=prefix_sharing, progress=False)
        (scores,) = scorer.token_scores([(context, continuation)])
        (summed,) = scorer.loglikelihood([(context, continuation)])
        rows, targets = torch.stack([model.table[t, :] for t in (0, 4, 2)]), [4, 2, 3]
        _, _, mu, sigma = published_min_k_pp(rows, targets, 1.0)
        log_probs = torch.log_softmax(rows.float(), -1)
        np.testing.assert_allclose(scores.logprobs, [log_probs[i, t].item() for i, t in enumerate(targets)], rtol=1e-6)
        np.testing.assert_allclose(scores.mu, mu, rtol=1e-5)
        np.testing.assert_allclose(scores.sigma, sigma, rtol=1e-5)
        assert scores.greedy.tolist() == [log_probs[i].argmax().item() == t for i, t in enumerate(targets)]
        assert scores.logprobs.sum() == pytest.approx(summed.logprob, abs=1e-9)
        assert bool(scores.greedy.all()) == summed.is_greedy and len(scores.logprobs) == summed.n_tokens


def test_scoring_engine_token_scores_with_shared_prefixes(tiny):
    """Continuations sharing a context (one prefix-tree row) keep their own tokens, in order."""
    from forgetlab.scoring import encode_pair

    model, tokenizer = tiny
    requests = [("The cat", " sat on"), ("The cat", " sat in the"), ("A", " dog"), ("The cat", " sat on")]
    scores = Scorer(model, tokenizer, progress=False).token_scores(requests)
    for (context, continuation), got in zip(requests, scores):
        ctx, cont = encode_pair(tokenizer, context, continuation)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ctx + cont])).logits[0, len(ctx) - 1 : -1]
        _, _, mu, sigma = published_min_k_pp(logits, cont, 1.0)
        log_probs = torch.log_softmax(logits.double(), -1)
        np.testing.assert_allclose(got.logprobs, [log_probs[i, t].item() for i, t in enumerate(cont)], atol=1e-5)
        np.testing.assert_allclose(got.mu, mu, atol=1e-5)
        np.testing.assert_allclose(got.sigma, sigma, atol=1e-5)
        assert got.greedy.tolist() == (log_probs.argmax(-1) == torch.tensor(cont)).tolist()
