"""Membership-inference metrics: the attacks equal their published formulas (their ROC statistics: test_stats.py)."""

import zlib

import numpy as np
import pytest
import torch

from forgetlab.metrics.mia import (
    attack_scores,
    lowest_k_mean,
    min_k_pp_score,
    min_k_pp_token_scores,
    min_k_score,
    zlib_score,
)
from forgetlab.models import byte_tokenizer
from forgetlab.scoring import Scorer, TokenScores


pytestmark = pytest.mark.usefixtures("one_thread")


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
