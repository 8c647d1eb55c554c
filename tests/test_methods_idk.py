"""IDK (methods/idk.py): seeded refusals and the loss computed by hand."""

import pytest

from forgetlab.data.types import MCDoc
from tests.conftest import forget_batch, hand_nll, loss_value, make_method, retain_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_idk_refusals_and_loss(tiny_pair):
    model, _ = tiny_pair
    idk = make_method("idk")
    (first,), gold = idk.pair_targets("item-3", " Paris", seed=0)
    assert gold == 0 and first.startswith(" ") and first.strip() in idk.refusals
    assert idk.pair_targets("item-3", " Paris", seed=0)[0] == [first]  # stable
    picks = {idk.pair_targets(f"item-{i}", "x", seed=0)[0][0] for i in range(40)}
    assert len(picks) > 2  # a seeded choice among the variants, not always the first
    custom = make_method("idk", refusals=["No comment."])
    assert custom.pair_targets("a", "\n42", 1) == (["\nNo comment."], 0)
    expected = hand_nll(model, forget_batch()) + 0.7 * hand_nll(model, retain_batch())
    assert loss_value(make_method("idk", retain_weight=0.7), model, forget_batch(), retain_batch()) == pytest.approx(expected, abs=1e-5)
    doc = MCDoc("t", "d1", ("Q:", "Q:"), (" yes", " no"), 1)
    relabelled = custom.relabel([doc], seed=0)[0]
    assert relabelled.continuations == (" yes", " No comment.") and relabelled.gold == 1
