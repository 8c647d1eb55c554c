"""Readers for the original benchmark file layouts (see ``shared/data/SOURCES.md``).

Every reader turns the rows of one split into :class:`Record` objects in the Hugging Face field
layout that lm-eval's templates expect, so a local file renders exactly like the hub dataset
wherever the text itself is the same. Known text differences (WiC tokenisation, BoolQ train
passages without title, HellaSwag context reconstruction) are documented on each reader.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterator

from forgetlab.data.records import (
    Record,
    data_error,
    iter_tsv_raw,
    read_jsonl,
    read_lines,
    read_text,
    require,
)

ENTAILMENT_2 = {"entailment": 0, "not_entailment": 1}
# SuperGLUE BoolQ val.jsonl stores the label as the strings "true"/"false"; JSON booleans also accepted.
BOOLEAN = {False: 0, True: 1, "false": 0, "true": 1}
CB_LABELS = {"entailment": 0, "contradiction": 1, "neutral": 2}


def map_label(value: Any, mapping: dict[Any, int], field: str, origin: str) -> int:
    """``mapping[value]``, or a ValueError naming the field and the allowed values."""
    try:
        return mapping[value]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(k) for k in mapping)
        raise data_error(origin, f"field {field!r}: unknown label {value!r} (expected one of {allowed})") from None


def as_int(value: Any, field: str, origin: str) -> int:
    """An integer cell (``"3"`` or ``3``), or a ValueError naming the field."""
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise data_error(origin, f"field {field!r}: expected an integer, got {value!r}") from None


def pick(row: dict[str, Any], fields: tuple[str, ...], origin: str) -> dict[str, Any]:
    """The named fields of a row (all required)."""
    return {f: require(row, f, origin) for f in fields}


def tsv_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[dict[str, str], str]]:
    """Rows of a GLUE tsv with a header, as dicts of the named columns (``csv.QUOTE_NONE``)."""
    rows = []
    for cells, head, origin in iter_tsv_raw(path, header=True):
        assert head is not None
        if len(cells) != len(head):
            raise data_error(origin, f"expected {len(head)} tab-separated cells, got {len(cells)}")
        row = dict(zip(head, cells))
        rows.append(({c: require(row, c, origin) for c in columns}, origin))
    return rows


# ----------------------------------------------------------------------------------- SuperGLUE


def superglue_boolq(path: Path) -> list[Record]:
    """SuperGLUE ``val.jsonl`` (passage starts with ``"Title -- "``, label ``"true"``/``"false"``) -> HF super_glue."""
    out = []
    for row, origin in read_jsonl(path):
        doc = pick(row, ("question", "passage"), origin)
        label = require(row, "label", origin)
        doc["idx"] = as_int(row.get("idx", len(out)), "idx", origin)
        doc["label"] = map_label(label, BOOLEAN, "label", origin)
        out.append(Record(doc, origin))
    return out


def google_boolq(path: Path) -> list[Record]:
    """``google/boolq`` export (``answer`` boolean, passage WITHOUT the title prefix) -> HF super_glue.

    lm-eval's ``aps/super_glue`` train passages start with ``"Title -- "``; this export has no title,
    so train prompts lack that prefix (the eval split, ``val.jsonl``, is exact).
    """
    out = []
    for i, (row, origin) in enumerate(read_jsonl(path)):
        doc = pick(row, ("question", "passage"), origin)
        doc["idx"] = i
        doc["label"] = map_label(require(row, "answer", origin), BOOLEAN, "answer", origin)
        out.append(Record(doc, origin))
    return out


def superglue_pairs(labels: dict[str, int]) -> Callable[[Path], list[Record]]:
    """Reader for SuperGLUE premise/hypothesis jsonl (RTE, CB) with string labels."""

    def read(path: Path) -> list[Record]:
        out = []
        for row, origin in read_jsonl(path):
            doc = pick(row, ("premise", "hypothesis"), origin)
            doc["idx"] = as_int(row.get("idx", len(out)), "idx", origin)
            doc["label"] = map_label(require(row, "label", origin), labels, "label", origin)
            out.append(Record(doc, origin))
        return out

    return read


def hf_jsonl(path: Path) -> list[Record]:
    """A JSON-lines export that is already in the HF layout (ARC, COPA, CommonsenseQA)."""
    return read_jsonl(path)


# ----------------------------------------------------------------------------------------- GLUE


def glue_pair_tsv(first: str, second: str, label_map: dict[str, int] | None) -> Callable[[Path], list[Record]]:
    """Reader for GLUE ``index``/two-text/``label`` tsv files (RTE, QNLI, WNLI)."""

    def read(path: Path) -> list[Record]:
        out = []
        for row, origin in tsv_rows(path, ("index", first, second, "label")):
            label = (
                map_label(row["label"], label_map, "label", origin)
                if label_map
                else map_label(row["label"], {"0": 0, "1": 1}, "label", origin)
            )
            doc = {first: row[first], second: row[second], "label": label, "idx": as_int(row["index"], "index", origin)}
            out.append(Record(doc, origin))
        return out

    return read


def glue_sst2(path: Path) -> list[Record]:
    """GLUE SST-2 tsv (``sentence``, ``label``); sentences are kept verbatim (trailing space included)."""
    out = []
    for i, (row, origin) in enumerate(tsv_rows(path, ("sentence", "label"))):
        label = map_label(row["label"], {"0": 0, "1": 1}, "label", origin)
        out.append(Record({"sentence": row["sentence"], "label": label, "idx": i}, origin))
    return out


def glue_cola(path: Path) -> list[Record]:
    """GLUE CoLA tsv WITHOUT header: source, label (1 acceptable), author's mark, sentence."""
    out = []
    for i, (cells, _, origin) in enumerate(iter_tsv_raw(path, header=False)):
        if len(cells) != 4:
            raise data_error(
                origin, f"expected 4 tab-separated cells (source, label, mark, sentence), got {len(cells)}"
            )
        label = map_label(cells[1], {"0": 0, "1": 1}, "label", origin)
        out.append(Record({"sentence": cells[3], "label": label, "idx": i}, origin))
    return out


def _msr_rows(path: Path) -> list[tuple[dict[str, str], str]]:
    return tsv_rows(path, ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"))


def _msr_doc(row: dict[str, str], idx: int, origin: str) -> dict[str, Any]:
    label = map_label(row["Quality"], {"0": 0, "1": 1}, "Quality", origin)
    return {"sentence1": row["#1 String"], "sentence2": row["#2 String"], "label": label, "idx": idx}


def msr_split(want_dev: bool) -> Callable[[Path, Path], list[Record]]:
    """MRPC train/validation rebuilt as HF ``glue/mrpc`` does it.

    HF takes ``msr_paraphrase_train.txt`` and puts the pairs listed in ``dev_ids.tsv`` in
    ``validation`` and the rest (3668, one more than GLUE's ``train.tsv``) in ``train``; ``idx`` is
    the row number in ``msr_paraphrase_train.txt``.
    """

    def read(train_path: Path, dev_ids_path: Path) -> list[Record]:
        dev_ids = {tuple(cells[:2]) for cells, _, _ in iter_tsv_raw(dev_ids_path, header=False)}
        out = []
        for n, (row, origin) in enumerate(_msr_rows(train_path)):
            if ((row["#1 ID"], row["#2 ID"]) in dev_ids) == want_dev:
                out.append(Record(_msr_doc(row, n, origin), origin))
        return out

    return read


def msr_test(path: Path) -> list[Record]:
    """MRPC labelled test set ``msr_paraphrase_test.txt`` (HF ``glue/mrpc`` test)."""
    return [Record(_msr_doc(row, n, origin), origin) for n, (row, origin) in enumerate(_msr_rows(path))]


# ------------------------------------------------------------------------------ original layouts


def _aligned(records: list[Any], labels: list[str], data_path: Path, label_path: Path) -> None:
    if len(records) != len(labels):
        raise ValueError(
            f"{label_path}: {len(labels)} labels but {data_path} has {len(records)} rows; "
            "the files must be line-aligned"
        )


def labelled_rows(data_path: Path, label_path: Path) -> Iterator[tuple[Record, str, str]]:
    """Each row of a jsonl file with its line-aligned label: ``(record, label, "<label file> line <n>")``."""
    rows = read_jsonl(data_path)
    labels = read_lines(label_path)
    _aligned(rows, labels, data_path, label_path)
    for i, (record, label) in enumerate(zip(rows, labels)):
        yield record, label.strip(), f"{label_path} line {i + 1}"


def piqa(data_path: Path, label_path: Path) -> list[Record]:
    """PIQA ``valid.jsonl`` (goal, sol1, sol2) + line-aligned ``valid-labels.lst`` (0/1)."""
    out = []
    for (row, origin), label, label_origin in labelled_rows(data_path, label_path):
        doc = pick(row, ("goal", "sol1", "sol2"), origin)
        doc["label"] = map_label(label, {"0": 0, "1": 1}, "label", label_origin)
        out.append(Record(doc, origin))
    return out


def _token_span(tokens: list[str], index: int, field: str, origin: str) -> tuple[int, int]:
    if not 0 <= index < len(tokens):
        raise data_error(origin, f"field {field!r}: token index {index} out of range for {len(tokens)} tokens")
    start = sum(len(t) + 1 for t in tokens[:index])
    return start, start + len(tokens[index])


def wic(data_path: Path, gold_path: Path) -> list[Record]:
    """Original WiC release (tab-separated word, PoS, ``i1-i2``, sentence1, sentence2) + T/F gold.

    The sentences are space-tokenised (``"Room and board ."``), so the prompt differs from HF's
    detokenised text by spaces around punctuation. ``start1/end1`` (and 2) are character offsets of
    the target token in the tokenised sentence, so ``sentence1[start1:end1]`` (the word lm-eval
    quotes) is the same surface form as in HF. Row order differs from HF's.
    """
    labels = read_lines(gold_path)
    out = []
    for i, (cells, _, origin) in enumerate(iter_tsv_raw(data_path, header=False)):
        if len(cells) != 5:
            raise data_error(
                origin, f"expected 5 tab-separated cells (word, PoS, i1-i2, sentence1, sentence2), got {len(cells)}"
            )
        word, _pos, idxs, s1, s2 = cells
        m = re.fullmatch(r"(\d+)-(\d+)", idxs)
        if not m:
            raise data_error(origin, f"field 'i1-i2': expected two token indices like '2-5', got {idxs!r}")
        start1, end1 = _token_span(s1.split(" "), int(m.group(1)), "i1", origin)
        start2, end2 = _token_span(s2.split(" "), int(m.group(2)), "i2", origin)
        doc = {
            "word": word,
            "sentence1": s1,
            "sentence2": s2,
            "start1": start1,
            "start2": start2,
            "end1": end1,
            "end2": end2,
            "idx": i,
        }
        out.append(Record(doc, origin))
    _aligned(out, labels, data_path, gold_path)
    for i, (rec, label) in enumerate(zip(out, labels)):
        rec.doc["label"] = map_label(label.strip(), {"F": 0, "T": 1}, "label", f"{gold_path} line {i + 1}")
    return out


def winogrande(data_path: Path, label_path: Path) -> list[Record]:
    """WinoGrande original jsonl (qID, sentence, option1, option2, answer) checked against ``*-labels.lst``."""
    out = []
    for (row, origin), label, label_origin in labelled_rows(data_path, label_path):
        doc = pick(row, ("sentence", "option1", "option2", "answer"), origin)
        doc["answer"] = str(doc["answer"])
        map_label(doc["answer"], {"1": 0, "2": 1}, "answer", origin)
        if doc["answer"] != label:
            raise data_error(origin, f"field 'answer' is {doc['answer']!r} but {label_origin} says {label!r}")
        if "_" not in doc["sentence"]:
            raise data_error(origin, "field 'sentence' has no '_' blank")
        out.append(Record(doc, origin))
    return out


def split_hellaswag_context(context: str) -> tuple[str, str, str]:
    """Recover ``(activity_label, ctx_a, ctx_b)`` from llama.cpp's ``activity_label + ": " + ctx``.

    HF's ``ctx_b`` is the unfinished lowercase noun phrase that ends ActivityNet contexts ("he",
    "the lady"); WikiHow contexts end with a full sentence and have ``ctx_b == ""``. We take
    ``ctx_b`` as the text after the last sentence end when the context does not itself end with
    sentence punctuation (all 3241 such validation items have one), else ``""``. lm-eval renders
    ``ctx_a + " " + ctx_b.capitalize()``, so this reproduces its capitalised last phrase.
    """
    label, sep, ctx = context.partition(": ")
    if not sep:
        return "", context, ""
    if not ctx or ctx[-1] in ".!?\"'":
        return label, ctx, ""
    ends = list(re.finditer(r"[.!?]\s", ctx))
    if not ends:
        return label, "", ctx
    cut = ends[-1].end()
    return label, ctx[: cut - 1], ctx[cut:]


def hellaswag_llamacpp(path: Path) -> list[Record]:
    """llama.cpp HellaSwag jsonl ``{idx, context, label, endings}`` -> HF ``Rowan/hellaswag`` fields.

    The text already went through lm-eval-style preprocessing (``[title]`` artifacts removed) and
    ``ctx_a``/``ctx_b`` are reconstructed by :func:`split_hellaswag_context`; ``label`` is a string
    as in HF. Order and count (10042) are HF validation's; ``ind`` is the row number (HF's original
    ``ind``, ``source_id`` and ``split_type`` are not in the file and are left empty/row-based).
    """
    out = []
    for row, origin in read_jsonl(path):
        context = require(row, "context", origin)
        endings = require(row, "endings", origin)
        if not isinstance(endings, list) or not all(isinstance(e, str) for e in endings):
            raise data_error(origin, "field 'endings': expected a list of strings")
        label = as_int(require(row, "label", origin), "label", origin)
        activity, ctx_a, ctx_b = split_hellaswag_context(context)
        doc = {
            "ind": as_int(row.get("idx", len(out)), "idx", origin),
            "activity_label": activity,
            "ctx_a": ctx_a,
            "ctx_b": ctx_b,
            "ctx": context.partition(": ")[2] or context,
            "endings": endings,
            "source_id": "",
            "split": "val",
            "split_type": "",
            "label": str(label),
        }
        out.append(Record(doc, origin))
    return out


def logiqa(path: Path) -> list[Record]:
    """Original LogiQA text (blank line, answer letter, context, question, four ``X.`` options).

    Parsed exactly like the ``EleutherAI/logiqa`` loading script lm-eval's data came from:
    ``text.replace(".", ". ").strip()`` on context, question and options (option prefix removed).
    """

    def normalize(text: str) -> str:
        return text.replace(".", ". ").strip()

    text = read_text(path).replace("\r\n", "\n")
    out = []
    lineno = 1 + len(text) - len(text.lstrip("\n"))
    for block in text.strip().split("\n\n"):
        origin = f"{path} line {lineno}"
        lines = block.split("\n")
        lineno += len(lines) + 1
        if len(lines) < 5:
            raise data_error(origin, f"expected answer, context, question and options lines, got {len(lines)} lines")
        label = lines[0].strip()
        map_label(label, {k: 0 for k in "abcd"}, "label", origin)
        doc = {
            "label": label,
            "context": normalize(lines[1]),
            "question": normalize(lines[2]),
            "options": [normalize(opt[2:]) for opt in lines[3:]],
        }
        out.append(Record(doc, origin))
    return out
