"""MUSE (Shi et al. 2024, "MUSE: Machine Unlearning Six-Way Evaluation"): news articles (MUSE-News, BBC) and
Harry Potter books (MUSE-Books), with the sets its six-way evaluation reads.

Subsets and splits (:data:`MUSE_SPLITS`, the Hugging Face datasets' names):

* ``knowmem``: ``forget_qa`` / ``retain_qa`` (question-answer pairs about the forget / retain text) and their
  ``_icl`` few-shot examples — :class:`MuseQA`;
* ``verbmem``: ``forget`` — a prefix of a forget article (``prompt``) and its true continuation (``gt``) — :class:`MuseVerbatim`;
* ``privleak``: ``forget`` / ``retain`` / ``holdout`` texts (members, other members, non-members) — strings;
* ``raw``: ``forget`` / ``retain1`` / ``retain2`` / ``holdout`` — the articles themselves — strings.

Sources: ``local`` files under the data root (``<root>/muse_news/<subset>/<split>.json[.gz]``, the MUSE authors'
layout, where ``retain_qa``/``retain`` are still called ``retain2_qa``/``retain2``), ``hub``
(``datasets.load_dataset("muse-bench/MUSE-News", subset, split=...)``), or ``auto`` (local when the file exists).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from forgetlab.data.records import data_error, read_text
from forgetlab.data.types import Pair
from forgetlab.data.tasks import resolve_data_root

#: Each corpus: its folder under the data root and its Hugging Face dataset.
MUSE_CORPORA: dict[str, tuple[str, str]] = {
    "news": ("muse_news", "muse-bench/MUSE-News"),
    "books": ("muse_books", "muse-bench/MUSE-Books"),
}
#: Each subset's splits (Hugging Face names).
MUSE_SPLITS: dict[str, tuple[str, ...]] = {
    "knowmem": ("forget_qa", "forget_qa_icl", "retain_qa", "retain_qa_icl"),
    "verbmem": ("forget",),
    "privleak": ("forget", "retain", "holdout"),
    "raw": ("forget", "retain1", "retain2", "holdout"),
}
#: Splits the MUSE authors' files call by their older names.
LOCAL_NAMES = {("knowmem", "retain_qa"): "retain2_qa", ("knowmem", "retain_qa_icl"): "retain2_qa_icl", ("privleak", "retain"): "retain2"}
Corpus = Literal["news", "books"]
Source = Literal["auto", "local", "hub"]


@dataclass(frozen=True)
class MuseQA:
    """A KnowMem question and its short answer."""

    question: str
    answer: str


@dataclass(frozen=True)
class MuseVerbatim:
    """A VerbMem prompt (a prefix of a forget article) and its true continuation."""

    prompt: str
    gt: str


def muse_file(root: Path, corpus: Corpus, subset: str, split: str) -> Path:
    """Where a split's local file lives (``.json``, else ``.json.gz``)."""
    folder = root / MUSE_CORPORA[corpus][0] / subset
    name = LOCAL_NAMES.get((subset, split), split)
    plain = folder / f"{name}.json"
    return plain if plain.is_file() or not (folder / f"{name}.json.gz").is_file() else folder / f"{name}.json.gz"


def muse_input_files(corpus: Corpus, subset: str, split: str, source: Source = "auto", root: str | Path | None = None) -> list[Path]:
    """The local files loading a split reads (none from the hub): part of a run's identity."""
    path = _local_path(corpus, subset, split, source, root)
    return [] if path is None else [path]


def load_muse_knowmem(corpus: Corpus, split: str, *, source: Source = "auto", root: str | Path | None = None) -> list[MuseQA]:
    """A KnowMem split's question-answer pairs."""
    rows, origin = _rows(corpus, "knowmem", split, source, root)
    return [MuseQA(*_fields(row, ("question", "answer"), f"{origin} item {i}")) for i, row in enumerate(rows)]


def load_muse_verbmem(corpus: Corpus, *, source: Source = "auto", root: str | Path | None = None) -> list[MuseVerbatim]:
    """The VerbMem prompts and their true continuations."""
    rows, origin = _rows(corpus, "verbmem", "forget", source, root)
    return [MuseVerbatim(*_fields(row, ("prompt", "gt"), f"{origin} item {i}")) for i, row in enumerate(rows)]


def load_muse_texts(corpus: Corpus, subset: Literal["privleak", "raw"], split: str, *, source: Source = "auto",
                    root: str | Path | None = None) -> list[str]:
    """A privleak or raw split's texts (plain strings; hub rows' ``text`` column)."""
    rows, origin = _rows(corpus, subset, split, source, root)
    texts = []
    for i, row in enumerate(rows):
        text = row.get("text") if isinstance(row, dict) else row
        if not isinstance(text, str):
            raise data_error(f"{origin} item {i}", f"expected a text string, got {type(row).__name__}")
        texts.append(text)
    return texts


def _fields(row: object, names: tuple[str, str], origin: str) -> tuple[str, str]:
    if not isinstance(row, dict) or any(not isinstance(row.get(n), str) for n in names):
        raise data_error(origin, f"expected an object with string fields {names[0]!r} and {names[1]!r}")
    return row[names[0]], row[names[1]]


def _rows(corpus: str, subset: str, split: str, source: Source, root: str | Path | None) -> tuple[list[object], str]:
    if corpus not in MUSE_CORPORA:
        raise ValueError(f"unknown MUSE corpus {corpus!r}; known: {', '.join(MUSE_CORPORA)}")
    if split not in MUSE_SPLITS.get(subset, ()):
        known = "; ".join(f"{s}: {', '.join(splits)}" for s, splits in MUSE_SPLITS.items())
        raise ValueError(f"MUSE has no split {subset}/{split} (subsets and splits: {known})")
    path = _local_path(corpus, subset, split, source, root)
    if path is None:
        return _hub_rows(corpus, subset, split)
    rows = json.loads(read_text(path))
    if not isinstance(rows, list) or not rows:
        raise data_error(str(path), "expected a non-empty JSON array")
    return rows, str(path)


def _local_path(corpus: str, subset: str, split: str, source: Source, root: str | Path | None) -> Path | None:
    if source == "hub":
        return None
    data_root = resolve_data_root(root, required=source == "local")
    path = muse_file(data_root, corpus, subset, split) if data_root is not None else None
    if source == "local" and not path.is_file():
        raise ValueError(f"MUSE {corpus} {subset}/{split}: local file {path} not found (source: local)")
    return path if path is not None and path.is_file() else None


def _hub_rows(corpus: str, subset: str, split: str) -> tuple[list[object], str]:
    import datasets

    hub_path = MUSE_CORPORA[corpus][1]
    rows = datasets.load_dataset(hub_path, subset, split=split)
    return [dict(row) for row in rows], f"hub {hub_path}/{subset} split {split}"


def word_pieces(texts: list[str], words: int, prefix: str) -> list[Pair]:
    """Each text cut into pieces of ``words`` words (whitespace kept inside a piece), as pairs with an empty prompt
    (``<prefix>-<text>-<piece>``): what training on raw text reads."""
    pieces = []
    for t, text in enumerate(texts):
        tokens = re.findall(r"\S+\s*", text)
        for start in range(0, len(tokens), words):
            pieces.append(Pair(f"{prefix}-{t}-{start // words}", "", "".join(tokens[start : start + words]).rstrip()))
    return pieces
