"""TOFU loading: the published counts and structure on the shared files, every file layout, the hub path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from forgetlab.data.tofu import TOFU_CONFIGS, load_tofu, tofu_input_files

PUBLISHED_SIZES = {
    "full": 4000, "retain90": 3600, "retain95": 3800, "retain99": 3960, "forget01": 40, "forget05": 200, "forget10": 400,
    "forget01_perturbed": 40, "forget05_perturbed": 200, "forget10_perturbed": 400, "retain_perturbed": 400,
    "holdout01": 40, "holdout05": 200, "holdout10": 400, "real_authors": 100, "real_authors_perturbed": 100,
    "world_facts": 117, "world_facts_perturbed": 117,
}


def pairs(items: list[Any]) -> list[tuple[str, str]]:
    return [(i.question, i.answer) for i in items]


def test_every_config_has_its_published_count(shared_data: Path) -> None:
    assert {name: spec.size for name, spec in TOFU_CONFIGS.items()} == PUBLISHED_SIZES
    for name, size in PUBLISHED_SIZES.items():
        assert len(load_tofu(name, source="local", root=shared_data)) == size, name


@pytest.mark.parametrize("pct", ["01", "05", "10"])
def test_forget_and_retain_partition_full(shared_data: Path, pct: str) -> None:
    full = pairs(load_tofu("full", root=shared_data))
    forget = load_tofu(f"forget{pct}", root=shared_data)
    retain = load_tofu(f"retain{100 - int(pct)}", root=shared_data)
    assert pairs(retain) + pairs(forget) == full  # retain = full[:N], forget = full[N:], nothing else
    assert not {i.author for i in forget} & {i.author for i in retain}
    assert len({i.author for i in forget}) == int(pct) * 2  # 1 % of 200 authors = 2
    perturbed = load_tofu(f"forget{pct}_perturbed", root=shared_data)
    assert pairs(perturbed) == pairs(forget)
    assert [i.author for i in perturbed] == [i.author for i in forget]
    assert all(len(i.perturbed_answers) == 5 and i.paraphrased_answer for i in perturbed)


def test_authors_and_nested_sets(shared_data: Path) -> None:
    full = load_tofu("full", root=shared_data)
    assert [i.author for i in full] == [k // 20 for k in range(4000)]
    assert set(pairs(load_tofu("forget01", root=shared_data))) < set(pairs(load_tofu("forget05", root=shared_data)))
    retain_perturbed = load_tofu("retain_perturbed", root=shared_data)
    assert pairs(retain_perturbed) == pairs(full[:400])
    holdout = load_tofu("holdout10", root=shared_data)
    assert {i.author for i in holdout} == set(range(200, 220))
    assert not set(pairs(holdout)) & set(pairs(full))
    options = load_tofu("world_facts_perturbed", root=shared_data)
    assert all(len(i.perturbed_answers) == 3 and i.author is None for i in options)


def test_layouts_array_per_line_and_renamed_keys(tmp_path: Path) -> None:
    folder = tmp_path / "tofu"
    folder.mkdir()
    rows = [{"question": f"Q{i}?", "answer": f"A{i}."} for i in range(40)]
    (folder / "holdout01.json").write_text("\n".join(json.dumps(rows[k : k + 15]) for k in range(0, 40, 15)))
    assert pairs(load_tofu("holdout01", root=tmp_path)) == [(r["question"], r["answer"]) for r in rows]
    renamed = [{"prompt": r["question"], "response": r["answer"]} for r in rows]
    (folder / "forget01.json").write_text(json.dumps(renamed, indent=2))
    items = load_tofu("forget01", source="local", root=tmp_path)
    assert pairs(items) == pairs(load_tofu("holdout01", root=tmp_path))
    assert items[0].item_id == "forget01-0" and items[0].author == 198 and items[39].author == 199
    assert tofu_input_files("forget01", root=tmp_path) == [folder / "forget01.json"]


def test_bad_files_name_the_row_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "tofu"
    folder.mkdir()
    (folder / "forget01.json").write_text(json.dumps([{"question": "Q?", "answer": "A."}] * 39))
    with pytest.raises(ValueError, match=r"forget01.json: 39 rows, TOFU's forget01 has 40"):
        load_tofu("forget01", root=tmp_path)
    (folder / "forget01.json").write_text(json.dumps([{"question": "Q?", "answer": "A."}] * 39 + [{"question": "Q?"}]))
    with pytest.raises(ValueError, match=r"forget01.json item 39: missing field 'answer'"):
        load_tofu("forget01", root=tmp_path)
    with pytest.raises(ValueError, match="local file .*forget05.json not found"):
        load_tofu("forget05", source="local", root=tmp_path)
    with pytest.raises(ValueError, match="unknown TOFU config 'forget02'"):
        load_tofu("forget02", root=tmp_path)


def test_hub_source_reads_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import datasets

    calls = []
    rows = [{"question": "Who?", "answer": "Her.", "perturbed_answer": ["Him.", "Them.", "It."]}] * 100

    def fake(path: str, name: str, split: str) -> Any:
        calls.append((path, name, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    items = load_tofu("real_authors_perturbed", source="hub", hub_path="mirror/TOFU")
    assert calls == [("mirror/TOFU", "real_authors_perturbed", "train")]
    assert items[0].perturbed_answers == ("Him.", "Them.", "It.")
    assert tofu_input_files("real_authors_perturbed", source="hub") == []
    # auto: the hub when the local file is missing
    assert len(load_tofu("real_authors_perturbed", root=tmp_path)) == 100 and len(calls) == 2
