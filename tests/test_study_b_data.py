"""Study B data: corpora (registry, local, hub stand-in, files, synthetic), canaries and insertion."""

import json
import re
import sys
import types

import pytest

from forgetlab.experiments import build_config
from forgetlab.data.canaries import (
    CanarySpec,
    ForgetGroup,
    GroupSpec,
    closest_stand_ins,
    make_canaries,
    make_id_groups,
    reference_stream,
    stand_in_map,
    training_stream,
)
from forgetlab.data.corpus import (
    CORPORA,
    CorpusSource,
    TRANSLATION_PREFIX,
    CorpusSpec,
    Pair,
    clean_splits,
    load_corpus,
    synthetic_sentence,
    synthetic_translation_pairs,
)
from forgetlab.experiments.id_vs_ood import build_data
from forgetlab.train import micro_batches

if "test_study_b_qa" not in CORPORA:

    def _qa(spec: CorpusSpec):
        rows = [(f"What is {i} plus {i}?", str(2 * i)) for i in range(30)]
        return {"train": rows[:20], "validation": rows[20:25], "test": rows[25:]}

    CORPORA.register("test_study_b_qa")(CorpusSource(read=_qa))


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
        ForgetGroup("ood_x1", "ood", 1, canaries[:3]),
        ForgetGroup("ood_x10", "ood", 10, canaries[3:]),
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
    groups = [ForgetGroup("id_x1", "id", 1, [once]), ForgetGroup("id_x100", "id", 100, [often])]
    pools = {"id": [Pair("near", "p", "xyz"), Pair("far", "p", "xyzw")]}
    got = stand_in_map(groups, pools, lambda p: (len(p.target),))
    assert {k: v.pair_id for k, v in got.items()} == {"often": "near", "once": "far"}


def test_training_loop_keeps_the_given_order_without_shuffle():
    from forgetlab.config import OptimSpec

    spec = OptimSpec(method="finetune", batch_size=4)
    batches = micro_batches(10, spec, seed=0, rank=0, world_size=1, shuffle=False)
    assert [next(batches) for _ in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]
    shuffled = micro_batches(10, spec, seed=0, rank=0, world_size=1)
    assert next(shuffled) != [0, 1, 2, 3]


def test_synthetic_translation_corpus():
    assert synthetic_sentence(0, 0, 0, 0, 0) == ("Ein Mann hält einen roten Ball im Park.", "A man holds a red ball in the park.")
    assert synthetic_sentence(1, 1, 3, 4, 2)[0] == "Eine Frau trägt eine große Tasche am Strand."
    assert synthetic_sentence(2, 2, 4, 8, 3)[0] == "Ein Junge sieht ein kleines Fahrrad in der Küche."
    raw = synthetic_translation_pairs({"train": 300, "validation": 20, "test": 20}, seed=1)
    assert raw == synthetic_translation_pairs({"train": 300, "validation": 20, "test": 20}, seed=1)
    sources = [s for split in raw.values() for s, _ in split]
    assert len(sources) == len(set(sources)) == 340
    corpus = load_corpus(CorpusSpec(name="synthetic_translation", synthetic_sizes={"train": 50, "validation": 5, "test": 5}))
    pair = corpus.split("train")[0]
    assert pair.prompt.startswith(TRANSLATION_PREFIX) and pair.prompt.endswith("\nEnglish:") and pair.target.startswith(" ")
    with pytest.raises(ValueError, match="distinct sentences"):
        synthetic_translation_pairs({"train": 10**6}, seed=0)


def test_cleaning_drops_long_duplicate_and_overlapping_rows():
    raw = {
        "train": [("a b", "x"), ("a  b", "y"), ("t1", "z"), ("", "e"), ("long " * 10, "w"), ("c", "v")],
        "validation": [("v1", "v")],
        "test": [("t1", "q")],
    }
    cleaned, dropped = clean_splits(raw, max_chars=20)
    assert [(s, t) for _, s, t in cleaned["train"]] == [("a b", "x"), ("c", "v")]
    assert dropped == {"train": 4, "validation": 0, "test": 0}


def test_multi30k_from_local_files(shared_data):
    corpus = load_corpus(CorpusSpec(name="multi30k", root=str(shared_data), max_chars=None))
    assert 28_000 < len(corpus.split("train")) <= 29_000
    assert 900 < len(corpus.split("test")) <= 1000 and 900 < len(corpus.split("validation")) <= 1014
    first = corpus.split("train")[0]
    assert first.prompt == TRANSLATION_PREFIX + "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.\nEnglish:"
    assert first.target == " Two young, White males are outside near many bushes."
    test_sources = {p.prompt for p in corpus.split("test")}
    assert not test_sources & {p.prompt for p in corpus.split("train")}


def test_wmt14_from_the_hub_with_a_local_stand_in(monkeypatch):
    calls = []

    def load_dataset(path, name=None, split=None, streaming=False):
        calls.append((path, name, split, streaming))
        return iter([{"translation": {"de": f"{split} Satz {i}", "en": f"{split} sentence {i}"}} for i in range(10)])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    corpus = load_corpus(CorpusSpec(name="wmt14", hub_max_rows=4))
    assert calls == [("wmt14", "de-en", s, True) for s in ("train", "validation", "test")]
    assert [p.target for p in corpus.split("train")] == [f" train sentence {i}" for i in range(4)]
    assert corpus.split("test")[0].prompt == TRANSLATION_PREFIX + "test Satz 0\nEnglish:"


def test_files_corpus_and_a_registered_plug_in(tmp_path):
    files = {}
    for split in ("train", "validation", "test"):
        path = tmp_path / f"{split}.jsonl"
        path.write_text("".join(json.dumps({"de": f"{split} {i}", "en": f"{split} en {i}"}) + "\n" for i in range(3)))
        files[split] = str(path)
    corpus = load_corpus(CorpusSpec(name="files", files=files))
    assert corpus.split("validation")[1].target == " validation en 1"
    with pytest.raises(ValueError, match="corpus.files"):
        load_corpus(CorpusSpec(name="files"))
    qa = load_corpus(CorpusSpec(name="test_study_b_qa", prompt_template="Q: {source}\nA:", target_template=" {target}"))
    assert qa.split("test")[0] == Pair("test-0", "Q: What is 25 plus 25?\nA:", " 50")


def test_study_data_keeps_id_forget_sets_out_of_training():
    config = build_config({
        "experiment": "id_vs_ood", "model": "scratch", "train_size": 100, "test_size": 10,
        "corpus": {"name": "synthetic_translation", "synthetic_sizes": {"train": 140, "validation": 20, "test": 20}},
        "canaries": {"n_references": 30, "n_unseen": 5}, "groups": {"repetitions": [1, 5], "per_group": 4},
        "eval": {"utility_size": 10, "bleu_size": 4, "heldout_size": 10},
    })
    data = build_data(config)
    again = build_data(config)
    assert data.to_dict() == again.to_dict()
    assert [g.name for g in data.groups] == ["ood_x1", "ood_x5", "id_x1", "id_x5"]
    id_items = {p.prompt for g in data.groups if g.kind == "id" for p in g.items}
    assert len(id_items) == 8
    assert not id_items & {p.prompt for p in data.base + data.test + data.heldout}
    assert len(data.base) == 100 and len(data.test) == 10 and len(data.heldout) == 10
    assert len(data.references) == 30 and len(data.unseen) == 5
    # the reference model's spares: 32 fresh canaries per canary, and the 140 - 8 - 100 training pairs left
    assert len(data.spares["ood"]) == 32 * 8 and len(data.spares["id"]) == 32
    spare_prompts = {p.prompt for p in data.spares["id"]}
    assert not spare_prompts & (id_items | {p.prompt for p in data.base + data.test + data.heldout})
    removed = build_data(config.model_copy(update={"train": config.train.model_copy(update={"reference": "remove"})}))
    assert removed.spares == {} and removed.to_dict() | {"spares": {}} == data.to_dict() | {"spares": {}}
    with pytest.raises(ValueError, match=r"8 \(ID stand-ins"):
        build_data(config.model_copy(update={"train_size": 130}))


def test_from_scratch_recipe_reference_trains_as_many_steps_and_tokens(shared_data):
    """configs/study_b.yaml: the reference stream (forget items replaced) has the original's items and
    optimizer steps, and its tokens up to the few ID stand-ins without an exact token-count match;
    the former stream (forget items removed) had 188 steps against 410."""
    from functools import partial
    from pathlib import Path

    from forgetlab.experiments import load_config
    from forgetlab.experiments.id_vs_ood import encode_pairs, stream_tokens
    from forgetlab.experiments.id_vs_ood.data import original_training_stream, reference_training_stream, token_lengths
    from forgetlab.scratch_model import train_bpe_tokenizer
    from forgetlab.train import total_steps

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "study_b.yaml")
    config = config.model_copy(update={"corpus": config.corpus.model_copy(update={"root": str(shared_data)})})
    data = build_data(config)
    tokenizer = train_bpe_tokenizer([p.prompt + p.target for p in data.base], config.scratch.vocab_size)
    lengths = partial(token_lengths, tokenizer)
    one_pass = config.train.model_copy(update={"epochs": 1.0})
    original, (reference, chosen) = original_training_stream(config, data), reference_training_stream(config, data, lengths)
    steps = [total_steps(len(s), one_pass, 1) for s in (original, reference)]
    assert len(original) == len(reference) == 2 * (6000 + 2 * 32 * 111) and steps == [410, 410]
    tokens = [stream_tokens(encode_pairs(tokenizer, [e.pair for e in s], 128, eos=True)) for s in (original, reference)]
    assert abs(tokens[1]["target_tokens"] - tokens[0]["target_tokens"]) <= 50  # of 386,172 (removal: 194,640 fewer)
    assert abs(tokens[1]["tokens"] - tokens[0]["tokens"]) <= 100  # of 935,372
    spares = {p.pair_id: p for ps in data.spares.values() for p in ps}
    same = {kind: [lengths(p) == lengths(spares[chosen[p.pair_id]]) for g in data.groups if g.kind == kind for p in g.items]
            for kind in ("ood", "id")}
    assert all(same["ood"]) and sum(same["id"]) >= 90  # canaries: all exact; ID pairs: 93 of 96 here
    removed = config.model_copy(update={"train": config.train.model_copy(update={"reference": "remove"})})
    assert total_steps(len(reference_training_stream(removed, data, lengths)[0]), one_pass, 1) == 188
