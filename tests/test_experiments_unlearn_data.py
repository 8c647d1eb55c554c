"""The ``unlearn`` sets (experiments/unlearn/data.py): disjoint, seeded slices of any kind of source."""

import json

import pytest

from forgetlab.experiments import build_config
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
