import json
import shutil
import sqlite3

import pytest

from forgetlab.experiments import build_config
from forgetlab.store import RunLocked, RunStore, StoreError, atomic_write_json, read_jsonl, remove_temporaries

CONFIG = build_config({"experiment": "forget_generalization", "name": "demo", "tasks": ["boolq"]})
FINGERPRINT = "ab" * 32
RECORD = {"config": CONFIG.model_dump(mode="json"), "world_size": 2, "command": "forgetlab run x"}


def test_open_finish_and_find(tmp_path):
    store = RunStore(tmp_path)
    run = store.open(CONFIG, FINGERPRINT, RECORD)
    assert run.id == "demo-abababababab" and run.status == "running"
    resolved = (run.dir / "config.yaml").read_text()
    assert "world_size: 2" in resolved and f"fingerprint: {FINGERPRINT}" in resolved
    run.save_stage("boolq/pretrained", {"metrics": [{"metric": "acc", "value": 0.5}], "examples": [{"doc_id": "a"}]})
    run.save_stage("boolq/finetuned", {"metrics": [{"metric": "acc", "value": 0.7}], "examples": []})
    assert [m["value"] for m in read_jsonl(run.dir / "metrics.jsonl")] == [0.5, 0.7]
    store.finish(run, {"tasks": {}})
    run.release()
    again = store.open(CONFIG, FINGERPRINT, RECORD)
    assert again.finished and again.dir == run.dir
    assert store.find(run.id[:8]).id == run.id
    assert store.find(str(run.dir)).id == run.id
    assert [r["status"] for r in store.list()] == ["finished"]


def test_failed_run_keeps_stages_and_reopens(tmp_path):
    store = RunStore(tmp_path)
    run = store.open(CONFIG, FINGERPRINT, RECORD)
    run.save_stage("boolq/data", {"x": 1})
    store.fail(run, "ValueError: boom")
    run.release()
    assert store.find(run.id).error == "ValueError: boom"
    reopened = store.open(CONFIG, FINGERPRINT, RECORD)
    assert reopened.status == "running" and reopened.stage("boolq/data") == {"x": 1}


def test_a_second_open_of_a_running_run_is_refused_with_its_holder(tmp_path):
    store = RunStore(tmp_path)
    run = store.open(CONFIG, FINGERPRINT, RECORD)
    with pytest.raises(RunLocked, match=r"run demo-abababababab is already running \(pid \d+ on host .+\)"):
        RunStore(tmp_path).open(CONFIG, FINGERPRINT, RECORD)
    assert store.list()[0]["status"] == "running"  # its lock is held: not reconciled away
    run.release()
    assert store.list()[0]["status"] == "interrupted"  # nobody holds it and it did not finish


def test_catalog_follows_the_disk(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.open(CONFIG, FINGERPRINT, RECORD)
    store.finish(run, {"tasks": {}})
    run.release()
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "runs", moved)
    found = RunStore(moved).find(run.id)
    assert found.dir == moved / run.id and found.finished  # paths are relative to the runs directory
    shutil.rmtree(moved / run.id)
    assert RunStore(moved).list()[0]["status"] == "missing"
    assert RunStore(moved).open(CONFIG, FINGERPRINT, RECORD).status == "running"  # a missing run is redone


def test_find_takes_prefixes_literally(tmp_path):
    store = RunStore(tmp_path)
    for name in ("a_b", "axb"):
        config = CONFIG.model_copy(update={"name": name})
        store.open(config, FINGERPRINT, RECORD).release()
    assert store.find("a_b").id == "a_b-abababababab"  # '_' is not a wildcard
    with pytest.raises(KeyError, match="found none"):
        store.find("a%")
    with pytest.raises(KeyError, match="expected one match"):
        store.find("nothing")


def test_reading_never_creates_a_runs_directory(tmp_path):
    with pytest.raises(StoreError, match="not a runs directory"):
        RunStore(tmp_path / "typo", create=False)
    assert not (tmp_path / "typo").exists()


def test_damaged_catalog_and_summary_are_named(tmp_path):
    (tmp_path / "catalog.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"catalog.sqlite: file is not a database; .*move it aside"):
        RunStore(tmp_path)
    store = RunStore(tmp_path / "ok")
    run = store.open(CONFIG, FINGERPRINT, RECORD)
    store.finish(run, {"tasks": {}})
    (run.dir / "summary.json").write_text('{"tasks": ')
    with pytest.raises(StoreError, match=r"summary.json: damaged, not valid JSON"):
        run.summary()


def test_paths_outside_the_run_directory_are_refused(tmp_path):
    run = RunStore(tmp_path).open(CONFIG, FINGERPRINT, RECORD)
    with pytest.raises(ValueError, match="outside the run directory"):
        run.save_stage("../../escape", {})
    assert not (tmp_path.parent / "escape.json").exists()


def test_remove_temporaries_leaves_real_files(tmp_path):
    (tmp_path / "stages" / "t" / "forget-checkpoint.tmp").mkdir(parents=True)
    (tmp_path / "stages" / "t" / "forget-checkpoint.tmp" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "stages" / "t" / "finetuned.safetensors.tmp").write_bytes(b"x")
    (tmp_path / "stages" / "t" / "finetuned.safetensors").write_bytes(b"x")
    (tmp_path / ".summary.json.k3j2.tmp").write_text("{")
    assert remove_temporaries(tmp_path) == 3
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["finetuned.safetensors"]


def test_atomic_json_refuses_nan(tmp_path):
    path = tmp_path / "s.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        atomic_write_json(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_another_runs_results_are_read_only_once_it_finished(tmp_path):
    store = RunStore(tmp_path)
    run = store.open(CONFIG, FINGERPRINT, RECORD)
    run.save_stage("boolq/data", {"x": 1})
    with pytest.raises(StoreError, match=r"run demo-abababababab is running, not finished"):
        store.finished_run(run.id)
    with pytest.raises(StoreError, match=r"run demo-000000000000: not in .*catalog.sqlite"):
        store.finished_run("demo-000000000000")
    with pytest.raises(ValueError, match="not a safe run name"):
        store.finished_run("../elsewhere")
    store.finish(run, {"tasks": {}})
    run.release()
    finished = RunStore(tmp_path, create=False).finished_run(run.id)
    assert finished.dir == run.dir and finished.stage("boolq/data") == {"x": 1}
    (run.dir / "summary.json").unlink()  # a finished run whose results are gone is no longer finished
    with pytest.raises(StoreError, match="is interrupted, not finished"):
        store.finished_run(run.id)


def test_kept_weights_are_located_by_their_stage_key(tmp_path):
    run = RunStore(tmp_path).open(CONFIG, FINGERPRINT, RECORD)
    assert run.weights_path("boolq/finetuned") == run.dir / "stages" / "boolq" / "finetuned.safetensors"
    assert run.weights_path("boolq/finetuned").with_suffix(".json") == run.stage_path("boolq/finetuned")
    with pytest.raises(FileNotFoundError, match=r"run demo-abababababab: no weights kept under 'boolq/finetuned'"):
        run.kept_weights("boolq/finetuned")
    run.weights_path("boolq/finetuned").parent.mkdir(parents=True)
    run.weights_path("boolq/finetuned").write_bytes(b"x")
    assert run.kept_weights("boolq/finetuned") == run.weights_path("boolq/finetuned")
    with pytest.raises(ValueError, match="outside the run directory"):
        run.weights_path("../../escape")


def _write_runs(root: str, writer: int, count: int) -> None:
    """One of many concurrent writers: open and finish ``count`` runs of its own in one runs directory."""
    store = RunStore(root)
    for i in range(count):
        config = CONFIG.model_copy(update={"name": f"w{writer}"})
        run = store.open(config, f"{i:012x}" + "0" * 52, {"config": {}})
        store.finish(run, {"writer": writer, "i": i})
        run.release()


def test_many_concurrent_writers_lose_nothing(tmp_path):
    import multiprocessing

    writers, count = 8, 12
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_write_runs, args=(str(tmp_path), w, count)) for w in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * writers
    rows = RunStore(tmp_path).list()
    assert len(rows) == writers * count and {r["status"] for r in rows} == {"finished"}
    with sqlite3.connect(tmp_path / "catalog.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # no WAL: it breaks on NFS
    for row in rows:
        summary = json.loads((tmp_path / row["id"] / "summary.json").read_text())
        assert row["id"] == f"w{summary['writer']}-{summary['i']:012x}"


def test_stage_seconds_are_each_finished_stages_own_in_order(tmp_path):
    run = RunStore(tmp_path).open(CONFIG, FINGERPRINT, RECORD)
    run.save_stage("boolq/data", {"seconds": 1.5})
    run.save_stage("boolq/finetune", {"seconds": 30.25, "metrics": []})
    run.save_stage("analysis", {"x": 1})  # no seconds recorded: not counted
    assert run.stage_seconds() == {"boolq/data": 1.5, "boolq/finetune": 30.25}
