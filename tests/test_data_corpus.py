"""Study B's corpora: the registry, local files, a hub stand-in, files, the synthetic corpus and cleaning."""

import json
import sys
import types

import pytest

from forgetlab.data.corpus import (
    CORPORA,
    TRANSLATION_PREFIX,
    CorpusSpec,
    RegisteredCorpus,
    clean_splits,
    load_corpus,
    synthetic_sentence,
    synthetic_translation_pairs,
)
from forgetlab.data.types import Pair

if "test_qa_corpus" not in CORPORA:

    def _qa(spec: CorpusSpec):
        rows = [(f"What is {i} plus {i}?", str(2 * i)) for i in range(30)]
        return {"train": rows[:20], "validation": rows[20:25], "test": rows[25:]}

    CORPORA.register("test_qa_corpus")(RegisteredCorpus(read=_qa))


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
    qa = load_corpus(CorpusSpec(name="test_qa_corpus", prompt_template="Q: {source}\nA:", target_template=" {target}"))
    assert qa.split("test")[0] == Pair("test-0", "Q: What is 25 plus 25?\nA:", " 50")
