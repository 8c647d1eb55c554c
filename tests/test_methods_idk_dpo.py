"""IDK + DPO (methods/idk_dpo.py) against its formula computed by hand; a step raises the refusal."""

import math

import pytest
import torch

from forgetlab.methods.base import sequence_logprobs
from tests.conftest import forget_batch, hand_logprobs, hand_nll, log_sigmoid, loss_value, make_method, retain_batch, sgd_step

pytestmark = pytest.mark.usefixtures("one_thread")


def test_idk_dpo_matches_its_formula(tiny_pair):
    model, reference = tiny_pair
    batch = forget_batch(gold=(1,), n_choices=2)  # row 0: original answer, row 1: refusal (preferred)
    lp, _ = hand_logprobs(model, batch)
    ref, _ = hand_logprobs(reference, batch)
    beta = 0.5
    expected = -log_sigmoid(beta * ((lp[1] - ref[1]) - (lp[0] - ref[0]))) + hand_nll(model, retain_batch())
    method = make_method("idk_dpo", reference, beta=beta)
    assert loss_value(method, model, batch, retain_batch()) == pytest.approx(expected, abs=1e-5)
    swapped = forget_batch(gold=(0,), n_choices=2)  # gold marks the preferred row
    expected = -log_sigmoid(beta * ((lp[0] - ref[0]) - (lp[1] - ref[1]))) + hand_nll(model, retain_batch())
    assert loss_value(method, model, swapped, retain_batch()) == pytest.approx(expected, abs=1e-5)
    # at θ = ref the preference term is log 2
    assert loss_value(make_method("idk_dpo", model, retain_weight=0.0), model, batch) == pytest.approx(math.log(2), abs=1e-6)
    assert method.pair_targets("x", " Rome", 0)[0][0] == " Rome" and method.pair_targets("x", " Rome", 0)[1] == 1


def test_idk_and_dpo_raise_the_refusal(tiny_pair):
    model, _ = tiny_pair
    batch = forget_batch(gold=(1,), n_choices=2)
    for method in (make_method("idk", retain_weight=0.0), make_method("idk_dpo", model, beta=1.0, retain_weight=0.0)):
        trained = sgd_step(method, model, batch, lr=0.05)
        with torch.no_grad():
            before, after = sequence_logprobs(model, batch)[0], sequence_logprobs(trained, batch)[0]
        assert after[1] > before[1]  # the preferred / trained-on row gains
    dpo = sgd_step(make_method("idk_dpo", model, beta=1.0, retain_weight=0.0), model, batch, lr=0.05)
    with torch.no_grad():
        assert sequence_logprobs(dpo, batch)[0][0] < sequence_logprobs(model, batch)[0][0]  # the original answer loses
