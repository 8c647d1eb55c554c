import math

import pytest
import torch

from forgetlab.methods import METHODS, Batch
from forgetlab.methods.base import choice_cross_entropy, sequence_logprobs, token_nll
from tests.conftest import forget_batch, loss_value, make_docs, make_method, retain_batch, sgd_step


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch():
    # two rows, right-padded; the answer starts at position 3 in row 0 and 2 in row 1
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    labels = torch.tensor([[-100, -100, -100, 8, 9], [-100, -100, 12, 13, -100]])
    return Batch(ids, mask, labels, torch.tensor([1]), n_choices=2)


def _by_hand(model, batch):
    """Per-row summed log-prob of labelled tokens from single unpadded forward passes."""
    sums, counts = [], []
    for row in range(batch.input_ids.shape[0]):
        length = int(batch.attention_mask[row].sum())
        ids = batch.input_ids[row, :length].unsqueeze(0)
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
        total, n = 0.0, 0
        for pos in range(1, length):
            if batch.labels[row, pos] != -100:
                total += logp[pos - 1, ids[0, pos]].item()
                n += 1
        sums.append(total)
        counts.append(n)
    return sums, counts


def test_losses_match_hand_computation(tiny):
    model, _ = tiny
    batch = _batch()
    sums, counts = _by_hand(model, batch)
    with torch.no_grad():
        got_sums, got_counts = sequence_logprobs(model, batch)
        assert got_sums.tolist() == pytest.approx(sums, abs=1e-5)
        assert got_counts.tolist() == counts
        assert token_nll(model, batch).item() == pytest.approx(-sum(sums) / sum(counts), abs=1e-5)
        assert token_nll(model, batch, "sum").item() == pytest.approx(-sum(sums) / len(sums), abs=1e-5)
        # 2-way classification: the two rows are the two choices of one item, gold = 1
        expected = -(sums[1] - math.log(math.exp(sums[0]) + math.exp(sums[1])))
        assert choice_cross_entropy(model, batch).item() == pytest.approx(expected, abs=1e-5)


def test_gradient_ascent_negates_and_finetune_does_not(tiny):
    model, _ = tiny
    batch = _batch()
    with torch.no_grad():
        nll = token_nll(model, batch).item()
        assert METHODS.get("finetune")().loss(model, batch).item() == pytest.approx(nll)
        assert METHODS.get("gradient_ascent")().loss(model, batch).item() == pytest.approx(-nll)
        summed = token_nll(model, batch, "sum").item()
        assert METHODS.get("gradient_ascent")(reduction="sum").loss(model, batch).item() == pytest.approx(-summed)
        assert METHODS.get("random_label")(loss="choice").loss(model, batch).item() == pytest.approx(
            choice_cross_entropy(model, batch).item()
        )


def test_random_labels_are_seeded_uniform_and_order_free():
    docs = make_docs(400)
    method = METHODS.get("random_label")()
    labels = [d.gold for d in method.relabel(docs, seed=0)]
    assert labels == [d.gold for d in method.relabel(docs, seed=0)]
    assert [d.gold for d in method.relabel(docs[::-1], seed=0)] == labels[::-1]  # per item, not per position
    assert labels != [d.gold for d in method.relabel(docs, seed=1)]
    assert 0.4 < sum(labels) / len(labels) < 0.6  # uniform over two options
    agree = sum(a == d.gold for a, d in zip(labels, docs)) / len(docs)
    assert 0.4 < agree < 0.6  # about half the random labels are right


def test_flipped_labels_are_always_wrong():
    docs = make_docs(50)
    flipped = METHODS.get("flipped_label")().relabel(docs, seed=0)
    assert all(f.gold != d.gold for f, d in zip(flipped, docs))
    assert all(f.contexts == d.contexts and f.continuations == d.continuations for f, d in zip(flipped, docs))


def test_only_flipped_labels_use_the_flipped_forget_ratio():
    assert METHODS.get("flipped_label").flips_labels
    assert [name for name in METHODS.names() if METHODS.get(name).flips_labels] == ["flipped_label"]


def test_unknown_method_lists_known():
    with pytest.raises(KeyError, match="unknown method 'nope'; known: .*random_label"):
        METHODS.get("nope")


def test_methods_declare_their_losses_choices_and_item_targets():
    """Facts on the class: the losses a method supports (checked once, by the base constructor), whether it needs
    multiple-choice items or pairwise batches, and what it trains on for a (prompt, target) item."""
    for name in ("grad_diff", "idk", "npo", "rmu", "simnpo"):
        with pytest.raises(ValueError, match=f"method {name}: loss 'choice' is not supported; use loss: answer or full"):
            METHODS.get(name)(loss="choice")
    assert METHODS.get("finetune")(loss="choice").loss_mode == "choice"
    assert {n for n in METHODS.names() if METHODS.get(n).needs_choices} == {"flipped_label", "random_label"}
    assert {n for n in METHODS.names() if METHODS.get(n).pairwise} == {"idk_dpo"}
    assert METHODS.get("gradient_ascent")().pair_targets("item-1", " Paris", seed=0) == ([" Paris"], 0)


# --------------------------------------------------------------------------- unlearning methods: masking, signs, options


def test_padding_and_masked_positions_do_not_count(tiny_pair):
    model, reference = tiny_pair
    batch, other = forget_batch(), forget_batch()
    other.input_ids[1, 4] = 99  # a padding token
    for name, options in [("grad_diff", {}), ("npo", {}), ("simnpo", {}), ("rmu", {"layer": 1})]:
        method = make_method(name, reference, **options)
        assert loss_value(method, model, batch, retain_batch()) == pytest.approx(loss_value(method, model, other, retain_batch()), abs=1e-5)


# SimNPO saturates on items the model finds very unlikely (σ(−(β/|y|)·log π) → 1 for a random model
# at β = 2.5), so its sign is checked at a small β where the gradient is not vanishing.
@pytest.mark.parametrize("name, options", [("gradient_ascent", {}), ("grad_diff", {}), ("npo", {}), ("simnpo", {"beta": 0.1})])
def test_ascent_methods_lower_forget_likelihood(tiny_pair, name, options):
    model, reference = tiny_pair
    method = make_method(name, reference, **options)
    assert method.ascent
    trained = sgd_step(method, model, forget_batch(), retain_batch())
    with torch.no_grad():
        assert sequence_logprobs(trained, forget_batch())[0].sum() < sequence_logprobs(model, forget_batch())[0].sum()


def test_options_and_flags(tiny_pair):
    with pytest.raises(ValueError, match="unknown options"):
        METHODS.get("npo")(betta=0.1)
    with pytest.raises(ValueError, match="beta"):
        METHODS.get("simnpo")(beta=0)
    with pytest.raises(ValueError, match="loss: choice"):
        METHODS.get("idk_dpo")(loss="answer")
    with pytest.raises(ValueError, match="retain_loss"):
        METHODS.get("grad_diff")(retain_loss="mse")
    assert not METHODS.get("grad_diff")().needs_reference
    assert METHODS.get("grad_diff")(retain_loss="kl").needs_reference
    assert not METHODS.get("grad_diff")(retain_weight=0).needs_retain
    assert not METHODS.get("npo")().needs_retain and METHODS.get("npo")().needs_reference
    assert METHODS.get("idk")().needs_retain and not METHODS.get("idk")().needs_reference
    assert METHODS.get("rmu")().needs_retain and METHODS.get("rmu")().needs_reference
    with pytest.raises(ValueError, match="no retain batch"):
        METHODS.get("grad_diff")().loss(tiny_pair[0], forget_batch(), None)
    with pytest.raises(ValueError, match="reference"):
        METHODS.get("npo")().loss(tiny_pair[0], forget_batch(), None)
