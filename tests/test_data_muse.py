"""MUSE loading: the shared files' counts and fields, the older local split names, the hub path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from forgetlab.data.muse import load_muse_knowmem, load_muse_texts, load_muse_verbmem, muse_input_files


def test_news_parts_on_the_shared_files(shared_data: Path) -> None:
    sizes = {s: len(load_muse_knowmem("news", s, source="local", root=shared_data))
             for s in ("forget_qa", "forget_qa_icl", "retain_qa", "retain_qa_icl")}
    assert sizes == {"forget_qa": 100, "forget_qa_icl": 10, "retain_qa": 100, "retain_qa_icl": 10}
    verbmem = load_muse_verbmem("news", root=shared_data)
    assert len(verbmem) == 100 and all(v.prompt and v.gt for v in verbmem)
    privleak = {s: load_muse_texts("news", "privleak", s, root=shared_data) for s in ("forget", "retain", "holdout")}
    assert {s: len(t) for s, t in privleak.items()} == {"forget": 100, "retain": 100, "holdout": 100}
    raw = load_muse_texts("news", "raw", "forget", root=shared_data)
    assert len(raw) == 889
    joined = "\n\n".join(raw)
    assert all(text in joined for text in privleak["forget"])  # SOURCES.md: privleak forget texts come from raw forget
    assert muse_input_files("news", "knowmem", "retain_qa", root=shared_data) == [
        shared_data / "muse_news" / "knowmem" / "retain2_qa.json"]
    assert muse_input_files("news", "raw", "forget", root=shared_data) == [shared_data / "muse_news" / "raw" / "forget.json.gz"]


def test_books_knowmem(shared_data: Path) -> None:
    qa = load_muse_knowmem("books", "forget_qa", root=shared_data)
    assert len(qa) == 100 and all(q.question.strip() and q.answer.strip() for q in qa)


def test_errors_name_file_and_item(tmp_path: Path) -> None:
    folder = tmp_path / "muse_news" / "knowmem"
    folder.mkdir(parents=True)
    (folder / "forget_qa.json").write_text(json.dumps([{"question": "Q", "answer": "A"}, {"question": "Q"}]))
    with pytest.raises(ValueError, match=r"forget_qa.json item 1: expected an object with string fields 'question' and 'answer'"):
        load_muse_knowmem("news", "forget_qa", root=tmp_path)
    with pytest.raises(ValueError, match="MUSE has no split knowmem/forget"):
        load_muse_knowmem("news", "forget", root=tmp_path)
    with pytest.raises(ValueError, match="local file .*retain2_qa.json not found"):
        load_muse_knowmem("news", "retain_qa", source="local", root=tmp_path)
    raw = tmp_path / "muse_news" / "raw"
    raw.mkdir()
    (raw / "forget.json.gz").write_bytes(gzip.compress(json.dumps(["one", 2]).encode()))
    with pytest.raises(ValueError, match=r"forget.json.gz item 1: expected a text string"):
        load_muse_texts("news", "raw", "forget", root=tmp_path)


def test_hub_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import datasets

    calls = []

    def fake(path: str, name: str, split: str) -> Any:
        calls.append((path, name, split))
        return datasets.Dataset.from_list([{"text": "a news article"}])

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert load_muse_texts("books", "privleak", "retain", source="hub") == ["a news article"]
    assert calls == [("muse-bench/MUSE-Books", "privleak", "retain")]
    assert load_muse_texts("news", "raw", "holdout", root=tmp_path) == ["a news article"]  # auto: no local file
    assert calls[-1] == ("muse-bench/MUSE-News", "raw", "holdout")
