"""Binarization, cleaning and splitting of tasks into fine-tune / forget / validation / test sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from forgetlab.data import MCDoc, PreparedTask, load_task_docs, prepare_task
from forgetlab.data.prepare import binarize, normalize_text, stable_seed
from tests.conftest import shared_data_root

SIZES = dict(finetune_size=300, forget_size=100, validation_size=100, test_size=200)


def mc(doc_id: str, prompt: str, choices: list[str], gold: int = 0, task: str = "toy") -> MCDoc:
    return MCDoc(task, doc_id, (prompt,) * len(choices), tuple(f" {c}" for c in choices), gold)


@pytest.fixture(scope="module")
def arith() -> dict[str, list[MCDoc]]:
    return load_task_docs("synth_arith", synthetic_sizes={"train": 600, "validation": 300})


def test_binarize_keeps_gold_and_one_distractor_in_order(arith: dict[str, list[MCDoc]]) -> None:
    positions = Counter()
    for doc in arith["train"]:
        b = binarize(doc, seed=0)
        assert b is not None and b.n_choices == 2 and b.doc_id == doc.doc_id
        assert b.request(b.gold) == doc.request(doc.gold)
        kept = [doc.continuations.index(c) for c in b.continuations]
        assert kept == sorted(kept) and doc.gold in kept
        positions[next(i for i in kept if i != doc.gold)] += 1
        assert binarize(doc, seed=0) == b  # fixed per item
    assert len(positions) == 4  # every position gets drawn as distractor
    changed = sum(binarize(d, 0) != binarize(d, 1) for d in arith["train"])
    assert changed > len(arith["train"]) // 2  # a different seed redraws ~2/3 of 3-way choices


def test_binarize_is_uniform_over_distractors() -> None:
    doc = mc("x", "Q", ["a", "b", "c", "d"], gold=2)
    counts = Counter(
        binarize(MCDoc("toy", f"id-{i}", doc.contexts, doc.continuations, 2), 7).continuations for i in range(3000)
    )
    assert set(counts) == {(" a", " c"), (" b", " c"), (" c", " d")}
    assert all(800 < n < 1200 for n in counts.values())


def test_binarize_skips_duplicate_choices_and_two_choice_items() -> None:
    two = mc("t", "Q", ["yes", "no"], gold=1)
    assert binarize(two, 3) is two
    dup = mc("d", "Q", ["a", "a", "b"], gold=0)
    assert all(
        binarize(MCDoc("toy", f"d{i}", dup.contexts, dup.continuations, 0), i).continuations == (" a", " b")
        for i in range(50)
    )
    assert binarize(mc("z", "Q", ["a", "a"], gold=0), 0) is None


def test_stable_seed_does_not_depend_on_python_hash() -> None:
    code = (
        "from forgetlab.data.prepare import stable_seed, binarize; from forgetlab.data.types import MCDoc; "
        "d = MCDoc('t', 'train-5', ('q',) * 4, (' a', ' b', ' c', ' d'), 1); "
        "print(stable_seed(1, 't', 'train-5'), binarize(d, 1).continuations)"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(h)},
        ).stdout
        for h in (1, 2)
    }
    assert len(outs) == 1
    assert str(stable_seed(1, "t", "train-5")) in outs.pop()


def test_normalize_text() -> None:
    assert normalize_text("  Hello,   WORLD!\n") == "hello world"
    assert normalize_text("It's a well-known test.") == "it s a well known test"  # punctuation -> space
    assert normalize_text("end.Start") == normalize_text("end. Start")


def test_cleaning_counts_on_hand_made_docs() -> None:
    train = [
        mc("train-0", "The cat sat.", ["yes", "no"]),
        mc("train-1", "The cat sat.", ["yes", "no"], gold=1),  # exact duplicate (other label)
        mc("train-2", "the  CAT sat", ["Yes", "no!"]),  # normalized duplicate
        mc("train-3", "A dog ran far away from home.\nQuestion: Did it run?", ["yes", "no"]),
        *[mc(f"train-{i}", f"Train item {i}", ["yes", "no"]) for i in range(4, 12)],
    ]
    validation = [
        mc("validation-0", "The cat sat.", ["yes", "no"]),  # exact duplicate of a train item
        mc("validation-1", "Train item 4", ["maybe", "never"]),  # same prompt as train: overlap
        mc("validation-2", "A dog ran far away from home.\nQuestion: Was it a cat?", ["yes", "no"]),  # same premise
        mc("validation-3", "Fresh item", ["yes", "no"]),
        mc("validation-4", "fresh item!", ["yes", "no"]),  # normalized duplicate within validation
        mc("validation-5", "Other fresh item", ["yes", "no"]),
    ]
    p = prepare_task(
        {"train": train, "validation": validation},
        finetune_size=5,
        forget_size=3,
        validation_size=1,
        test_size=1,
        seed=0,
        eval_split="validation",
    )
    assert p.split_strategy == "train/eval"
    assert p.cleaning == {
        "degenerate_choices": 0,
        "too_long": 0,
        "exact_duplicates": 2,
        "normalized_duplicates": 2,
        "train_overlap": 2,
    }
    assert sorted(d.doc_id for d in p.validation + p.test) == ["validation-3", "validation-5"]
    q = prepare_task(
        {"train": train, "validation": validation},
        finetune_size=5,
        forget_size=3,
        validation_size=1,
        test_size=1,
        seed=0,
        eval_split="validation",
        premise_overlap=False,
    )
    assert q.cleaning["train_overlap"] == 1
    r = prepare_task(
        {"train": train, "validation": validation},
        finetune_size=5,
        forget_size=3,
        validation_size=5,
        test_size=5,
        seed=0,
        eval_split="validation",
        max_chars=20,
    )
    assert r.cleaning["too_long"] == 2  # the two "A dog ran far away..." items


def test_wnli_premise_leakage_is_removed() -> None:
    docs = load_task_docs("wnli", source="local", data_root=shared_data_root())
    p = prepare_task(docs, finetune_size=300, forget_size=100, validation_size=20, test_size=50, seed=0)
    assert p.split_strategy == "train/eval"
    assert p.cleaning["train_overlap"] >= 60  # 65 of 71 dev items repeat a train premise
    train_premises = {normalize_text(d.contexts[0].split("\n")[0]) for d in docs["train"]}
    for d in p.validation + p.test:
        assert normalize_text(d.contexts[0].split("\n")[0]) not in train_premises
    assert len(p.validation) + len(p.test) == 71 - p.cleaning["train_overlap"]
    whole_prompt_only = prepare_task(
        docs, finetune_size=300, forget_size=100, validation_size=20, test_size=50, seed=0, premise_overlap=False
    )
    assert whole_prompt_only.cleaning["train_overlap"] == 0  # the premise check is what catches WNLI


def test_train_eval_strategy_draws_from_the_right_splits(arith: dict[str, list[MCDoc]]) -> None:
    p = prepare_task(arith, **SIZES, seed=3)
    assert p.split_strategy == "train/eval" and p.eval_split == "validation"
    assert {len(p.finetune), len(p.forget), len(p.validation), len(p.test)} == {300, 100, 200}
    assert all(d.doc_id.startswith("train-") for d in p.finetune + p.forget)
    assert all(d.doc_id.startswith("validation-") for d in p.validation + p.test)
    ids = [d.doc_id for docs in p.sets().values() for d in docs]
    assert len(ids) == len(set(ids))
    assert all(d.n_choices == 2 for docs in p.sets().values() for d in docs)


def test_eval_split_defaults_to_lm_eval_test_split() -> None:
    docs = {
        s: [mc(f"{s}-{i}", f"{s} question {i}", ["a", "b", "c"], task="arc_easy") for i in range(50)]
        for s in ("train", "validation", "test")
    }
    p = prepare_task(docs, finetune_size=20, forget_size=10, validation_size=5, test_size=10, seed=0)
    assert p.eval_split == "test" and all(d.doc_id.startswith("test-") for d in p.validation + p.test)


def test_pooled_strategy_and_proportional_eval_sizes() -> None:
    docs = {
        "train": [mc(f"train-{i}", f"t {i}", ["a", "b"]) for i in range(10)],
        "validation": [mc(f"validation-{i}", f"v {i}", ["a", "b"]) for i in range(50)],
    }
    p = prepare_task(docs, finetune_size=20, forget_size=10, validation_size=20, test_size=80, seed=1)
    assert p.split_strategy == "pooled"
    assert (len(p.finetune), len(p.forget), len(p.validation), len(p.test)) == (20, 10, 6, 24)
    ids = [d.doc_id for docs_ in p.sets().values() for d in docs_]
    assert len(ids) == len(set(ids)) == 60


def test_split_too_small_error_names_task_split_and_numbers() -> None:
    docs = {
        "train": [mc(f"train-{i}", f"t {i}", ["a", "b"], task="cb") for i in range(250)],
        "validation": [mc(f"validation-{i}", f"v {i}", ["a", "b"], task="cb") for i in range(56)],
    }
    with pytest.raises(ValueError) as err:
        prepare_task(docs, finetune_size=1000, forget_size=100, validation_size=100, test_size=100, seed=0)
    msg = str(err.value)
    for part in (
        "task cb",
        "finetune_size 1000",
        "forget_size 100",
        "1100",
        "train+validation",
        "306",
        "train 250",
        "validation 56",
    ):
        assert part in msg


def test_bad_sizes_and_mixed_tasks() -> None:
    docs = {"train": [mc("train-0", "t", ["a", "b"])]}
    with pytest.raises(ValueError, match="non-negative"):
        prepare_task(docs, finetune_size=-1, forget_size=0, validation_size=0, test_size=0, seed=0)
    mixed = {"train": [mc("train-0", "t", ["a", "b"]), mc("train-1", "u", ["a", "b"], task="other")]}
    with pytest.raises(ValueError, match="exactly one task"):
        prepare_task(mixed, finetune_size=1, forget_size=0, validation_size=0, test_size=0, seed=0)


def test_determinism_and_seed_sensitivity(arith: dict[str, list[MCDoc]]) -> None:
    a = prepare_task(arith, **SIZES, seed=11)
    b = prepare_task(arith, **SIZES, seed=11)
    c = prepare_task(arith, **SIZES, seed=12)
    assert a.to_dict() == b.to_dict()
    assert [d.doc_id for d in a.finetune] != [d.doc_id for d in c.finetune]
    assert [d.doc_id for d in a.test] != [d.doc_id for d in c.test]
    same_distractors = prepare_task(arith, **SIZES, seed=12, distractor_seed=11)
    by_id = {d.doc_id: d for docs in a.sets().values() for d in docs}
    shared = [d for d in same_distractors.finetune if d.doc_id in by_id]
    assert shared and all(by_id[d.doc_id] == d for d in shared)


def test_to_dict_is_json_and_round_trips(arith: dict[str, list[MCDoc]]) -> None:
    p = prepare_task(arith, **SIZES, seed=5)
    data = json.loads(json.dumps(p.to_dict()))
    assert data["split_strategy"] == "train/eval" and data["sizes"]["finetune"] == 300
    assert data["source_sizes"] == {"train": 600, "validation": 300}
    assert PreparedTask.from_dict(data) == p


@pytest.mark.parametrize("name", ["boolq", "piqa", "cb", "hellaswag", "commonsense_qa", "winogrande"])
def test_prepare_real_tasks(name: str) -> None:
    docs = load_task_docs(name, source="local", data_root=shared_data_root())
    p = prepare_task(docs, finetune_size=100, forget_size=100, validation_size=50, test_size=50, seed=0)
    assert len(p.finetune) == len(p.forget) == 100 and 0 < len(p.test) <= 50
    assert all(d.n_choices == 2 for docs_ in p.sets().values() for d in docs_)
    golds = Counter(d.gold for d in p.finetune)
    assert golds[0] > 20 and golds[1] > 20
    train_keys = {normalize_text(c) for d in p.finetune + p.forget for c in d.contexts}
    assert not any(normalize_text(c) in train_keys for d in p.validation + p.test for c in d.contexts)
