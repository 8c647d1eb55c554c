"""TOFU (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning"): question-answer pairs about 200
fictitious authors (20 each), and the sets its evaluation reads.

Configs (:data:`TOFU_CONFIGS`, the Hugging Face dataset ``locuslab/TOFU``'s names):

* ``full`` (4000 = 200 authors × 20), ``retain90/95/99`` (= ``full[:N]``) and ``forget01/05/10`` (= ``full[N:]``);
* ``forget01/05/10_perturbed`` and ``retain_perturbed`` (= ``full[:400]``, the first 20 authors): each pair plus a
  paraphrased answer and 5 perturbed (wrong) answers, for the truth ratio;
* ``real_authors`` / ``world_facts`` (+ ``_perturbed``: the answer and the 3 other options), for model utility;
* ``holdout01/05/10``: 40/200/400 pairs about further fictitious authors, never in ``full``.

Every item knows its author (:attr:`TofuItem.author`): ``full``'s authors are 0..199 in file order; holdout
authors are numbered from 200. Sources: ``local`` files under the data root (``<root>/tofu/<config>.json``,
in any of the layouts the shared copies use: one JSON array, one array per line, ``prompt``/``response`` keys),
``hub`` (``datasets.load_dataset(hub_path, config)``) or ``auto`` (local when the file exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from forgetlab.data.records import Record, read_json, require
from forgetlab.data.tasks import resolve_data_root

HUB_PATH = "locuslab/TOFU"
AUTHOR_QUESTIONS = 20  # every fictitious author has 20 question-answer pairs
HOLDOUT_AUTHOR_BASE = 200  # holdout authors are numbered after full's 200


@dataclass(frozen=True)
class TofuConfig:
    """One TOFU config: its size, where its rows start in ``full`` (None: not part of ``full``), and its fields."""

    size: int
    offset: int | None
    kind: Literal["qa", "perturbed", "options", "holdout"]


def _configs() -> dict[str, TofuConfig]:
    configs = {"full": TofuConfig(4000, 0, "qa"), "retain_perturbed": TofuConfig(400, 0, "perturbed")}
    for pct in (1, 5, 10):
        n = 40 * pct
        configs[f"retain{100 - pct}"] = TofuConfig(4000 - n, 0, "qa")
        configs[f"forget{pct:02d}"] = TofuConfig(n, 4000 - n, "qa")
        configs[f"forget{pct:02d}_perturbed"] = TofuConfig(n, 4000 - n, "perturbed")
        configs[f"holdout{pct:02d}"] = TofuConfig(n, None, "holdout")
    configs["real_authors"] = TofuConfig(100, None, "options")
    configs["real_authors_perturbed"] = TofuConfig(100, None, "options")
    configs["world_facts"] = TofuConfig(117, None, "options")
    configs["world_facts_perturbed"] = TofuConfig(117, None, "options")
    return configs


#: Every TOFU config by name.
TOFU_CONFIGS: dict[str, TofuConfig] = _configs()
Source = Literal["auto", "local", "hub"]


@dataclass(frozen=True)
class TofuItem:
    """One TOFU question with its answer and, where the config has them, the truth-ratio answers."""

    item_id: str  # "<config>-<row>"
    question: str
    answer: str
    author: int | None = None
    paraphrased_answer: str | None = None
    perturbed_answers: tuple[str, ...] = ()
    paraphrased_question: str | None = None

    def __post_init__(self) -> None:
        if not self.question.strip() or not self.answer.strip():
            raise ValueError(f"TOFU item {self.item_id}: empty question or answer")


def tofu_item(config: str, index: int, record: Record) -> TofuItem:
    """A row of a config as an item (``prompt``/``response`` read as ``question``/``answer``)."""
    row, origin = record
    row = {{"prompt": "question", "response": "answer"}.get(k, k): v for k, v in row.items()}
    spec = TOFU_CONFIGS[config]
    author = None
    if spec.offset is not None:
        author = (spec.offset + index) // AUTHOR_QUESTIONS
    elif spec.kind == "holdout":
        author = HOLDOUT_AUTHOR_BASE + index // AUTHOR_QUESTIONS
    item: dict[str, Any] = {"author": author}
    if "perturbed_answer" in row:
        perturbed = require(row, "perturbed_answer", origin)
        if not isinstance(perturbed, list) or not perturbed:
            raise ValueError(f"{origin}: field 'perturbed_answer' must be a non-empty list of answers")
        item["perturbed_answers"] = tuple(str(p) for p in perturbed)
    for field in ("paraphrased_answer", "paraphrased_question"):
        if field in row:
            item[field] = str(row[field])
    question, answer = (str(require(row, f, origin)) for f in ("question", "answer"))
    return TofuItem(f"{config}-{index}", question, answer, **item)


def tofu_file(root: Path, config: str) -> Path:
    """Where a config's local file lives under the data root."""
    return root / "tofu" / f"{config}.json"


def tofu_input_files(config: str, source: Source = "auto", root: str | Path | None = None) -> list[Path]:
    """The local files loading a config reads (none from the hub): part of a run's identity."""
    path = _local_path(config, source, root)
    return [] if path is None else [path]


def load_tofu(
    config: str, *, source: Source = "auto", root: str | Path | None = None, hub_path: str = HUB_PATH
) -> list[TofuItem]:
    """A TOFU config's items, in the published order; the count must be the published one."""
    if config not in TOFU_CONFIGS:
        raise ValueError(f"unknown TOFU config {config!r}; known: {', '.join(TOFU_CONFIGS)}")
    path = _local_path(config, source, root)
    records = read_json(path) if path is not None else _hub_records(hub_path, config)
    expected = TOFU_CONFIGS[config].size
    if len(records) != expected:
        where = path if path is not None else f"hub {hub_path}/{config}"
        raise ValueError(f"{where}: {len(records)} rows, TOFU's {config} has {expected}")
    return [tofu_item(config, i, record) for i, record in enumerate(records)]


def _local_path(config: str, source: Source, root: str | Path | None) -> Path | None:
    if source == "hub":
        return None
    data_root = resolve_data_root(root, required=source == "local")
    path = tofu_file(data_root, config) if data_root is not None else None
    if source == "local" and not path.is_file():
        raise ValueError(f"TOFU config {config}: local file {path} not found (source: local)")
    return path if path is not None and path.is_file() else None


def _hub_records(hub_path: str, config: str) -> list[Record]:
    import datasets

    rows = datasets.load_dataset(hub_path, config, split="train")
    return [Record(dict(row), f"hub {hub_path}/{config} row {i}") for i, row in enumerate(rows)]
