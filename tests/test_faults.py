"""Fault injection: stale inputs, concurrent processes, a full disk, kills and signals, crafted names.

Each test stands for a failure a user met: it must give a new run, a refusal, a clean failure record
or an identical resumed result — never the old answer, corrupted files or a catalog that lies.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import forgetlab.experiments.base as base
import forgetlab.train as train
from forgetlab.cli import EXIT_LOCKED, app
from forgetlab.config import ConfigError
from forgetlab.experiments import build_config
from forgetlab.experiments import EXPERIMENTS, run_experiment
from forgetlab.models import load_model
from forgetlab.store import RunStore, StoreError
from tests.conftest import STUDY_A_RAW

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")

PIQA_ROWS = [{"goal": f"To do thing {i}", "sol1": f"use tool {i}", "sol2": f"use other {i + 1}", "label": i % 2} for i in range(60)]


def _piqa_config(tmp: Path, rows: list[dict], **changes) -> dict:
    path = tmp / "piqa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    held_out = tmp / "piqa_validation.jsonl"
    held_out.write_text("".join(json.dumps(dict(r, goal=f"To judge case {i}")) + "\n" for i, r in enumerate(PIQA_ROWS[:20])))
    task = {"name": "piqa", "source": "files", "files": {"train": str(path), "validation": str(held_out)}}
    return {**STUDY_A_RAW, "tasks": [task], "data": {"finetune_size": 8, "forget_size": 8, "validation_size": 4, "test_size": 8}, **changes}


def _temporaries(root: Path) -> list[Path]:
    return list(root.rglob("*.tmp"))


# ------------------------------------------------------------------ 1. stale inputs


def test_edited_data_file_makes_a_new_run(tmp_path):
    config = build_config(_piqa_config(tmp_path, PIQA_ROWS))
    first = run_experiment(config, tmp_path / "runs")
    assert run_experiment(config, tmp_path / "runs").id == first.id  # unchanged input: the finished run
    edited = [dict(r, sol1=r["sol1"] + " carefully") for r in PIQA_ROWS]
    (tmp_path / "piqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edited))
    second = run_experiment(config, tmp_path / "runs")
    assert second.id != first.id and second.finished
    finetune_items = second.stage("piqa/data")["finetune"]
    assert all(any(c.endswith("carefully") for c in doc["continuations"]) for doc in finetune_items)
    recorded = yaml.safe_load((second.dir / "config.yaml").read_text())
    assert recorded["inputs"][0]["path"].endswith("piqa.jsonl") and len(recorded["inputs"][0]["sha256"]) == 64


def test_fixing_the_data_of_a_failed_run_is_not_ignored(tmp_path):
    """The data stage of a failed run is never reused for different data."""
    long_rows = [dict(r, goal=r["goal"] + " and more" * 60) if i < 30 else r for i, r in enumerate(PIQA_ROWS)]
    raw = _piqa_config(tmp_path, long_rows, model={"name": "tiny-llama", "tiny": {"max_position_embeddings": 96}})
    with pytest.raises(ValueError, match="over the limit of 97"):
        run_experiment(build_config(raw), tmp_path / "runs")
    (tmp_path / "piqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in PIQA_ROWS))
    fixed = run_experiment(build_config(raw), tmp_path / "runs")
    assert fixed.finished
    statuses = {row["id"]: row["status"] for row in RunStore(tmp_path / "runs").list()}
    assert sorted(statuses.values()) == ["failed", "finished"]


def test_identity_covers_inputs_models_results_version_and_world_size(tmp_path, monkeypatch):
    experiment = EXPERIMENTS.get("forget_generalization")
    config = build_config(_piqa_config(tmp_path, PIQA_ROWS))
    fingerprint = base.run_identity(config, experiment, 1).fingerprint
    assert base.run_identity(config, experiment, 1).fingerprint == fingerprint
    assert base.run_identity(config, experiment, 2).fingerprint != fingerprint  # batches are per process
    monkeypatch.setattr(base, "code_version", lambda: {"git_commit": "f" * 40})
    assert base.run_identity(config, experiment, 1).fingerprint == fingerprint  # the commit is recorded, not hashed
    monkeypatch.setattr(base, "RESULTS_VERSION", base.RESULTS_VERSION + 1)
    assert base.run_identity(config, experiment, 1).fingerprint != fingerprint
    monkeypatch.undo()

    model, tokenizer = load_model("tiny-llama")
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    local = build_config(_piqa_config(tmp_path, PIQA_ROWS, model={"name": str(tmp_path / "model")}))
    before = base.run_identity(local, experiment, 1).fingerprint
    config_json = tmp_path / "model" / "config.json"
    config_json.write_text(config_json.read_text().replace('"rms_norm_eps": 1e-06', '"rms_norm_eps": 1e-05'))
    assert base.run_identity(local, experiment, 1).fingerprint != before


# ------------------------------------------------------------------ 2. concurrent processes


def _cli(recipe: Path, runs: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "forgetlab.cli", "run", str(recipe), "--runs-dir", str(runs), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _long_recipe(tmp: Path, **forget) -> Path:
    raw = {**STUDY_A_RAW, "forget": {**STUDY_A_RAW["forget"], "epochs": 300, "eval_every": 50, "checkpoint_every": 0, **forget}}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _wait_for(predicate, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _running(runs: Path) -> Path | None:
    locks = [p for p in runs.glob("*/.lock") if p.read_text().startswith("pid ")]
    return locks[0].parent if locks else None


@pytest.mark.slow
def test_a_second_process_refuses_and_a_waiting_one_finds_the_result(tmp_path):
    recipe, runs = _long_recipe(tmp_path), tmp_path / "runs"
    first = _cli(recipe, runs)
    _wait_for(lambda: _running(runs) is not None)
    second = _cli(recipe, runs)
    out, err = second.communicate(timeout=300)
    assert second.returncode == EXIT_LOCKED, err
    assert first.poll() is None, "the first run ended before the second asked; lengthen the recipe"
    assert f"is already running (pid {first.pid} on host" in " ".join(err.split())
    waiting = _cli(recipe, runs, "--wait")
    first_out, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err
    summary = _running_dir(first_out) / "summary.json"
    mtime = summary.stat().st_mtime_ns
    waited_out, waited_err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, waited_err
    assert waited_out.strip().splitlines()[-1] == first_out.strip().splitlines()[-1]
    assert summary.stat().st_mtime_ns == mtime  # found, not redone
    assert [r["status"] for r in RunStore(runs).list()] == ["finished"]
    assert not _temporaries(runs)


def _running_dir(stdout: str) -> Path:
    return Path(stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ 3. a full disk


def _no_space_in_checkpoints(monkeypatch) -> None:
    def half_write_then_fail(state, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\0" * 1024)
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(train, "save_file", half_write_then_fail)


def test_full_disk_is_recorded_as_failed_and_leaves_no_temporaries(tmp_path, monkeypatch):
    _no_space_in_checkpoints(monkeypatch)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(STUDY_A_RAW))
    result = runner.invoke(app, ["run", str(recipe), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "finetuned.safetensors.tmp: No space left on device" in result.output
    (row,) = RunStore(tmp_path / "runs").list()
    assert row["status"] == "failed"
    assert not _temporaries(tmp_path / "runs")


def test_full_disk_that_also_blocks_the_catalog_still_reports_the_first_error(tmp_path, monkeypatch, capsys):
    _no_space_in_checkpoints(monkeypatch)
    real = RunStore._set_status

    def catalog_full(self, run_id, status, summary):
        if status == "failed":
            raise StoreError(f"{self.catalog}: database or disk is full")
        return real(self, run_id, status, summary)

    monkeypatch.setattr(RunStore, "_set_status", catalog_full)
    with pytest.raises(OSError, match="No space left on device"):
        run_experiment(build_config(STUDY_A_RAW), tmp_path / "runs")
    assert "could not mark run tiny-" in capsys.readouterr().err
    assert not _temporaries(tmp_path / "runs")
    monkeypatch.undo()
    (row,) = RunStore(tmp_path / "runs").list()
    assert row["status"] == "interrupted"  # left "running" by the failed write; nobody holds its lock


# ------------------------------------------------------------------ 4. kills and signals


@pytest.mark.slow
def test_sigterm_checkpoints_marks_interrupted_and_resumes_identically(tmp_path):
    recipe = _long_recipe(tmp_path)
    reference = run_experiment(build_config(yaml.safe_load(recipe.read_text())), tmp_path / "reference")
    runs = tmp_path / "runs"
    process = _cli(recipe, runs)
    _wait_for(lambda: bool(list(runs.glob("*/stages/synth_compare/finetuned.json"))))
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "interrupted (SIGTERM)" in err
    (row,) = RunStore(runs).list()
    assert row["status"] == "interrupted"
    (checkpoint,) = runs.glob("*/stages/synth_compare/forget-checkpoint/state.json")
    assert 0 < json.loads(checkpoint.read_text())["steps"] < 600
    resumed = runner.invoke(app, ["run", str(recipe), "--runs-dir", str(runs)])
    assert resumed.exit_code == 0, resumed.output
    run_dir = _running_dir(resumed.output)
    assert json.loads((run_dir / "summary.json").read_text())["tasks"] == reference.summary()["tasks"]
    assert (run_dir / "metrics.jsonl").read_bytes() == (reference.dir / "metrics.jsonl").read_bytes()


@pytest.mark.slow
def test_sigkill_leaves_a_run_the_catalog_calls_interrupted(tmp_path):
    recipe, runs = _long_recipe(tmp_path), tmp_path / "runs"
    process = _cli(recipe, runs)
    _wait_for(lambda: bool(list(runs.glob("*/stages/order.json"))))  # working: in the catalog, a stage saved
    process.kill()
    process.wait(timeout=60)
    listed = runner.invoke(app, ["list", "--runs-dir", str(runs)])
    assert "interrupted" in listed.output and "running" not in listed.output


# ------------------------------------------------------------------ 5. crafted names


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "a/b", ".hidden", "..", "x" * 101, "a b"])
def test_crafted_run_names_are_refused(name):
    with pytest.raises(ConfigError, match="is not a safe run name"):
        build_config({**STUDY_A_RAW, "name": name})


def test_crafted_source_run_of_a_cell_is_refused():
    raw = {"experiment": "cross_task_cell", "forget_run": "study-0123456789ab", "eval_run": "../../elsewhere",
           "forget_task": "synth_compare", "eval_task": "synth_arith"}
    with pytest.raises(ConfigError, match="eval_run '../../elsewhere' is not a safe run name"):
        build_config(raw)
