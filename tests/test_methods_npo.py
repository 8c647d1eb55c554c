"""NPO (methods/npo.py) against its formula computed by hand, and its first step (gradient ascent)."""

import copy
import math

import pytest
import torch

from tests.conftest import forget_batch, hand_logprobs, hand_nll, log_sigmoid, loss_value, make_method, retain_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_npo_matches_its_formula(tiny_pair):
    model, reference = tiny_pair
    forget = forget_batch()
    lp, _ = hand_logprobs(model, forget)
    ref, _ = hand_logprobs(reference, forget)
    for beta in (0.1, 1.0):
        expected = -(2 / beta) * sum(log_sigmoid(-beta * (a - b)) for a, b in zip(lp, ref)) / len(lp)
        assert loss_value(make_method("npo", reference, beta=beta), model, forget) == pytest.approx(expected, abs=1e-5)
    # at θ = ref the loss is (2/β)·log 2, whatever the data
    assert loss_value(make_method("npo", model, beta=0.5), model, forget) == pytest.approx(4 * math.log(2), abs=1e-5)
    with_retain = make_method("npo", reference, beta=0.1, retain_weight=0.3)
    assert with_retain.needs_retain and with_retain.needs_reference
    expected = -(20) * sum(log_sigmoid(-0.1 * (a - b)) for a, b in zip(lp, ref)) / 2 + 0.3 * hand_nll(model, retain_batch())
    assert loss_value(with_retain, model, forget, retain_batch()) == pytest.approx(expected, abs=1e-4)


def test_npo_gradient_at_reference_is_gradient_ascent(tiny_pair):
    """∂L_NPO/∂log π = 2σ(βΔ) = 1 at θ = ref: NPO's first step is ascent on the summed NLL."""
    model, _ = tiny_pair
    trained = copy.deepcopy(model)
    grads = []
    for method in (make_method("npo", model, beta=0.3), make_method("gradient_ascent", reduction="sum")):
        trained.zero_grad()
        method.loss(trained, forget_batch()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in trained.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
