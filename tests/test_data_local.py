"""Every task with files in the shared data folder loads from them, with SOURCES.md's counts."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import pytest

from forgetlab.data import get_task, load_task_docs, load_task_records, task_names
from forgetlab.data.local import split_hellaswag_context
from forgetlab.data.types import MCDoc
from tests.conftest import shared_data_root

# split -> number of items, from shared/data/SOURCES.md (MRPC train: HF's 3668, see SOURCES.md)
EXPECTED = {
    "arc_challenge": {"train": 1119, "validation": 299, "test": 1172},
    "arc_easy": {"train": 2251, "validation": 570, "test": 2376},
    "boolq": {"train": 1000, "validation": 3270},
    "cb": {"train": 250, "validation": 56},
    "cola": {"train": 8551, "validation": 1043},
    "commonsense_qa": {"validation": 1221},
    "copa": {"train": 400, "validation": 100},
    "hellaswag": {"validation": 10042},
    "logiqa": {"validation": 651, "test": 651},
    "mrpc": {"train": 3668, "validation": 408, "test": 1725},
    "piqa": {"validation": 1838},
    "qnli": {"validation": 5463},
    "rte": {"train": 2490, "validation": 277},
    "sglue_rte": {"train": 2490, "validation": 277},
    "sst2": {"train": 67349, "validation": 872},
    "wic": {"train": 5428, "validation": 638},
    "winogrande": {"validation": 1267},
    "wnli": {"train": 635, "validation": 71},
}
N_CHOICES = {
    "arc_challenge": None,
    "arc_easy": None,
    "boolq": 2,
    "cb": 3,
    "cola": 2,
    "commonsense_qa": 5,
    "copa": 2,
    "hellaswag": 4,
    "logiqa": 4,
    "mrpc": 2,
    "piqa": 2,
    "qnli": 2,
    "rte": 2,
    "sglue_rte": 2,
    "sst2": 2,
    "wic": 2,
    "winogrande": 2,
    "wnli": 2,
}


@lru_cache(maxsize=None)
def docs(name: str) -> dict[str, list[MCDoc]]:
    return load_task_docs(name, source="local", data_root=shared_data_root())


def test_expected_table_covers_every_local_task() -> None:
    assert sorted(EXPECTED) == sorted(n for n in task_names() if get_task(n).local)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_local_counts_ids_and_shape(name: str) -> None:
    loaded = docs(name)
    assert {s: len(v) for s, v in loaded.items()} == EXPECTED[name]
    for split, items in loaded.items():
        assert [d.doc_id for d in items] == [f"{split}-{i}" for i in range(len(items))]
        assert all(d.task == name for d in items)
        if N_CHOICES[name] is not None:
            assert {d.n_choices for d in items} == {N_CHOICES[name]}
        golds = {d.gold for d in items}
        assert len(golds) > 1, "every split has more than one gold position"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_auto_source_picks_local_files(name: str) -> None:
    assert {s: len(v) for s, v in load_task_docs(name, data_root=shared_data_root()).items()} == EXPECTED[name]


def test_label_conventions() -> None:
    """Gold indices follow HF's conventions (spot checks against known first rows)."""
    assert docs("boolq")["validation"][0].gold == 0  # "label": "false"
    assert sum(d.gold for d in docs("boolq")["validation"]) == 2033  # "true" count
    assert docs("rte")["validation"][0].continuations[docs("rte")["validation"][0].gold] == " False"
    assert docs("wnli")["validation"][1].continuations[docs("wnli")["validation"][1].gold] == " True"
    assert docs("cb")["validation"][0].continuations[docs("cb")["validation"][0].gold] == " False"  # contradiction
    assert docs("piqa")["validation"][0].gold == 0 and docs("piqa")["validation"][1].gold == 1
    assert docs("wic")["validation"][2].continuations[docs("wic")["validation"][2].gold] == " yes"  # T
    assert docs("winogrande")["validation"][0].gold == 1
    assert docs("commonsense_qa")["validation"][1].continuations[docs("commonsense_qa")["validation"][1].gold] == " A"


def test_known_prompts() -> None:
    boolq = docs("boolq")["validation"][0]
    assert boolq.contexts[0].startswith("Ethanol fuel -- All biomass")
    assert boolq.contexts[0].endswith("\nQuestion: does ethanol take more energy make that produces?\nAnswer:")
    hella = docs("hellaswag")["validation"][0]
    assert hella.contexts[0] == "Roof shingle removal: A man is sitting on a roof. He"
    assert hella.continuations[3] == " starts pulling up roofing on a roof."
    copa = docs("copa")["validation"][0]
    assert copa.request(1) == ("The man turned on the faucet therefore", "  water flowed from the spout.")
    wic = docs("wic")["validation"][0]
    assert wic.contexts[0] == (
        "Sentence 1: Room and board .\nSentence 2: He nailed boards across the windows .\n"
        "Question: Is the word 'board' used in the same way in the two sentences above?\nAnswer:"
    )
    qnli = docs("qnli")["validation"]
    assert any(d.contexts[0].split("\n")[1].startswith('"') for d in qnli), "QUOTE_NONE keeps stray quotes"


def test_wic_offsets_point_at_the_target_token() -> None:
    for rows in load_task_records("wic", source="local", data_root=shared_data_root()).values():
        for rec in rows:
            d = rec.doc
            for s, a, b in (("sentence1", "start1", "end1"), ("sentence2", "start2", "end2")):
                token = d[s][d[a] : d[b]]
                assert token and " " not in token and d[s].split(" ").count(token) >= 1


def test_hellaswag_reconstruction_is_lossless() -> None:
    path = shared_data_root() / "hellaswag" / "hellaswag_val_from_llamacpp.jsonl"
    rows = load_task_records("hellaswag", source="local", data_root=shared_data_root())["validation"]
    import json

    originals = [json.loads(line)["context"] for line in path.open(encoding="utf-8")]
    for rec, original in zip(rows, originals):
        d = rec.doc
        rebuilt = f"{d['activity_label']}: {d['ctx_a']}" + (f" {d['ctx_b']}" if d["ctx_b"] else "")
        assert rebuilt == original
    assert split_hellaswag_context("Sumo: A video is shown. two men") == ("Sumo", "A video is shown.", "two men")
    assert split_hellaswag_context("Health: How to rest. Sleep well.") == ("Health", "How to rest. Sleep well.", "")


def test_mrpc_splits_rebuilt_like_hf() -> None:
    """validation == GLUE dev.tsv; train == GLUE train.tsv plus the one pair HF keeps (2750203/2750153)."""
    root = shared_data_root() / "mrpc"

    def glue(path: Path) -> set[tuple[str, str, int]]:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            return {(r["#1 String"], r["#2 String"], int(r["Quality"])) for r in reader}

    recs = load_task_records("mrpc", source="local", data_root=shared_data_root())
    as_set = {s: {(r.doc["sentence1"], r.doc["sentence2"], r.doc["label"]) for r in rows} for s, rows in recs.items()}
    assert as_set["validation"] == glue(root / "dev.tsv")
    extra = as_set["train"] - glue(root / "train.tsv")
    assert len(extra) == 1 and glue(root / "train.tsv") <= as_set["train"]


def test_logiqa_parsed_like_eleutherai_script() -> None:
    rec = load_task_records("logiqa", source="local", data_root=shared_data_root())["validation"][0].doc
    assert rec["label"] == "a" and len(rec["options"]) == 4
    assert "Americans. The same" in rec["context"]  # "." -> ". " as in EleutherAI/logiqa
    assert not rec["options"][0].startswith("A.")
