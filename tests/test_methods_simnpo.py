"""SimNPO (methods/simnpo.py) against its formula computed by hand."""

import math

import pytest
import torch

from forgetlab.methods import Batch
from forgetlab.methods.simnpo import simnpo_loss
from tests.conftest import hand_logprobs, hand_nll, log_sigmoid, loss_value, make_method, retain_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def uneven_batch():
    # answers of 3 tokens (row 0) and 1 token (row 1): a per-token average differs from a per-row one
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    labels = torch.tensor([[-100, -100, 7, 8, 9], [-100, -100, -100, 13, -100]])
    return Batch(ids, mask, labels, torch.tensor([0]), n_choices=1)


def hand_simnpo(lp, n, beta, gamma):
    return -(2 / beta) * sum(log_sigmoid(-(beta / k) * a - gamma) for a, k in zip(lp, n)) / len(lp)


def test_simnpo_loss_by_hand():
    """log π = (−2, −6) over (2, 3) tokens, β = 2, γ = 1: σ arguments 1 and 3, so
    L = (log(1 + e^−1) + log(1 + e^−3)) / 2."""
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(-3))) / 2
    assert expected == pytest.approx(0.18092452, abs=1e-8)
    got = simnpo_loss(torch.tensor([-2.0, -6.0]), torch.tensor([2, 3]), beta=2.0, gamma=1.0).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_simnpo_matches_its_formula(tiny_pair):
    """On the tiny model at β = 0.3, γ = 1 the σ arguments are near 0, so the loss is O(1) and
    γ's sign, the length normalisation and the 2/β factor each move it by far more than the tolerance."""
    model, _ = tiny_pair
    forget = uneven_batch()
    lp, n = hand_logprobs(model, forget)
    assert n == [3, 1]
    beta, gamma = 0.3, 1.0
    expected = hand_simnpo(lp, n, beta, gamma)
    assert 1.0 < expected < 10.0
    assert abs(hand_simnpo(lp, n, beta, -gamma) - expected) > 1.0  # γ with the wrong sign
    assert abs(hand_simnpo(lp, [1, 1], beta, gamma) - expected) > 1.0  # no length normalisation
    method = make_method("simnpo", beta=beta, gamma=gamma)
    assert not method.needs_reference and not method.needs_retain
    assert loss_value(method, model, forget) == pytest.approx(expected, rel=1e-5)
    retained = make_method("simnpo", beta=beta, gamma=gamma, retain_weight=1.0)
    assert loss_value(retained, model, forget, retain_batch()) == pytest.approx(expected + hand_nll(model, retain_batch()), rel=1e-5)
