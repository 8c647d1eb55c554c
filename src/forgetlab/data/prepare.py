"""Turn a task's items into the four sets of a forgetting experiment: binarize, clean, split.

1. **binarize**: every item keeps its gold choice and ONE distractor, drawn uniformly with a
   per-item seed derived from ``(distractor_seed, task, doc_id)`` by SHA-256 (stable across runs
   and Python versions); the two keep their original order, ``gold`` is remapped. Distractors
   whose request is identical to the gold's are never drawn; an item with no other choice is
   dropped (``degenerate_choices``). Optional ``max_chars`` drops items whose longest
   context + continuation is longer (``too_long``).
2. **clean**: drop exact duplicates (``exact_duplicates``) and duplicates after normalisation
   (lower-case, punctuation replaced by spaces, whitespace collapsed; ``normalized_duplicates``)
   within and across splits, keeping the first seen in train, then the evaluation split, then the
   others; then drop evaluation items whose normalised prompt, or whose prompt's first line when
   the prompt has several lines (the premise/passage of "premise\\nQuestion: ..." prompts, e.g.
   WNLI's repeated premises), also occurs in the training pool (``train_overlap``).
3. **split** deterministically: ``"train/eval"`` when the train split holds ``finetune_size +
   forget_size`` items (fine-tune and forget sets are disjoint draws from train; validation and
   test disjoint draws from the task's evaluation split), else ``"pooled"`` (all labelled items
   pooled; fine-tune and forget drawn first, evaluation items that overlap them removed, then
   validation and test). Validation/test sizes are caps, shared in proportion when the pool is short.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from forgetlab.data.types import MCDoc

SPLIT_ORDER = ("train", "validation", "test")
CLEANING_KEYS = ("degenerate_choices", "too_long", "exact_duplicates", "normalized_duplicates", "train_overlap")
MIN_FIRST_LINE_CHARS = 20


@dataclass
class PreparedTask:
    """The four binarized sets of one task, what cleaning removed, and how the split was made."""

    task: str
    finetune: list[MCDoc]
    forget: list[MCDoc]
    validation: list[MCDoc]
    test: list[MCDoc]
    cleaning: dict[str, int]
    split_strategy: str
    seed: int
    distractor_seed: int
    eval_split: str
    source_sizes: dict[str, int] = field(default_factory=dict)

    def sets(self) -> dict[str, list[MCDoc]]:
        """The four sets by name."""
        return {"finetune": self.finetune, "forget": self.forget, "validation": self.validation, "test": self.test}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (docs as dicts with list-valued contexts/continuations)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("finetune", "forget", "validation", "test")}
        out["sizes"] = {name: len(docs) for name, docs in self.sets().items()}
        for name, docs in self.sets().items():
            out[name] = [_doc_to_dict(d) for d in docs]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PreparedTask":
        """Inverse of :meth:`to_dict`."""
        docs = {name: [_doc_from_dict(d) for d in data[name]] for name in ("finetune", "forget", "validation", "test")}
        return cls(
            task=data["task"],
            cleaning=dict(data["cleaning"]),
            split_strategy=data["split_strategy"],
            seed=data["seed"],
            distractor_seed=data["distractor_seed"],
            eval_split=data["eval_split"],
            source_sizes=dict(data.get("source_sizes", {})),
            **docs,
        )


def _doc_to_dict(doc: MCDoc) -> dict[str, Any]:
    return {
        "task": doc.task,
        "doc_id": doc.doc_id,
        "contexts": list(doc.contexts),
        "continuations": list(doc.continuations),
        "gold": doc.gold,
    }


def _doc_from_dict(d: Mapping[str, Any]) -> MCDoc:
    return MCDoc(d["task"], d["doc_id"], tuple(d["contexts"]), tuple(d["continuations"]), d["gold"])


# ----------------------------------------------------------------------------------- helpers


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from the parts' text via SHA-256 (unlike ``hash()``, the same in every process)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def normalize_text(text: str) -> str:
    """Lower-case, replace punctuation (and ``_``) by spaces, collapse whitespace."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


def binarize(doc: MCDoc, seed: int) -> MCDoc | None:
    """Gold + one distractor drawn with a per-item seed, original order kept; None if no distractor differs."""
    gold_request = doc.request(doc.gold)
    candidates = [i for i in range(doc.n_choices) if i != doc.gold and doc.request(i) != gold_request]
    if not candidates:
        return None
    if len(candidates) == 1 and doc.n_choices == 2:
        return doc
    distractor = random.Random(stable_seed(seed, doc.task, doc.doc_id)).choice(candidates)
    keep = sorted((doc.gold, distractor))
    return MCDoc(
        doc.task,
        doc.doc_id,
        tuple(doc.contexts[i] for i in keep),
        tuple(doc.continuations[i] for i in keep),
        keep.index(doc.gold),
    )


def item_key(doc: MCDoc, normalized: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What makes two items duplicates: their distinct contexts and their continuations."""
    f = normalize_text if normalized else (lambda s: s)
    return tuple(dict.fromkeys(f(c) for c in doc.contexts)), tuple(f(c) for c in doc.continuations)


def prompt_keys(doc: MCDoc, first_line: bool = True) -> set[str]:
    """Normalised prompt texts that must not be shared between training and evaluation items.

    Each distinct context, plus (if ``first_line``) its first line when the context has several
    lines and that line is long enough to be a premise/passage rather than a template word.
    """
    keys = set()
    for ctx in doc.contexts:
        keys.add(normalize_text(ctx))
        first, sep, _ = ctx.partition("\n")
        if first_line and sep and len(normalize_text(first)) >= MIN_FIRST_LINE_CHARS:
            keys.add("first-line:" + normalize_text(first))
    return keys


# --------------------------------------------------------------------------------- pipeline


def _binarize_all(
    docs_by_split: Mapping[str, Sequence[MCDoc]], seed: int, max_chars: int | None, cleaning: dict[str, int]
) -> dict[str, list[MCDoc]]:
    out: dict[str, list[MCDoc]] = {}
    for split, docs in docs_by_split.items():
        kept = []
        for doc in docs:
            b = binarize(doc, seed)
            if b is None:
                cleaning["degenerate_choices"] += 1
            elif (
                max_chars is not None and max(len(c) + len(k) for c, k in zip(b.contexts, b.continuations)) > max_chars
            ):
                cleaning["too_long"] += 1
            else:
                kept.append(b)
        out[split] = kept
    return out


def _dedupe(docs_by_split: dict[str, list[MCDoc]], eval_split: str, cleaning: dict[str, int]) -> dict[str, list[MCDoc]]:
    exact: set[Any] = set()
    norm: set[Any] = set()
    out = {}
    names = _ordered(docs_by_split)
    first = [s for s in ("train", eval_split) if s in docs_by_split]
    for split in first + [s for s in names if s not in first]:
        kept = []
        for doc in docs_by_split[split]:
            ek, nk = item_key(doc, False), item_key(doc, True)
            if ek in exact:
                cleaning["exact_duplicates"] += 1
            elif nk in norm:
                cleaning["normalized_duplicates"] += 1
            else:
                kept.append(doc)
            exact.add(ek)
            norm.add(nk)
        out[split] = kept
    return out


def _drop_overlap(
    candidates: Iterable[MCDoc], train_pool: Iterable[MCDoc], first_line: bool, cleaning: dict[str, int]
) -> list[MCDoc]:
    seen: set[str] = set()
    for doc in train_pool:
        seen |= prompt_keys(doc, first_line)
    kept = []
    for doc in candidates:
        if prompt_keys(doc, first_line) & seen:
            cleaning["train_overlap"] += 1
        else:
            kept.append(doc)
    return kept


def _ordered(docs_by_split: Mapping[str, Any]) -> list[str]:
    known = [s for s in SPLIT_ORDER if s in docs_by_split]
    return known + sorted(s for s in docs_by_split if s not in SPLIT_ORDER)


def _shuffled(docs: Sequence[MCDoc], seed: int, task: str, what: str) -> list[MCDoc]:
    out = list(docs)
    random.Random(stable_seed(seed, task, "split", what)).shuffle(out)
    return out


def _eval_sizes(n: int, validation_size: int, test_size: int, task: str = "") -> tuple[int, int]:
    """Validation and test sizes from ``n`` evaluation items: as asked, or shared in proportion when short.

    A set that was asked for but would get no item is an error (it used to shrink to 0 silently).
    """
    if n >= validation_size + test_size:
        return validation_size, test_size
    total = validation_size + test_size
    v = round(n * validation_size / total) if total else 0
    t = min(n - v, test_size)
    for name, asked, got in (("validation_size", validation_size, v), ("test_size", test_size, t)):
        if asked > 0 and got == 0:
            raise ValueError(
                f"task {task}: data.validation_size {validation_size} + data.test_size {test_size} ask for more than "
                f"the {n} evaluation items left after cleaning, and data.{name} would get none; lower them"
            )
    return v, t


def _check_sizes(**sizes: int) -> None:
    bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0}
    if bad:
        raise ValueError(f"set sizes must be non-negative integers, got {bad}")


def _resolve_eval_split(task: str, docs_by_split: Mapping[str, Any], eval_split: str | None) -> str:
    if eval_split is not None:
        return eval_split
    from forgetlab.data.tasks import get_task, task_names

    if task in task_names():
        return get_task(task).eval_split
    return "validation" if "validation" in docs_by_split else "test"


@dataclass(frozen=True)
class _Plan:
    """What to draw: the task, the split seed, the overlap rule and the four set sizes."""

    task: str
    seed: int
    first_line: bool
    finetune: int
    forget: int
    validation: int
    test: int


def prepare_task(
    docs_by_split: Mapping[str, Sequence[MCDoc]],
    *,
    finetune_size: int,
    forget_size: int,
    validation_size: int,
    test_size: int,
    seed: int,
    distractor_seed: int | None = None,
    max_chars: int | None = None,
    eval_split: str | None = None,
    premise_overlap: bool = True,
) -> PreparedTask:
    """Binarize, clean and split one task's items (see the module docstring for each step).

    ``docs_by_split`` maps original split names to items (from :func:`load_task_docs`).
    ``distractor_seed`` defaults to ``seed``. ``eval_split`` defaults to the registered task's
    lm-eval evaluation split. ``premise_overlap=False`` limits the train/eval overlap check to
    whole prompts (no first-line check). Raises ValueError naming the task, the split and the
    numbers when too few items remain for ``finetune_size + forget_size``.
    """
    _check_sizes(finetune=finetune_size, forget=forget_size, validation=validation_size, test=test_size)
    tasks = {d.task for docs in docs_by_split.values() for d in docs}
    if not tasks:
        splits = ", ".join(docs_by_split) or "none"
        raise ValueError(f"no items to prepare: every split of the task's data is empty (splits: {splits})")
    if len(tasks) != 1:
        raise ValueError(f"prepare_task needs the items of exactly one task, got tasks {sorted(tasks)}")
    task = tasks.pop()
    eval_split = _resolve_eval_split(task, docs_by_split, eval_split)
    distractor_seed = seed if distractor_seed is None else distractor_seed
    plan = _Plan(task, seed, premise_overlap, finetune_size, forget_size, validation_size, test_size)
    cleaning = {k: 0 for k in CLEANING_KEYS}
    docs = _dedupe(_binarize_all(docs_by_split, distractor_seed, max_chars, cleaning), eval_split, cleaning)
    if len(docs.get("train", [])) >= finetune_size + forget_size and eval_split != "train" and eval_split in docs:
        strategy, sets = "train/eval", _split_train_eval(docs, eval_split, plan, cleaning)
    else:
        strategy, sets = "pooled", _split_pooled(docs, plan, cleaning)
    return PreparedTask(
        task=task,
        cleaning=cleaning,
        split_strategy=strategy,
        seed=seed,
        distractor_seed=distractor_seed,
        eval_split=eval_split,
        source_sizes={s: len(d) for s, d in docs_by_split.items()},
        **sets,
    )


def _four_sets(train_side: list[MCDoc], evaluation: list[MCDoc], plan: _Plan) -> dict[str, list[MCDoc]]:
    need = plan.finetune + plan.forget
    v, t = _eval_sizes(len(evaluation), plan.validation, plan.test, plan.task)
    return {
        "finetune": train_side[: plan.finetune],
        "forget": train_side[plan.finetune : need],
        "validation": evaluation[:v],
        "test": evaluation[v : v + t],
    }


def _split_train_eval(
    docs: dict[str, list[MCDoc]], eval_split: str, plan: _Plan, cleaning: dict[str, int]
) -> dict[str, list[MCDoc]]:
    train = _shuffled(docs["train"], plan.seed, plan.task, "train")
    kept = _drop_overlap(docs[eval_split], docs["train"], plan.first_line, cleaning)
    return _four_sets(train, _shuffled(kept, plan.seed, plan.task, eval_split), plan)


def _split_pooled(docs: dict[str, list[MCDoc]], plan: _Plan, cleaning: dict[str, int]) -> dict[str, list[MCDoc]]:
    names = _ordered(docs)
    pool = _shuffled([d for s in names for d in docs[s]], plan.seed, plan.task, "pooled")
    need = plan.finetune + plan.forget
    if len(pool) < need:
        sizes = ", ".join(f"{s} {len(docs[s])}" for s in names) or "no items"
        raise ValueError(
            f"task {plan.task}: split too small: finetune_size {plan.finetune} + forget_size {plan.forget} = {need} "
            f"items needed, but the pooled splits ({'+'.join(names) or 'none'}) hold only {len(pool)} after "
            f"cleaning ({sizes}); lower the sizes"
        )
    evaluation = _drop_overlap(pool[need:], pool[:need], plan.first_line, cleaning)
    return _four_sets(pool[:need], evaluation, plan)
