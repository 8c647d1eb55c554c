"""The items of an ``unlearn`` run: loaded from its sources, split into disjoint seeded sets, and encoded
for training and scoring."""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from forgetlab.data.types import Pair
from forgetlab.experiments.unlearn.config import (
    ATTACK_SETS, SET_ORDER, CorpusSource, FileSource, InlineSource, MuseSource, SourceSpec, TaskSource, TofuSource,
    UnlearnConfig,
)
from forgetlab.methods import Method
from forgetlab.train import EncodedItem, encode_requests


def split_text(text: str, prompt_words: int) -> tuple[str, str] | None:
    """A text as (prompt, target): the first ``prompt_words`` words, then the rest with its leading space."""
    words = text.split()
    if prompt_words == 0:
        return ("", " ".join(words)) if words else None
    if len(words) <= prompt_words:
        return None
    return " ".join(words[:prompt_words]), " " + " ".join(words[prompt_words:])


def row_item(
    row: dict[str, Any], item_id: str, origin: str, prompt_words: int,
    prompt_field: str = "prompt", target_field: str = "target", text_field: str = "text",
) -> Pair | None:
    """An item from a row with prompt/target fields or a text field (None when too short to split)."""
    if prompt_field in row and target_field in row:
        return Pair(item_id, str(row[prompt_field]), str(row[target_field]))
    if text_field in row:
        pair = split_text(str(row[text_field]), prompt_words)
        return Pair(item_id, *pair) if pair else None
    raise ValueError(f"{origin}: expected fields {prompt_field!r} and {target_field!r}, or {text_field!r}; found {sorted(row)}")


def _inline_items(spec: InlineSource, need: int, seed: int) -> list[Pair | None]:
    rows = [{"text": r} if isinstance(r, str) else r for r in spec.items]
    return [row_item(r, f"inline-{i}", f"inline item {i}", spec.prompt_words) for i, r in enumerate(rows)]


def _file_items(spec: FileSource, need: int, seed: int) -> list[Pair | None]:
    from forgetlab.data.records import read_table_file

    fields = (spec.prompt_field, spec.target_field, spec.text_field)
    rows = read_table_file(spec.path)
    return [row_item(rec.doc, f"row-{i}", rec.origin, spec.prompt_words, *fields) for i, rec in enumerate(rows)]


def _corpus_items(spec: CorpusSource, need: int, seed: int) -> list[Pair | None]:
    from forgetlab.data.corpus import CorpusSpec, load_corpus

    corpus = load_corpus(CorpusSpec.model_validate(spec.corpus))
    return [Pair(p.pair_id, p.prompt, p.target) for p in corpus.split(spec.split)]


def _task_items(spec: TaskSource, need: int, seed: int) -> list[Pair | None]:
    from forgetlab.data.prepare import prepare_task
    from forgetlab.data.tasks import load_task_docs

    docs = load_task_docs(spec.task, source=spec.source, data_root=spec.root, hub_path=spec.hub_path, files=spec.files)
    prepared = prepare_task(docs, finetune_size=need, forget_size=0, validation_size=0, test_size=0, seed=seed)
    return [Pair(f"{spec.task}-{d.doc_id}", *d.request(d.gold)) for d in prepared.finetune]


def _tofu_items(spec: TofuSource, need: int, seed: int) -> list[Pair | None]:
    from forgetlab.data.tofu import load_tofu

    items = load_tofu(spec.config, source=spec.source, root=spec.root, hub_path=spec.hub_path)
    return [Pair(i.item_id, f"Question: {i.question}\nAnswer:", f" {i.answer}") for i in items]


def _muse_items(spec: MuseSource, need: int, seed: int) -> list[Pair | None]:
    from forgetlab.data.muse import load_muse_knowmem, load_muse_texts, load_muse_verbmem, word_pieces

    where = {"source": spec.source, "root": spec.root}
    name = f"muse-{spec.subset}-{spec.split}"
    if spec.subset == "knowmem":
        rows = load_muse_knowmem(spec.corpus, spec.split, **where)
        return [Pair(f"{name}-{k}", f"Question: {q.question}\nAnswer:", f" {q.answer}") for k, q in enumerate(rows)]
    if spec.subset == "verbmem":
        return [Pair(f"{name}-{k}", v.prompt, v.gt) for k, v in enumerate(load_muse_verbmem(spec.corpus, **where))]
    texts = load_muse_texts(spec.corpus, spec.subset, spec.split, **where)
    if spec.chunk_words is None:
        return [Pair(f"{name}-{k}", "", text) for k, text in enumerate(texts)]
    return list(word_pieces(texts, spec.chunk_words, name))


#: Each source kind's items, from its spec, how many items the sets need of it, and the seed.
SOURCE_ITEMS: dict[str, Callable[[Any, int, int], list[Pair | None]]] = {
    "inline": _inline_items, "file": _file_items, "corpus": _corpus_items, "task": _task_items,
    "tofu": _tofu_items, "muse": _muse_items,
}


def load_source(spec: SourceSpec, need: int, seed: int) -> list[Pair]:
    """A source's usable items: non-empty targets, within ``max_chars``, first of each duplicate kept."""
    raw = SOURCE_ITEMS[spec.kind](spec, need, seed)
    seen: set[tuple[str, str]] = set()
    items = []
    for item in raw:
        if item is None or not item.target.strip() or (item.prompt, item.target) in seen:
            continue
        if spec.max_chars is not None and len(item.prompt) + len(item.target) > spec.max_chars:
            continue
        seen.add((item.prompt, item.target))
        items.append(item)
    return items


def build_sets(config: UnlearnConfig) -> dict[str, list[Pair]]:
    """Seeded, disjoint slices of each source for the sets, in the order forget, holdout, retain, utility
    (then the attacks' relearn and benign sets).

    No (prompt, target) text goes into two sets, even from different sources.
    """
    named = config.sets.drawn()
    needs: dict[str, int] = {}
    for spec in named.values():
        needs[spec.source] = needs.get(spec.source, 0) + spec.size
    pools = {}
    for name, need in needs.items():
        items = load_source(config.sources[name], need, config.seed)
        random.Random(f"unlearn:{config.seed}:{name}").shuffle(items)
        pools[name] = iter(items)
    used: set[str] = set()
    sets: dict[str, list[Pair]] = {}
    for set_name, spec in named.items():
        taken: list[Pair] = []
        for item in pools[spec.source]:
            key = " ".join((item.prompt + item.target).split())
            if key not in used:
                used.add(key)
                taken.append(item)
                if len(taken) == spec.size:
                    break
        if len(taken) < spec.size:
            raise ValueError(
                f"sets.{set_name}: source {spec.source!r} has only {len(taken)} unused items left, {spec.size} needed "
                f"(sets sharing a source take disjoint slices; together they need {needs[spec.source]})"
            )
        sets[set_name] = taken
    return sets


def sets_to_stage(sets: dict[str, list[Pair]]) -> dict[str, Any]:
    """The payload of the ``data`` stage: each set's items as rows."""
    return {name: [item.to_dict() for item in items] for name, items in sets.items()}


def sets_from_stage(payload: dict[str, Any]) -> dict[str, list[Pair]]:
    """The sets of a saved ``data`` stage (its other keys, e.g. ``seconds``, left out)."""
    return {name: [Pair.from_dict(row) for row in rows] for name, rows in payload.items() if name in (*SET_ORDER, *ATTACK_SETS)}


def training_items(tokenizer: Any, items: Sequence[Pair], method: Method | None, seed: int, max_length: int) -> list[EncodedItem]:
    """What a method trains on: its ``pair_targets`` (refusals, preference pairs); None: the targets themselves."""
    encoded = []
    for item in items:
        continuations, gold = method.pair_targets(item.pair_id, item.target, seed) if method else ([item.target], 0)
        requests = [(item.prompt, continuation) for continuation in continuations]
        encoded.append(encode_requests(tokenizer, item.pair_id, requests, gold, max_length))
    return encoded


