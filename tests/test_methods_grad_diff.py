"""Gradient difference (methods/grad_diff.py): NLL and KL retain terms against values computed by hand."""

import pytest

from tests.conftest import forget_batch, hand_kl, hand_nll, loss_value, make_method, retain_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_grad_diff_nll_and_kl(tiny_pair):
    model, reference = tiny_pair
    forget, retain = forget_batch(), retain_batch()
    expected = -hand_nll(model, forget) + 0.5 * hand_nll(model, retain)
    assert loss_value(make_method("grad_diff", retain_weight=0.5), model, forget, retain) == pytest.approx(expected, abs=1e-5)
    summed = -hand_nll(model, forget, "sum") + 2.0 * hand_nll(model, retain, "sum")
    assert loss_value(make_method("grad_diff", reduction="sum", retain_weight=2.0), model, forget, retain) == pytest.approx(summed, abs=1e-4)
    kl = make_method("grad_diff", reference, retain_loss="kl", retain_weight=1.5)
    expected_kl = -hand_nll(model, forget) + 1.5 * hand_kl(model, reference, retain)
    assert hand_kl(model, reference, retain) > 0.01  # the two tiny_pair differ: the term is not trivially 0
    assert loss_value(kl, model, forget, retain) == pytest.approx(expected_kl, abs=1e-5)
    # KL to itself is 0: gradient difference with KL against an unchanged copy is gradient ascent
    self_kl = make_method("grad_diff", model, retain_loss="kl")
    assert loss_value(self_kl, model, forget, retain) == pytest.approx(-hand_nll(model, forget), abs=1e-5)
