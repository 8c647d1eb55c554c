import math

import pytest
import torch

from forgetlab.methods import METHODS, Batch
from forgetlab.methods.base import choice_cross_entropy, sequence_logprobs, token_nll
from tests.conftest import make_docs


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
