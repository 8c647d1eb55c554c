"""Recovery attacks on the tiny model: quantization, relearning, the logit lens; and the recovery ratio."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from forgetlab.attacks import ATTACKS, AttackContext, AttackSpec, ProbeSplit, build_attack
from forgetlab.attacks.logit_lens import lens_logits, lens_logprobs
from forgetlab.attacks.probe import resolve_layers
from forgetlab.attacks.quantize import quantized_copy
from forgetlab.data.types import MCDoc, Pair
from forgetlab.metrics.recovery import recovery, recovery_ratio
from forgetlab.scoring import Scorer, score_mc
from forgetlab.train import encode_pairs

pytestmark = pytest.mark.usefixtures("one_thread")

PAIRS = [Pair(f"p{i}", f"Question {i}: what is {i} plus {i}?", f" {2 * i}") for i in range(12)]


def _inputs(tokenizer):
    ids = [tokenizer(p.prompt + p.target)["input_ids"] for p in PAIRS[:3]]
    width = max(map(len, ids))
    input_ids = torch.tensor([row + [0] * (width - len(row)) for row in ids])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
    return input_ids, mask


def _measure(tokenizer):
    def measure(model):
        scores = Scorer(model, tokenizer, batch_size=8).loglikelihood([p.request() for p in PAIRS[:6]])
        return {"forget/loss": -sum(s.logprob for s in scores) / sum(s.n_tokens for s in scores)}

    return measure


def _context(tokenizer, **changes):
    items = encode_pairs(tokenizer, PAIRS[6:], 1024)
    base = dict(tokenizer=tokenizer, seed=0, accelerator=Accelerator(cpu=True), relearn_items={"disjoint": items},
                forget_requests=[p.request() for p in PAIRS[:6]])
    return AttackContext(**{**base, **changes})


def test_int8_keeps_the_logits_close_and_int4_moves_them_more(tiny):
    model, tokenizer = tiny
    input_ids, mask = _inputs(tokenizer)
    with torch.no_grad():
        reference = model(input_ids=input_ids, attention_mask=mask).logits
        gaps = {bits: float((quantized_copy(model, bits)(input_ids=input_ids, attention_mask=mask).logits - reference).abs().max())
                for bits in (8, 4)}
        after = model(input_ids=input_ids, attention_mask=mask).logits
    assert 0 < gaps[8] < 0.02  # int8 per-channel: within 0.02 of the float logits (measured 0.003)
    assert gaps[4] > 5 * gaps[8]  # int4 groups of 128: a coarser grid
    assert torch.equal(after, reference)  # the attacked model is a copy


def test_nf4_puts_every_linear_weight_on_a_16_value_grid_per_block_and_leaves_the_head(tiny):
    model, tokenizer = tiny
    quantized = quantized_copy(model, "nf4")
    head = quantized.get_output_embeddings()
    linears = [(n, m) for n, m in quantized.named_modules() if isinstance(m, torch.nn.Linear) and m is not head]
    assert linears
    for name, module in linears:
        blocks = module.weight.detach().flatten().reshape(-1, 64)
        assert max(len(torch.unique(block)) for block in blocks) <= 16, name  # NF4: 16 levels times a block's absmax
        original = dict(model.named_modules())[name].weight
        assert not torch.equal(module.weight, original)
    assert torch.equal(head.weight, model.get_output_embeddings().weight)
    input_ids, mask = _inputs(tokenizer)
    with torch.no_grad():
        gap = (quantized(input_ids=input_ids, attention_mask=mask).logits - model(input_ids=input_ids, attention_mask=mask).logits).abs().max()
    assert 0 < float(gap) < 1.0
    assert set(build_attack(AttackSpec(name="quantize", options={"bits": ["nf4", 8]})).run(model, _context(tokenizer), _measure(tokenizer))) == {"nf4", "int8"}


def test_quantize_attack_reports_each_bit_width(tiny):
    model, tokenizer = tiny
    results = build_attack(AttackSpec(name="quantize", options={"bits": [8, 4]})).run(model, _context(tokenizer), _measure(tokenizer))
    base = _measure(tokenizer)(model)["forget/loss"]
    assert set(results) == {"int8", "int4"}
    assert abs(results["int8"]["forget/loss"] - base) < abs(results["int4"]["forget/loss"] - base)
    with pytest.raises(ValueError, match="bits must be among"):
        build_attack(AttackSpec(name="quantize", options={"bits": [3]}))


def test_logit_lens_of_the_last_layer_is_the_models_own_output(tiny):
    model, tokenizer = tiny
    input_ids, mask = _inputs(tokenizer)
    with torch.no_grad():
        own = model(input_ids=input_ids, attention_mask=mask).logits
    layers = lens_logits(model, input_ids, mask)
    assert len(layers) == model.config.num_hidden_layers
    torch.testing.assert_close(layers[-1], own, atol=1e-5, rtol=0)
    assert (layers[0] - own).abs().max() > 1e-2  # an earlier exit reads something else


def test_logit_lens_log_probabilities_match_the_scoring_engine_at_the_last_layer(tiny):
    model, tokenizer = tiny
    requests = [p.request() for p in PAIRS[:5]]
    lens = lens_logprobs(model, tokenizer, requests, batch_size=2)
    engine = [s.logprob for s in Scorer(model, tokenizer, batch_size=8).loglikelihood(requests)]
    assert lens.shape == (2, 5)
    np.testing.assert_allclose(lens[-1], engine, atol=1e-4)
    per_layer = build_attack(AttackSpec(name="logit_lens")).run(model, _context(tokenizer), _measure(tokenizer))
    assert list(per_layer) == ["layer1", "layer2"]


def test_logit_lens_of_multiple_choice_items_reads_accuracy_matching_the_engine_at_the_last_layer(tiny):
    model, tokenizer = tiny
    docs = [MCDoc("t", str(i), (f"Q{i}: {i} plus {i} is",) * 3, (f" {2 * i}", f" {2 * i + 1}", " blue"), i % 3) for i in range(6)]
    choices = [([d.request(c) for c in range(3)], d.gold) for d in docs]
    per_layer = build_attack(AttackSpec(name="logit_lens")).run(model, _context(tokenizer, forget_choices=choices), _measure(tokenizer))
    scores = score_mc(Scorer(model, tokenizer, batch_size=8), docs)
    gold = [s.logprobs[s.gold] for s in scores]
    tokens = sum(len(tokenizer(d.continuations[d.gold])["input_ids"]) for d in docs)
    last = per_layer["layer2"]
    assert last["lens_acc"] == pytest.approx(np.mean([s.correct for s in scores]), abs=1e-12)
    assert last["lens_logprob"] == pytest.approx(sum(gold) / tokens, abs=1e-5)
    assert set(per_layer["layer1"]) == {"lens_logprob", "lens_acc"}


def _probe_splits(members, others):
    deal = {"train": slice(0, 8), "val": slice(8, 10), "test": slice(10, 14)}
    return {name: ProbeSplit([*members[part], *others[part]], [1] * len(members[part]) + [0] * len(others[part]),
                             [f"{name}{i}" for i in range(len(members[part]) + len(others[part]))]) for name, part in deal.items()}


def test_a_linear_probe_reads_what_separates_the_texts_and_not_what_does_not(tiny):
    model, tokenizer = tiny
    members = [f"The secret word is alpha {i}" for i in range(14)]
    others = [f"The secret word is omega {i}" for i in range(14)]
    probe = build_attack(AttackSpec(name="probe", options={"layers": [1, -1], "cs": [1.0]}))
    found = probe.run(model, _context(tokenizer, probe_splits=_probe_splits(members, others)), _measure(tokenizer))
    assert list(found) == ["layer1", "layer2"]
    assert found["layer2"]["probe_acc"] == 1.0 and found["layer2"]["question_acc"] is None  # one text per group
    splits = _probe_splits(members, others)
    test = splits["test"]
    flipped = {**splits, "test": ProbeSplit(test.texts, [1 - y for y in test.labels], test.groups)}  # scored on the test labels
    assert probe.run(model, _context(tokenizer, probe_splits=flipped), _measure(tokenizer))["layer2"]["probe_acc"] == 0.0
    with pytest.raises(ValueError, match="no probe texts"):
        probe.run(model, _context(tokenizer), _measure(tokenizer))
    with pytest.raises(ValueError, match="layer 3 is not a layer of a 2-layer model"):
        resolve_layers([3], 2)
    assert resolve_layers([0.5, -1, 1.0], 2) == [1, 2]


def test_relearning_with_lr_zero_changes_nothing_and_with_lr_it_does(tiny):
    model, tokenizer = tiny
    measure = _measure(tokenizer)
    before = measure(model)["forget/loss"]
    still = build_attack(AttackSpec(name="relearn", options={"steps": [1, 3], "lr": 0.0, "batch_size": 2}))
    results = still.run(model, _context(tokenizer), measure)
    assert set(results) == {"disjoint_step1", "disjoint_step3"}
    assert all(r["forget/loss"] == pytest.approx(before, abs=1e-6) for r in results.values())
    moving = build_attack(AttackSpec(name="relearn", options={"steps": [1, 3], "lr": 1e-2, "batch_size": 2}))
    moved = moving.run(model, _context(tokenizer), measure)
    assert moved["disjoint_step3"]["forget/loss"] != pytest.approx(before, abs=1e-3)
    assert measure(model)["forget/loss"] == before  # the given model is untouched
    with pytest.raises(ValueError, match="no 'benign' items"):
        build_attack(AttackSpec(name="relearn", options={"data": "benign"})).run(model, _context(tokenizer), measure)


def test_unknown_attacks_and_options_are_named():
    with pytest.raises(KeyError, match="unknown attack 'nope'"):
        build_attack(AttackSpec(name="nope"))
    with pytest.raises(ValueError, match="attack relearn: .*unexpected keyword argument 'stepz'"):
        build_attack(AttackSpec(name="relearn", options={"stepz": [1]}))
    assert ATTACKS.names() == ["logit_lens", "probe", "quantize", "relearn"]


def test_recovery_by_hand():
    assert recovery_ratio(attacked=0.7, forgotten=0.5, original=0.9) == pytest.approx(0.5)
    assert recovery_ratio(attacked=0.5, forgotten=0.5, original=0.5) is None
    forgotten = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    original = np.ones(8)
    attacked = np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    out = recovery(attacked.mean(), forgotten.mean(), original.mean(), items=(attacked, forgotten, original), n_resamples=500, seed=1)
    assert out["recovery"] == pytest.approx((0.5 - 0.125) / (1.0 - 0.125))
    assert out["difference"] == pytest.approx(0.375) and out["removed"] == pytest.approx(0.875)
    low, high = out["difference_ci"]
    assert low <= 0.375 <= high
    assert 0 < out["removed_ci"][0] <= 0.875 <= out["removed_ci"][1]  # original − forgotten, not its mirror
    moved_nothing = forgotten + np.array([1, -1, 1, -1, 0, 1, -1, 0.0])
    noisy = recovery(attacked.mean(), forgotten.mean(), moved_nothing.mean(), items=(attacked, forgotten, moved_nothing),
                     n_resamples=500, seed=1)
    assert noisy["recovery"] is None and noisy["removed_ci"][0] <= 0 <= noisy["removed_ci"][1]  # forgetting moved nothing
    assert recovery(0.6, 0.5, 0.9)["recovery"] == pytest.approx(0.25) and "difference_ci" not in recovery(0.6, 0.5, 0.9)
