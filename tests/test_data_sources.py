"""The files, hub, synthetic and auto sources, and the errors bad input raises. No network, no shared data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from forgetlab.data import (
    TASKS,
    get_task,
    load_task_docs,
    load_task_records,
    task_names,
)
from forgetlab.data.tasks import resolve_data_root

BOOLQ_ROWS = [
    {"question": "is the sky blue", "passage": "Sky -- The sky is blue.", "idx": 0, "label": 1},
    {"question": "is grass red", "passage": "Grass -- Grass is green.", "idx": 1, "label": 0},
]
BOOLQ_PROMPT = "Sky -- The sky is blue.\nQuestion: is the sky blue?\nAnswer:"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_builtin_registry_lists_all_tasks() -> None:
    wanted = {
        "boolq",
        "piqa",
        "sciq",
        "arc_easy",
        "arc_challenge",
        "rte",
        "qnli",
        "cb",
        "wnli",
        "wic",
        "cola",
        "hellaswag",
        "winogrande",
        "openbookqa",
        "copa",
        "mnli",
        "mrpc",
        "qqp",
        "sst2",
        "siqa",
        "logiqa",
        "mathqa",
        "commonsense_qa",
        "synth_arith",
        "synth_compare",
    }
    assert wanted <= set(task_names())
    assert TASKS.get("boolq") is get_task("boolq")
    assert {get_task(n).domain for n in wanted} >= {
        "entailment",
        "acceptability",
        "commonsense",
        "science_qa",
        "reading_comprehension",
        "paraphrase",
        "sentiment",
        "logic",
        "math",
        "synthetic",
    }


def test_files_source_jsonl(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", BOOLQ_ROWS)
    val = write_jsonl(tmp_path / "val.jsonl", BOOLQ_ROWS[::-1])
    docs = load_task_docs("boolq", source="files", files={"train": str(train), "validation": val})
    assert list(docs) == ["train", "validation"]
    first = docs["train"][0]
    assert first.doc_id == "train-0" and first.gold == 1
    assert first.request(1) == (BOOLQ_PROMPT, " yes")
    assert docs["validation"][1].request(0) == (BOOLQ_PROMPT, " no")


def test_files_source_csv_tsv_json_parquet_agree(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "id": "q1",
            "question": "Which is a metal?",
            "answerKey": "B",
            "choices": {"text": ["wood", "iron", "glass"], "label": ["A", "B", "C"]},
        }
    ]
    write_jsonl(tmp_path / "a.jsonl", rows)
    (tmp_path / "a.json").write_text(json.dumps(rows), encoding="utf-8")
    with open(tmp_path / "a.csv", "w", encoding="utf-8") as fh:
        fh.write(
            'id,question,answerKey,choices\nq1,Which is a metal?,B,"{""text"": [""wood"", ""iron"", ""glass""], '
            '""label"": [""A"", ""B"", ""C""]}"\n'
        )
    quoted_choices = '"' + json.dumps(rows[0]["choices"]).replace('"', '""') + '"'
    (tmp_path / "a.tsv").write_text(
        f"id\tquestion\tanswerKey\tchoices\nq1\tWhich is a metal?\tB\t{quoted_choices}\n", encoding="utf-8"
    )
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    results = [
        load_task_docs("arc_easy", source="files", files={"test": tmp_path / f"a.{ext}"})["test"][0]
        for ext in ("jsonl", "json", "csv", "tsv", "parquet")
    ]
    assert all(r == results[0] for r in results)
    assert results[0].request(1) == ("Question: Which is a metal?\nAnswer:", " iron") and results[0].gold == 1


def test_files_source_coerces_csv_labels(tmp_path: Path) -> None:
    (tmp_path / "v.csv").write_text(
        'passage,question,label\n"Sky -- The sky is blue.",is the sky blue,1\n', encoding="utf-8"
    )
    doc = load_task_docs("boolq", source="files", files={"validation": tmp_path / "v.csv"})["validation"][0]
    assert doc.gold == 1 and doc.contexts[0] == BOOLQ_PROMPT


def test_missing_field_error_names_file_line_and_field(tmp_path: Path) -> None:
    rows = [BOOLQ_ROWS[0], {"question": "is grass red", "idx": 1, "label": 0}]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ValueError) as err:
        load_task_docs("boolq", source="files", files={"validation": path})
    msg = str(err.value)
    assert str(path) in msg and "line 2" in msg and "'passage'" in msg and "missing field" in msg


def test_out_of_range_label_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [BOOLQ_ROWS[0], BOOLQ_ROWS[1], {**BOOLQ_ROWS[0], "label": 5}])
    with pytest.raises(ValueError) as err:
        load_task_docs("boolq", source="files", files={"validation": path})
    msg = str(err.value)
    assert str(path) in msg and "line 3" in msg and "'label'" in msg and "out of range" in msg


def test_unknown_label_and_wrong_type_errors(tmp_path: Path) -> None:
    row = {"question": "q?", "choices": {"label": list("ABCDE"), "text": list("vwxyz")}, "answerKey": "Z"}
    path = write_jsonl(tmp_path / "csqa.jsonl", [row])
    with pytest.raises(ValueError, match=r"csqa\.jsonl line 1: .*'answerKey'.*unknown label 'Z'"):
        load_task_docs("commonsense_qa", source="files", files={"validation": path})
    path = write_jsonl(tmp_path / "b.jsonl", [{**BOOLQ_ROWS[0], "label": "maybe"}])
    with pytest.raises(ValueError, match=r"b\.jsonl line 1: task boolq: field 'label': expected an integer"):
        load_task_docs("boolq", source="files", files={"validation": path})
    path = write_jsonl(
        tmp_path / "arc.jsonl",
        [{"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"}],
    )
    with pytest.raises(ValueError, match=r"arc\.jsonl line 1: .*'answerKey'"):
        load_task_docs("arc_easy", source="files", files={"test": path})


def test_invalid_json_and_unsupported_files(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(BOOLQ_ROWS[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.jsonl line 2: invalid JSON"):
        load_task_docs("boolq", source="files", files={"validation": path})
    with pytest.raises(ValueError, match="unsupported file type"):
        (tmp_path / "x.txt").write_text("hi")
        load_task_docs("boolq", source="files", files={"validation": tmp_path / "x.txt"})
    with pytest.raises(ValueError, match="data file not found"):
        load_task_docs("boolq", source="files", files={"validation": tmp_path / "nope.jsonl"})
    with pytest.raises(ValueError, match="unknown split names"):
        load_task_docs("boolq", source="files", files={"dev": tmp_path / "x.txt"})
    with pytest.raises(ValueError, match="needs files="):
        load_task_docs("boolq", source="files")


def test_unknown_task_and_source() -> None:
    with pytest.raises(KeyError) as err:
        load_task_docs("no_such_task")
    assert "no_such_task" in str(err.value) and "boolq" in str(err.value) and "winogrande" in str(err.value)
    with pytest.raises(ValueError, match="unknown source 'ftp'.*auto, local, hub, files, synthetic"):
        load_task_docs("boolq", source="ftp")
    with pytest.raises(ValueError, match="not synthetic"):
        load_task_docs("boolq", source="synthetic")
    with pytest.raises(ValueError, match="no local data layout"):
        load_task_docs("synth_arith", source="local", data_root=".")


def write_rte(root: Path, dev_rows: list[str]) -> None:
    (root / "rte").mkdir(parents=True)
    header = "index\tsentence1\tsentence2\tlabel\n"
    (root / "rte" / "train.tsv").write_text(header + "0\tA cat sat.\tA cat exists.\tentailment\n", encoding="utf-8")
    (root / "rte" / "dev.tsv").write_text(header + "".join(dev_rows), encoding="utf-8")


def test_local_layout_errors_name_file_line_field(tmp_path: Path) -> None:
    write_rte(tmp_path, ["0\tA dog ran.\tA dog moved.\tentailment\n", "1\tx.\ty.\tmaybe\n"])
    with pytest.raises(ValueError) as err:
        load_task_docs("rte", source="local", data_root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "rte" / "dev.tsv") in msg and "line 3" in msg and "'label'" in msg and "'maybe'" in msg
    (tmp_path / "piqa").mkdir()
    write_jsonl(tmp_path / "piqa" / "valid.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b"}] * 2)
    (tmp_path / "piqa" / "valid-labels.lst").write_text("0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="1 labels but .*valid.jsonl has 2 rows"):
        load_task_docs("piqa", source="local", data_root=tmp_path)
    with pytest.raises(ValueError, match="local data files missing: .*boolq"):
        load_task_docs("boolq", source="local", data_root=tmp_path)


def test_local_source_from_temp_root(tmp_path: Path) -> None:
    write_rte(tmp_path, ["0\tA dog ran.\tA dog moved.\tnot_entailment\n"])
    docs = load_task_docs("rte", source="local", data_root=tmp_path)
    assert docs["validation"][0].request(1) == ("A dog ran.\nQuestion: A dog moved. True or False?\nAnswer:", " False")
    assert docs["validation"][0].gold == 1


def test_data_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETLAB_DATA", str(tmp_path))
    assert resolve_data_root() == tmp_path
    monkeypatch.setenv("FORGETLAB_DATA", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="FORGETLAB_DATA"):
        resolve_data_root()
    assert resolve_data_root(required=False) is None
    monkeypatch.delenv("FORGETLAB_DATA")
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    with pytest.raises(ValueError, match="shared/data"):
        resolve_data_root()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert resolve_data_root() == Path.cwd().parent / "shared" / "data"


class FakeHub:
    """Stands in for ``datasets.load_dataset``: returns an in-memory DatasetDict and records calls."""

    def __init__(self, splits: dict[str, list[dict[str, Any]]]) -> None:
        import datasets

        self.data = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(args + tuple(sorted(kwargs.items())))
        return self.data


def test_hub_source_uses_lm_eval_dataset_and_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    fake = FakeHub({"train": BOOLQ_ROWS, "validation": BOOLQ_ROWS[:1], "test": [{**BOOLQ_ROWS[0], "label": -1}]})
    monkeypatch.setattr(datasets, "load_dataset", fake)
    docs = load_task_docs("boolq", source="hub")
    assert fake.calls == [("aps/super_glue", "boolq")]
    assert {s: len(v) for s, v in docs.items()} == {"train": 2, "validation": 1}  # unlabelled test not loaded
    assert docs["validation"][0].request(1) == (BOOLQ_PROMPT, " yes")
    load_task_docs("boolq", source="hub", hub_path="my/boolq-mirror")
    assert fake.calls[-1] == ("my/boolq-mirror", "boolq")


def test_hub_source_maps_split_names_and_reports_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    mnli = [{"premise": "A man sleeps.", "hypothesis": "A man is awake", "label": 2, "idx": 0}]
    monkeypatch.setattr(datasets, "load_dataset", FakeHub({"train": mnli, "validation_matched": mnli}))
    docs = load_task_docs("mnli", source="hub")
    assert set(docs) == {"train", "validation"}
    assert docs["validation"][0].request(2) == (
        "A man sleeps.\nQuestion: A man is awake. True, False or Neither?\nAnswer:",
        " False",
    )
    monkeypatch.setattr(datasets, "load_dataset", FakeHub({"train": mnli}))
    with pytest.raises(ValueError, match="has no split 'validation_matched'"):
        load_task_docs("mnli", source="hub")
    monkeypatch.setattr(
        datasets, "load_dataset", FakeHub({"train": [{**mnli[0], "label": 7}], "validation_matched": mnli})
    )
    with pytest.raises(ValueError, match=r"hub nyu-mll/glue/mnli split train row 0: .*'label'.*out of range"):
        load_task_docs("mnli", source="hub")


def test_auto_source_falls_back_to_synthetic_then_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setenv("FORGETLAB_DATA", str(tmp_path))  # an empty data root: no local files
    fake = FakeHub({"train": BOOLQ_ROWS, "validation": BOOLQ_ROWS})
    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert len(load_task_docs("boolq")["validation"]) == 2 and fake.calls == [("aps/super_glue", "boolq")]
    monkeypatch.setenv("FORGETLAB_DATA", str(tmp_path / "missing"))
    assert len(load_task_docs("boolq")["train"]) == 2
    synth = load_task_docs("synth_arith", synthetic_sizes={"train": 20, "validation": 5})
    assert {s: len(v) for s, v in synth.items()} == {"train": 20, "validation": 5}
    assert len(fake.calls) == 2


def test_synthetic_tasks_are_correct_seeded_and_unique() -> None:
    arith = load_task_docs("synth_arith", source="synthetic")
    assert {s: len(v) for s, v in arith.items()} == {"train": 2000, "validation": 500}
    questions = [d.contexts[0] for docs in arith.values() for d in docs]
    assert len(set(questions)) == len(questions)
    for doc in arith["train"][:200]:
        a, b = map(int, doc.contexts[0].removeprefix("Question: What is ").removesuffix("?\nAnswer:").split(" + "))
        assert doc.continuations[doc.gold] == f" {a + b}" and doc.n_choices == 4
        assert len(set(doc.continuations)) == 4
    compare = load_task_docs("synth_compare", source="synthetic", synthetic_sizes={"train": 300, "test": 50})
    assert {s: len(v) for s, v in compare.items()} == {"train": 300, "test": 50}
    for doc in compare["train"]:
        numbers = [int(c) for c in doc.continuations]
        assert numbers[doc.gold] == max(numbers) and numbers[0] != numbers[1]
    assert 0.3 < sum(d.gold for d in compare["train"]) / 300 < 0.7
    again = load_task_docs("synth_compare", synthetic_sizes={"train": 300, "test": 50})
    assert again == compare
    other = load_task_docs("synth_compare", synthetic_sizes={"train": 300, "test": 50}, synthetic_seed=1)
    assert other["train"] != compare["train"]
    with pytest.raises(ValueError, match="at most"):
        load_task_docs("synth_arith", synthetic_sizes={"train": 5000})
    with pytest.raises(ValueError, match="unknown synthetic split"):
        load_task_docs("synth_arith", synthetic_sizes={"dev": 5})


def test_synthetic_rows_work_through_files_source(tmp_path: Path) -> None:
    rows = load_task_records("synth_arith", synthetic_sizes={"validation": 3})["validation"]
    path = write_jsonl(tmp_path / "v.jsonl", [r.doc for r in rows])
    from_files = load_task_docs("synth_arith", source="files", files={"validation": path})["validation"]
    assert from_files == load_task_docs("synth_arith", synthetic_sizes={"validation": 3})["validation"]
