"""Study B's forget sets: canaries (seeded, distinct, configurable), ID groups, insertion into the training
stream, the reference stream and the choice of stand-ins."""

import re

import pytest

from forgetlab.data.canaries import (
    CanarySpec,
    ForgetGroup,
    GroupKind,
    GroupSpec,
    closest_stand_ins,
    make_canaries,
    make_id_groups,
    reference_stream,
    stand_in_map,
    training_stream,
)
from forgetlab.data.types import Pair


def _secrets(sets):
    return [p.target for g in sets.groups for p in g.items] + [p.target for p in sets.references + sets.unseen]


def test_canaries_are_seeded_distinct_and_well_formed():
    spec = CanarySpec(n_references=300, n_unseen=40)
    first, again, other = (make_canaries(spec, [1, 10, 100], 16, seed=s) for s in (3, 3, 4))
    assert _secrets(first) == _secrets(again)
    assert _secrets(first) != _secrets(other)
    secrets = _secrets(first)
    assert len(secrets) == len(set(secrets)) == 3 * 16 + 300 + 40
    assert all(re.fullmatch(r"[A-Za-z0-9]{10}", s) for s in secrets)
    assert [g.name for g in first.groups] == ["ood_x1", "ood_x10", "ood_x100"]
    assert [g.repetitions for g in first.groups] == [1, 10, 100]
    assert all(p.prompt == "My secret is " for g in first.groups for p in g.items)


def test_spare_canaries_are_fresh_and_leave_the_other_sets_unchanged():
    spec = CanarySpec(n_references=50, n_unseen=10)
    plain, spared = make_canaries(spec, [1, 10], 4, seed=2), make_canaries(spec, [1, 10], 4, seed=2, n_spares=64)
    assert _secrets(plain) == _secrets(spared) and plain.spares == []
    spares = [p.target for p in spared.spares]
    assert len(spares) == len(set(spares) - set(_secrets(spared))) == 64
    assert all(p.prompt == spec.prompt for p in spared.spares)


def test_canary_format_is_configurable_and_space_is_checked():
    spec = CanarySpec(prompt="The code is ", alphabet="01", length=12, target_format="{secret}.", n_references=20, n_unseen=0)
    sets = make_canaries(spec, [2], 4, seed=0)
    assert all(re.fullmatch(r"[01]{12}\.", p.target) for p in sets.references + sets.groups[0].items)
    assert sets.references[0].prompt == "The code is "
    with pytest.raises(ValueError, match="distinct secrets"):
        make_canaries(CanarySpec(alphabet="ab", length=2, n_references=4, n_unseen=0), [1], 1, seed=0)
    with pytest.raises(ValueError):
        CanarySpec(target_format="no placeholder")
    with pytest.raises(ValueError):
        GroupSpec(repetitions=[1, 1])


def _groups():
    base = [Pair(f"b{i}", f"src {i}", f" tgt {i}") for i in range(40)]
    canaries = [Pair(f"c{i}", "My secret is ", f"s{i}") for i in range(6)]
    held = [Pair(f"h{i}", f"held {i}", f" out {i}") for i in range(6)]
    groups = [
        ForgetGroup("ood_x1", GroupKind.OOD, 1, canaries[:3]),
        ForgetGroup("ood_x10", GroupKind.OOD, 10, canaries[3:]),
        *make_id_groups(held, [1, 10], 3),
    ]
    return base, groups


def test_insertion_is_seeded_and_repeats_each_forget_item():
    base, groups = _groups()
    stream = training_stream(base, groups, epochs=2, seed=0)
    assert len(stream) == 2 * (40 + 3 * 1 + 3 * 10 + 3 * 1 + 3 * 10)
    counts = {}
    for entry in stream:
        counts[entry.pair.pair_id] = counts.get(entry.pair.pair_id, 0) + 1
    assert all(counts[p.pair_id] == 2 for p in base)
    for group in groups:
        assert all(counts[p.pair_id] == 2 * group.repetitions for p in group.items)
    assert [e.pair.pair_id for e in stream] == [e.pair.pair_id for e in training_stream(base, groups, 2, seed=0)]
    assert [e.pair.pair_id for e in stream] != [e.pair.pair_id for e in training_stream(base, groups, 2, seed=1)]
    first_epoch = [e.pair.pair_id for e in stream[: len(stream) // 2]]
    assert first_epoch != [e.pair.pair_id for e in stream[len(stream) // 2 :]]  # reshuffled each epoch
    assert len(training_stream(base, groups, 1.5, seed=0)) == round(1.5 * (len(stream) // 2))


def test_reference_stream_is_the_original_stream_minus_the_forget_items():
    base, groups = _groups()
    stream = training_stream(base, groups, epochs=3, seed=11)
    reference = reference_stream(stream)
    forget_ids = {p.pair_id for g in groups for p in g.items}
    assert [e.pair.pair_id for e in reference] == [e.pair.pair_id for e in stream if e.pair.pair_id not in forget_ids]
    assert all(e.group is None for e in reference) and len(reference) == 3 * len(base)
    assert {e.group for e in stream if e.pair.pair_id in forget_ids} == {g.name for g in groups}


def test_reference_stream_puts_a_stand_in_at_every_forget_position():
    base, groups = _groups()
    stream = training_stream(base, groups, epochs=2, seed=3)
    stand_ins = {p.pair_id: Pair(f"s-{p.pair_id}", p.prompt, p.target + "!") for g in groups for p in g.items}
    reference = reference_stream(stream, stand_ins)
    assert len(reference) == len(stream)  # as many items, so as many optimizer steps
    for original, replaced in zip(stream, reference):
        want = original.pair if original.group is None else stand_ins[original.pair.pair_id]
        assert replaced.pair == want and replaced.group is None
    counts = {}
    for entry in reference:
        counts[entry.pair.pair_id] = counts.get(entry.pair.pair_id, 0) + 1
    for group in groups:  # each stand-in repeated exactly as often as its forget item
        assert all(counts[f"s-{p.pair_id}"] == 2 * group.repetitions for p in group.items)


def test_closest_stand_ins_by_lengths_without_reuse():
    pool = [Pair(f"p{i}", "x" * a, "y" * b) for i, (a, b) in enumerate([(5, 9), (3, 4), (3, 5), (3, 4), (9, 9)])]
    items = [Pair("a", "x" * 3, "y" * 4), Pair("b", "x" * 3, "y" * 4), Pair("c", "x" * 3, "y" * 4), Pair("d", "x" * 8, "y" * 8)]
    lengths = lambda p: (len(p.prompt), len(p.target))  # noqa: E731
    got = closest_stand_ins(items, pool, lengths)
    # a, b: the two exact (3, 4) matches, earlier first; c: (3, 5) at distance 1; d: (9, 9) at 2 beats (5, 9) at 4
    assert [p.pair_id for p in got] == ["p1", "p3", "p2", "p4"]
    with pytest.raises(ValueError, match="pool has 2"):
        closest_stand_ins(items, pool[:2], lengths)


def test_stand_in_map_lets_the_most_repeated_group_choose_first():
    once, often = Pair("once", "p", "abc"), Pair("often", "p", "abd")
    groups = [ForgetGroup("id_x1", GroupKind.ID, 1, [once]), ForgetGroup("id_x100", GroupKind.ID, 100, [often])]
    pools = {"id": [Pair("near", "p", "xyz"), Pair("far", "p", "xyzw")]}
    got = stand_in_map(groups, pools, lambda p: (len(p.target),))
    assert {k: v.pair_id for k, v in got.items()} == {"often": "near", "once": "far"}
