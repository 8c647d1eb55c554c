"""The ``unlearn`` sets (experiments/unlearn/data.py): disjoint, seeded slices of any kind of source."""

import json

import pytest

from forgetlab.config import ConfigError
from forgetlab.experiments import EXPERIMENTS, build_config
from forgetlab.experiments.unlearn import build_sets
from tests.conftest import unlearn_raw_config


def test_sets_are_disjoint_seeded_slices_of_any_source(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Q{i}:", "target": f" A{i}"}) + "\n" for i in range(20)))
    texts = tmp_path / "texts.csv"
    texts.write_text("text\n" + "".join(f"\"word{i} two three four\"\n" for i in range(12)) + "short\n")
    raw = unlearn_raw_config()
    raw["sources"] = {
        "pairs": {"kind": "file", "path": str(pairs)},
        "texts": {"kind": "file", "path": str(texts), "prompt_words": 2},
        "task": {"kind": "task", "task": "synth_compare", "source": "synthetic"},
        "corpus": {
            "kind": "corpus",
            "corpus": {"name": "synthetic_translation", "synthetic_sizes": {"train": 50, "validation": 10, "test": 10}},
        },
    }
    raw["sets"] = {
        "forget": {"source": "pairs", "size": 10},
        "holdout": {"source": "pairs", "size": 10},
        "retain": {"source": "task", "size": 5},
        "utility": {"source": "texts", "size": 12},
    }
    sets = build_sets(build_config(raw))
    assert {name: len(items) for name, items in sets.items()} == {"forget": 10, "holdout": 10, "retain": 5, "utility": 12}
    assert not {i.pair_id for i in sets["forget"]} & {i.pair_id for i in sets["holdout"]}
    assert {i.prompt for i in sets["forget"] + sets["holdout"]} == {f"Q{i}:" for i in range(20)}
    assert all(i.prompt.startswith("Question: Which number is larger") and i.target.startswith(" ") for i in sets["retain"])
    assert all(len(i.prompt.split()) == 2 and i.target == " three four" for i in sets["utility"])  # "short" is dropped
    assert build_sets(build_config(raw)) == sets  # seeded
    raw["seed"] = 1
    assert build_sets(build_config(raw))["forget"] != sets["forget"]
    raw["sets"]["utility"] = {"source": "corpus", "size": 4}
    corpus_items = build_sets(build_config(raw))["utility"]
    assert all(i.prompt.startswith("translate German to English:") for i in corpus_items)
    raw["sets"]["holdout"]["size"] = 11
    with pytest.raises(ValueError, match="sets.holdout: source 'pairs' has only 10 unused items left, 11 needed"):
        build_sets(build_config(raw))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "x"}) + "\n")
    raw["sources"]["pairs"] = {"kind": "file", "path": str(bad)}
    with pytest.raises(ValueError, match="bad.jsonl line 1: expected fields 'prompt' and 'target', or 'text'"):
        build_sets(build_config(raw))


def test_tofu_and_muse_sources_give_the_workbench_its_sets(shared_data, tmp_path):
    """TOFU's forget01 to forget and holdout01 as non-members (OpenUnlearning's TOFU MIA setting); MUSE's raw
    forget text in word pieces; KnowMem and VerbMem pairs."""
    from forgetlab.data.tofu import load_tofu
    from tests.muse_stand_in import write_muse_news

    muse_root = write_muse_news(tmp_path / "muse")
    raw = {
        "experiment": "unlearn", "model": {"name": "tiny-llama"},
        "sources": {
            "forget01": {"kind": "tofu", "config": "forget01", "root": str(shared_data)},
            "holdout01": {"kind": "tofu", "config": "holdout01", "root": str(shared_data)},
            "muse_raw": {"kind": "muse", "subset": "raw", "split": "forget", "chunk_words": 10, "root": str(muse_root)},
            "knowmem": {"kind": "muse", "subset": "knowmem", "split": "retain_qa", "root": str(muse_root)},
        },
        "sets": {"forget": {"source": "forget01", "size": 40}, "holdout": {"source": "holdout01", "size": 40},
                 "retain": {"source": "muse_raw", "size": 12}, "utility": {"source": "knowmem", "size": 1}},
    }
    config = build_config(raw)
    sets = build_sets(config)
    first = load_tofu("forget01", root=shared_data)
    assert {(p.prompt, p.target) for p in sets["forget"]} == {(f"Question: {i.question}\nAnswer:", f" {i.answer}") for i in first}
    assert all(p.pair_id.startswith("holdout01-") for p in sets["holdout"])
    assert all(p.prompt == "" and 0 < len(p.target.split()) <= 10 for p in sets["retain"])
    assert [(p.prompt, p.target) for p in sets["utility"]] == [("Question: What did the council pass?\nAnswer:", " the budget")]
    assert shared_data / "tofu" / "forget01.json" in EXPERIMENTS.get("unlearn").inputs(config).files
    bad = dict(raw, sources={**raw["sources"], "knowmem": {"kind": "muse", "subset": "knowmem", "split": "forget"}})
    with pytest.raises(ConfigError, match="MUSE knowmem has forget_qa, forget_qa_icl, retain_qa, retain_qa_icl, not 'forget'"):
        build_config(bad)
