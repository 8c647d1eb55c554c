"""The recovery-attack engine every experiment shares: targets, a diverged model, the summary, probe texts,
and what an attack run may add to its source's recipe."""

from __future__ import annotations

import copy

import pytest
import torch
from accelerate import Accelerator

from forgetlab.attacks import AttackContext, AttackSpec
from forgetlab.data.types import Pair
from forgetlab.experiments.robustness import Target, attack_stage, membership_splits, robustness_summary, with_attack_data
from forgetlab.scoring import Scorer
from forgetlab.train import DivergenceError

pytestmark = pytest.mark.usefixtures("one_thread")
PAIRS = [Pair(f"p{i}", f"Question {i}: what is {i} plus {i}?", f" {2 * i}") for i in range(6)]


def _target(model, tokenizer, diverging=()):
    def measure(found):
        if getattr(found, "diverges", False):
            raise DivergenceError("forget loss is nan")
        scores = Scorer(found, tokenizer, batch_size=8).loglikelihood([p.request() for p in PAIRS])
        values = [-s.logprob / s.n_tokens for s in scores]
        return {"metrics": {"forget/loss": sum(values) / len(values)}, "items": {"forget/loss": values}}

    def load(role):
        found = copy.deepcopy(model)
        found.diverges = role in diverging
        with torch.no_grad():  # three different models
            for p in found.parameters():
                p.mul_({"forgotten": 1.0, "original": 1.05, "never_learned": 0.9}[role])
        return found

    context = AttackContext(tokenizer=tokenizer, seed=0, accelerator=Accelerator(cpu=True))
    return Target(roles={r: (lambda r=r: load(r)) for r in ("forgotten", "original", "never_learned")},
                  measure=measure, context=lambda: context, metrics=["forget/loss"])


def test_a_target_needs_the_forgotten_and_original_models():
    with pytest.raises(ValueError, match="roles must include forgotten and original"):
        Target(roles={"forgotten": lambda: None}, measure=lambda m: {}, context=lambda: None, metrics=[])
    with pytest.raises(ValueError, match="among"):
        Target(roles={"forgotten": lambda: None, "original": lambda: None, "other": lambda: None},
               measure=lambda m: {}, context=lambda: None, metrics=[])


def test_a_model_an_attack_drives_to_nan_is_recorded_as_diverged_without_numbers(tiny):
    model, tokenizer = tiny
    spec = AttackSpec(name="quantize", options={"bits": [8]})
    target = _target(model, tokenizer, diverging=("original",))
    stage = attack_stage(target, spec)
    assert stage["results"]["original"] == {"diverged": "forget loss is nan"}
    healthy = _target(model, tokenizer)  # the models as measured before the attack
    models = {"measured": {role: healthy.measure(load()) for role, load in healthy.roles.items()}}
    summary = robustness_summary(models, {"0-quantize": stage}, ["forget/loss"], 100, 0)
    attack = summary["attacks"]["0-quantize"]
    assert attack["diverged"] == {"original": "forget loss is nan"}
    row = attack["variants"]["int8"]["forget/loss"]
    assert "control_original" not in row and row["attacked"] == pytest.approx(stage["results"]["forgotten"]["int8"]["metrics"]["forget/loss"])
    forgotten_gone = attack_stage(_target(model, tokenizer, diverging=("forgotten",)), spec)
    assert robustness_summary(models, {"0-quantize": forgotten_gone}, ["forget/loss"], 100, 0)["attacks"]["0-quantize"]["variants"] == {}


def test_recovery_of_nothing_is_zero_not_minus_zero():
    from forgetlab.metrics.recovery import recovery_ratio

    assert str(recovery_ratio(1.0, 1.0, 0.5)) == "0.0"


def test_membership_probe_texts_are_balanced_and_dealt_into_three_splits():
    members = [Pair(f"m{i}", "a", f" {i}") for i in range(10)]
    others = [Pair(f"o{i}", "b", f" {i}") for i in range(8)]
    splits = membership_splits(members, others)
    assert {name: len(s.texts) for name, s in splits.items()} == {"train": 8, "val": 4, "test": 4}
    assert splits["test"].groups == ["m3", "m7", "o3", "o7"] and splits["test"].labels == [1, 1, 0, 0]
    assert membership_splits(members, others[:3]) == {}


def test_an_attack_run_adds_only_the_fields_its_attacks_train_on():
    source = {"experiment": "unlearn", "sets": {"forget": {"source": "a", "size": 2}, "relearn": None}, "sources": {"a": {}}}
    merged = with_attack_data(source, [{"name": "quantize"}], {"sets.relearn": {"source": "a", "size": 3}, "sources.b": {"kind": "x"}},
                              ("sets.relearn", "sets.benign", "sources"))
    assert merged["sets"] == {"forget": {"source": "a", "size": 2}, "relearn": {"source": "a", "size": 3}}
    assert merged["sources"] == {"a": {}, "b": {"kind": "x"}} and merged["attacks"] == [{"name": "quantize"}]
    assert source["sets"]["relearn"] is None  # the source's recipe is not changed
    with pytest.raises(ValueError, match=r"attack_data.sets.forget: an attack run may only set what its attacks train on \(sets.relearn"):
        with_attack_data(source, [], {"sets.forget": {}}, ("sets.relearn",))
    with pytest.raises(ValueError, match="attack_data.sets.forget.size: forget is not a mapping"):
        with_attack_data({"experiment": "x", "sets": {"forget": 3}}, [], {"sets.forget.size": 1}, ("sets",))
