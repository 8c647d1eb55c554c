"""Multiple-choice tasks generated in code, so the pipeline runs with no data files and no network.

* ``synth_arith``: ``"Question: What is 23 + 45?\\nAnswer:"`` with four numeric choices (the sum
  and near misses: off by 1, 2, 10 or 11), two-digit operands.
* ``synth_compare``: ``"Question: Which number is larger, 47 or 382?\\nAnswer:"`` with the two
  numbers as choices.

Both are plain HF-layout rows (``question``, ``choices``, ``label``) rendered with lm-eval style
templates, so they also work with ``source="files"``. Items are unique within and across splits;
the same seed gives the same rows. Small LMs (SmolLM2-135M) are above chance zero-shot and
improve with fine-tuning.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Mapping

from forgetlab.data.tasks import SyntheticSource, TaskSpec, register_task

DEFAULT_SIZES = {"train": 2000, "validation": 500}
SPLIT_ORDER = ("train", "validation", "test")


def _ordered_sizes(sizes: Mapping[str, int]) -> list[tuple[str, int]]:
    unknown = [s for s in sizes if s not in SPLIT_ORDER]
    if unknown:
        raise ValueError(f"unknown synthetic split names {unknown}; use {', '.join(SPLIT_ORDER)}")
    bad = {s: n for s, n in sizes.items() if not isinstance(n, int) or n < 0}
    if bad:
        raise ValueError(f"synthetic split sizes must be non-negative integers, got {bad}")
    return [(s, sizes[s]) for s in SPLIT_ORDER if s in sizes]


def _unique_pairs(
    rng: random.Random, total: int, draw: Callable[[random.Random], tuple[int, int]], capacity: int, task: str
) -> list[tuple[int, int]]:
    if total > capacity // 2:
        raise ValueError(
            f"{task}: {total} items requested but only {capacity} distinct questions exist; "
            f"ask for at most {capacity // 2}"
        )
    seen: set[tuple[int, int]] = set()
    pairs = []
    while len(pairs) < total:
        pair = draw(rng)
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    return pairs


def _split(rows: list[dict[str, Any]], sizes: list[tuple[str, int]]) -> dict[str, list[dict[str, Any]]]:
    out, start = {}, 0
    for split, n in sizes:
        out[split] = rows[start : start + n]
        start += n
    return out


def arith_rows(seed: int, sizes: Mapping[str, int]) -> dict[str, list[dict[str, Any]]]:
    """``synth_arith`` rows: two-digit additions with the sum and three near-miss choices."""
    order = _ordered_sizes(sizes)
    rng = random.Random(f"synth_arith:{seed}")
    pairs = _unique_pairs(
        rng, sum(n for _, n in order), lambda r: (r.randint(10, 99), r.randint(10, 99)), 90 * 90, "synth_arith"
    )
    rows = []
    for a, b in pairs:
        total = a + b
        wrong = rng.sample([total + d for d in (-11, -10, -2, -1, 1, 2, 10, 11)], 3)
        choices = [str(x) for x in [total, *wrong]]
        rng.shuffle(choices)
        rows.append({"question": f"What is {a} + {b}?", "choices": choices, "label": choices.index(str(total))})
    return _split(rows, order)


def compare_rows(seed: int, sizes: Mapping[str, int]) -> dict[str, list[dict[str, Any]]]:
    """``synth_compare`` rows: which of two different numbers (2-3 digits) is larger."""
    order = _ordered_sizes(sizes)
    rng = random.Random(f"synth_compare:{seed}")

    def draw(r: random.Random) -> tuple[int, int]:
        a, b = r.sample(range(10, 1000), 2)
        return a, b

    pairs = _unique_pairs(rng, sum(n for _, n in order), draw, 990 * 989, "synth_compare")
    rows = [
        {"question": f"Which number is larger, {a} or {b}?", "choices": [str(a), str(b)], "label": 0 if a > b else 1}
        for a, b in pairs
    ]
    return _split(rows, order)


def _synthetic_spec(
    name: str, generate: Callable[[int, Mapping[str, int]], dict[str, list[dict[str, Any]]]], description: str
) -> TaskSpec:
    return TaskSpec(
        name=name,
        domain="synthetic",
        splits={"train": "train", "validation": "validation", "test": "test"},
        eval_split="validation",
        doc_to_text="Question: {{question}}\nAnswer:",
        doc_to_choice="choices",
        doc_to_target="label",
        fields={"question": "str", "choices": "list", "label": "int"},
        label_field="label",
        synthetic=SyntheticSource(generate, dict(DEFAULT_SIZES), seed=0),
        descriptions={"synthetic": description},
        notes="Generated in code; sizes and seed via load_task_docs(synthetic_sizes=..., synthetic_seed=...).",
    )


SYNTHETIC_SPECS = [
    _synthetic_spec("synth_arith", arith_rows, "Two-digit addition, 4 numeric choices (sum and near misses)."),
    _synthetic_spec("synth_compare", compare_rows, "Which of two numbers (10-999) is larger, 2 choices."),
]

for _spec in SYNTHETIC_SPECS:
    register_task(_spec)
