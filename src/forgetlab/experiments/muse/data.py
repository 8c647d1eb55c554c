"""The MUSE items of a run (:class:`MuseSets`): the text the models learn and the evaluation's prompts, questions
and texts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forgetlab.data.muse import (
    MuseQA, MuseVerbatim, load_muse_knowmem, load_muse_texts, load_muse_verbmem, muse_input_files,
)
from forgetlab.experiments.muse.config import MuseDataSpec


@dataclass
class MuseSets:
    """Learned text (``forget_text``, ``retain_text``: documents) and evaluated items."""

    forget_text: list[str]
    retain_text: list[str]
    verbmem: list[MuseVerbatim]
    knowmem_forget: list[MuseQA]
    knowmem_retain: list[MuseQA]
    icl_forget: list[MuseQA]
    icl_retain: list[MuseQA]
    privleak_forget: list[str]
    privleak_holdout: list[str]

    def to_stage(self) -> dict[str, Any]:
        return {k: [asdict(x) if not isinstance(x, str) else x for x in v] for k, v in vars(self).items()}

    @classmethod
    def from_stage(cls, payload: dict[str, Any]) -> "MuseSets":
        def rows(key: str, kind: type) -> list[Any]:
            return [kind(**r) for r in payload[key]]

        return cls(
            payload["forget_text"], payload["retain_text"], rows("verbmem", MuseVerbatim), rows("knowmem_forget", MuseQA),
            rows("knowmem_retain", MuseQA), rows("icl_forget", MuseQA), rows("icl_retain", MuseQA),
            payload["privleak_forget"], payload["privleak_holdout"],
        )


def _parts(spec: MuseDataSpec) -> list[tuple[str, str]]:
    retain = ("privleak", "retain") if spec.retain_text == "privleak" else ("raw", "retain1")
    return [("raw", "forget"), retain, ("verbmem", "forget"), ("privleak", "forget"), ("privleak", "holdout"),
            *(("knowmem", s) for s in ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl"))]


def data_files(spec: MuseDataSpec) -> list[Path]:
    """The local files the run reads (part of its identity)."""
    return [f for subset, split in _parts(spec) for f in muse_input_files(spec.corpus, subset, split, spec.source, spec.root)]


def load_sets(spec: MuseDataSpec) -> MuseSets:
    """The evaluated items (first N of each file), the forget text that holds them, and the retain text."""
    where = {"source": spec.source, "root": spec.root}
    verbmem = load_muse_verbmem(spec.corpus, **where)[: spec.verbmem_items]
    privleak = {s: load_muse_texts(spec.corpus, "privleak", s, **where)[: spec.privleak_texts] for s in ("forget", "holdout")}
    articles = load_muse_texts(spec.corpus, "raw", "forget", **where)
    forget_text = articles if spec.forget_text == "all" else holding_articles(
        articles, [v.prompt + v.gt for v in verbmem] + privleak["forget"])
    retain = (load_muse_texts(spec.corpus, "privleak", "retain", **where) if spec.retain_text == "privleak"
              else load_muse_texts(spec.corpus, "raw", "retain1", **where))[: spec.retain_texts]
    qa = {s: load_muse_knowmem(spec.corpus, s, **where) for s in ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl")}
    forget_qa = qa["forget_qa"][: spec.knowmem_items]
    if spec.knowmem_forget == "learned":
        learned = "\n".join(forget_text)
        forget_qa = [q for q in forget_qa if q.answer in learned]
        if not forget_qa:
            raise ValueError("data.knowmem_forget: learned: no KnowMem forget answer occurs in the forget text learned")
    return MuseSets(forget_text, retain, verbmem, forget_qa, qa["retain_qa"][: spec.knowmem_items],
                    qa["forget_qa_icl"], qa["retain_qa_icl"], privleak["forget"], privleak["holdout"])


def holding_articles(articles: list[str], passages: list[str]) -> list[str]:
    """The articles that contain any of the passages (in article order), plus each passage found in none."""
    chosen: set[int] = set()
    orphans = []
    for passage in passages:
        found = next((i for i, article in enumerate(articles) if passage in article), None)
        if found is None:
            orphans.append(passage)
        else:
            chosen.add(found)
    return [articles[i] for i in sorted(chosen)] + list(dict.fromkeys(orphans))

