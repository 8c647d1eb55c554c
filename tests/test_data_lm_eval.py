"""Our rendered requests equal lm-evaluation-harness 0.4.13's for the same HF-layout docs.

lm-eval's own task YAML (with its ``!function`` helpers) is loaded, the dataset download is
replaced by ``custom_dataset`` returning our docs, and each doc goes through lm-eval's
``fewshot_context(num_fewshot=0)`` + ``construct_requests`` -- the code path of a real run.
No network is used.
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from forgetlab.data import get_task, load_task_docs, load_task_records, task_names
from forgetlab.data.tasks import Record
from tests.conftest import shared_data_root

datasets = pytest.importorskip("datasets")
lm_eval = pytest.importorskip("lm_eval")
from lm_eval.api.task import ConfigurableTask  # noqa: E402
from lm_eval.tasks._yaml_loader import load_yaml  # noqa: E402

LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"
LOCAL_TASKS = sorted(n for n in task_names() if get_task(n).local)
HUB_ONLY = sorted(n for n in task_names() if not get_task(n).local and not get_task(n).synthetic)


def lm_eval_config(name: str) -> dict[str, Any]:
    spec = get_task(name)
    cfg = load_yaml(LM_EVAL_TASKS / spec.lm_eval_config, resolve_func=True)
    for key in ("tag", "group", "task_list"):
        cfg.pop(key, None)
    return cfg


def lm_eval_requests(name: str, docs_by_split: dict[str, list[dict]]) -> dict[str, list[tuple[list, int]]]:
    """lm-eval's (requests, gold) per doc, for docs given per forgetlab split name."""
    spec = get_task(name)
    cfg = lm_eval_config(name)
    hf = {spec.splits.get(s, s): rows for s, rows in docs_by_split.items()}
    filler = next(iter(hf.values()))
    for key in ("training_split", "validation_split", "test_split"):
        if cfg.get(key) and cfg[key] not in hf:
            hf[cfg[key]] = filler  # lm-eval wants every configured split; unused ones get any rows
    dsd = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in hf.items()})
    cfg["custom_dataset"] = lambda **_: dsd
    task = ConfigurableTask(config=cfg)
    getters = {
        cfg.get("training_split"): task.training_docs,
        cfg.get("validation_split"): task.validation_docs,
        cfg.get("test_split"): task.test_docs,
    }
    out = {}
    for split in docs_by_split:
        out[split] = []
        for doc in getters[spec.splits.get(split, split)]():
            ctx = task.fewshot_context(doc, num_fewshot=0)
            reqs = task.construct_requests(doc, ctx, metadata=(name, 0, 1))
            gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
            choices = task.doc_to_choice(doc)
            gold = choices.index(gold) if isinstance(gold, str) else gold
            out[split].append(([tuple(r.arguments) for r in reqs], gold))
    return out


def sample_indices(n: int, k: int = 4, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    picks = {0, 1, n - 1} | {rng.randrange(n) for _ in range(k)}
    return sorted(i for i in picks if 0 <= i < n)


@lru_cache(maxsize=None)
def local_records(name: str) -> dict[str, list[Record]]:
    return load_task_records(name, source="local", data_root=shared_data_root())


@pytest.mark.parametrize("name", LOCAL_TASKS)
def test_local_docs_render_like_lm_eval(name: str) -> None:
    spec = get_task(name)
    records = local_records(name)
    splits = {s: rows for s, rows in records.items() if s in spec.splits}
    picks = {s: sample_indices(len(rows)) for s, rows in splits.items()}
    ours = {s: [spec.to_mcdoc(splits[s][i].doc, f"{s}-{i}") for i in idx] for s, idx in picks.items()}
    theirs = lm_eval_requests(name, {s: [splits[s][i].doc for i in idx] for s, idx in picks.items()})
    for split in picks:
        assert len(theirs[split]) == len(ours[split])
        for doc, (requests, gold) in zip(ours[split], theirs[split]):
            assert [doc.request(i) for i in range(doc.n_choices)] == requests, f"{name} {doc.doc_id}"
            assert doc.gold == gold, f"{name} {doc.doc_id}"


def test_full_split_matches_lm_eval_for_hellaswag_and_winogrande() -> None:
    """The two tasks with Python preprocessing, over every validation item."""
    for name in ("hellaswag", "winogrande"):
        spec = get_task(name)
        rows = local_records(name)["validation"]
        ours = [spec.to_mcdoc(r.doc, f"validation-{i}") for i, r in enumerate(rows)]
        theirs = lm_eval_requests(name, {"validation": [r.doc for r in rows]})["validation"]
        mismatches = [
            d.doc_id
            for d, (req, gold) in zip(ours, theirs)
            if [d.request(i) for i in range(d.n_choices)] != req or d.gold != gold
        ]
        assert not mismatches, f"{name}: {len(mismatches)} items differ, e.g. {mismatches[:3]}"


HUB_DOCS: dict[str, list[dict[str, Any]]] = {
    "sciq": [
        {
            "question": "What type of organism is commonly used in preparation of foods such as cheese and yogurt?",
            "distractor3": "viruses",
            "distractor1": "protozoa",
            "distractor2": "gymnosperms",
            "correct_answer": "mesophilic organisms",
            "support": "\nMesophiles grow best in moderate temperature, typically between 25°C and 40°C.",
        },
        {
            "question": "What is the least dangerous radioactive decay?",
            "distractor3": "zeta decay",
            "distractor1": "beta decay",
            "distractor2": "gamma decay",
            "correct_answer": "alpha decay",
            "support": "",
        },
    ],
    "openbookqa": [
        {
            "id": "7-980",
            "question_stem": "The sun is responsible for",
            "choices": {
                "text": [
                    "puppies learning new tricks",
                    "children growing up and getting old",
                    "flowers wilting in a vase",
                    "plants sprouting, blooming and wilting",
                ],
                "label": ["A", "B", "C", "D"],
            },
            "answerKey": "D",
        },
        {
            "id": "7-584",
            "question_stem": "When standing miles away from Mount Rushmore",
            "choices": {
                "text": [
                    "the mountains seem very close",
                    "the mountains are boring",
                    "the mountains look the same as from up close",
                    "the mountains seem smaller than in photographs",
                ],
                "label": ["A", "B", "C", "D"],
            },
            "answerKey": "D",
        },
    ],
    "mnli": [
        {
            "premise": "Conceptually cream skimming has two basic dimensions - product and geography.",
            "hypothesis": "Product and geography are what make cream skimming work. ",
            "label": 1,
            "idx": 0,
        },
        {
            "premise": "you know during the season and i guess at at your level uh you lose them",
            "hypothesis": "You lose the things to the following level if the people recall",
            "label": 0,
            "idx": 1,
        },
    ],
    "qqp": [
        {
            "question1": "How is the life of a math student? Could you describe your own experiences?",
            "question2": "Which level of prepration is enough for the exam jlpt5?",
            "label": 0,
            "idx": 0,
        },
        {
            "question1": "How do I control my horny emotions?",
            "question2": "How do you control your horniness?",
            "label": 1,
            "idx": 1,
        },
    ],
    "siqa": [
        {
            "context": "Cameron decided to have a barbecue and gathered her friends together.",
            "question": "How would Others feel as a result?",
            "answerA": "like attending",
            "answerB": "like staying home",
            "answerC": "a good friend to have",
            "label": "1",
        },
        {
            "context": "Tracy didn't go home that evening and resisted Riley's attacks.",
            "question": "What does Tracy need to do before this?",
            "answerA": "make a new plan",
            "answerB": "Go home and see Riley",
            "answerC": "Find somewhere to go",
            "label": "3",
        },
    ],
    "mathqa": [
        {
            "Problem": "the banker ' s gain of a certain sum due 3 years hence at 10 % per annum is rs . 36 . what is "
            "the present worth ?",
            "Rationale": '"explanation : t = 3 years r = 10 %"',
            "options": "a ) rs . 400 , b ) rs . 300 , c ) rs . 500 , d ) rs . 350 , e ) none of these",
            "correct": "a",
            "annotated_formula": "divide(36, 3)",
            "linear_formula": "divide(n2,n0)|",
            "category": "gain",
        },
        {
            "Problem": "average age of students of an adult school is 40 years .",
            "Rationale": '"x"',
            "options": "a ) 1200 , b ) 1500 , c ) 1800 , d ) 2400 , e ) none of these",
            "correct": "d",
            "annotated_formula": "x",
            "linear_formula": "x|",
            "category": "general",
        },
    ],
}


def test_every_hub_only_task_has_sample_docs() -> None:
    assert sorted(HUB_DOCS) == HUB_ONLY


@pytest.mark.parametrize("name", sorted(HUB_DOCS))
def test_hub_only_tasks_render_like_lm_eval(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = get_task(name)
    rows = HUB_DOCS[name]
    fake = datasets.DatasetDict({hf: datasets.Dataset.from_list(rows) for hf in spec.splits.values()})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    ours = load_task_docs(name, source="hub")
    theirs = lm_eval_requests(name, {spec.eval_split: rows})[spec.eval_split]
    for doc, (requests, gold) in zip(ours[spec.eval_split], theirs):
        assert [doc.request(i) for i in range(doc.n_choices)] == requests
        assert doc.gold == gold


@pytest.mark.parametrize("name", LOCAL_TASKS + HUB_ONLY)
def test_spec_matches_lm_eval_config(name: str) -> None:
    """Dataset path/name, splits, eval split and target delimiter are lm-eval's."""
    spec = get_task(name)
    cfg = lm_eval_config(name)
    assert cfg["task"] == spec.lm_eval_task
    assert cfg["output_type"] == "multiple_choice"
    assert cfg["dataset_path"] == spec.dataset_path
    assert cfg.get("dataset_name") == spec.dataset_name
    assert cfg.get("target_delimiter", " ") == spec.target_delimiter
    lm_splits = {cfg.get(k) for k in ("training_split", "validation_split", "test_split")} - {None}
    assert set(spec.splits.values()) == lm_splits
    eval_hf = cfg.get("test_split") or cfg["validation_split"]
    assert spec.splits[spec.eval_split] == eval_hf
    for key in ("doc_to_text", "doc_to_choice", "doc_to_target"):
        theirs, ours = cfg[key], getattr(spec, key)
        if not callable(theirs):
            assert ours == theirs, f"{name}.{key}"
