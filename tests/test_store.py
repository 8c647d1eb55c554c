import json

import pytest

from forgetlab.config import build_config
from forgetlab.store import RunStore, atomic_write_json, read_jsonl

CONFIG = build_config({"experiment": "forget_generalization", "name": "demo", "tasks": ["boolq"]})


def test_open_finish_and_find(tmp_path):
    store = RunStore(tmp_path)
    run = store.open(CONFIG, world_size=2, command="forgetlab run x")
    assert run.id.startswith("demo-") and run.status == "running"
    resolved = (run.dir / "config.yaml").read_text()
    assert "world_size: 2" in resolved and "torch:" in resolved and "seed: 0" in resolved
    run.save_stage("boolq/pretrained", {"metrics": [{"metric": "acc", "value": 0.5}], "examples": [{"doc_id": "a"}]})
    run.save_stage("boolq/finetuned", {"metrics": [{"metric": "acc", "value": 0.7}], "examples": []})
    assert [m["value"] for m in read_jsonl(run.dir / "metrics.jsonl")] == [0.5, 0.7]
    store.finish(run, {"tasks": {}})
    again = store.open(CONFIG)
    assert again.finished and again.dir == run.dir.resolve()
    assert store.find(run.id[:8]).id == run.id
    assert store.find(str(run.dir)).id == run.id
    assert [r["status"] for r in store.list()] == ["finished"]


def test_failed_run_keeps_stages_and_reopens(tmp_path):
    store = RunStore(tmp_path)
    run = store.open(CONFIG)
    run.save_stage("boolq/data", {"x": 1})
    store.fail(run, "boom")
    reopened = store.open(CONFIG)
    assert reopened.status == "running" and reopened.stage("boolq/data") == {"x": 1}


def test_find_errors(tmp_path):
    with pytest.raises(KeyError, match="expected one match"):
        RunStore(tmp_path).find("nothing")


def test_atomic_json_refuses_nan(tmp_path):
    path = tmp_path / "s.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        atomic_write_json(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
