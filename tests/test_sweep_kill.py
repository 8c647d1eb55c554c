"""kill -9 of the sweep driver or of a worker: no finished cell lost, none run twice, and a killed worker's cell
started again resumes from its checkpoint to the same numbers as running it alone."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from forgetlab.experiments import build_config, run_experiment
from forgetlab.store import RunStore
from forgetlab.sweep import prepare_sweep
from tests.conftest import unlearn_raw_config

pytestmark = pytest.mark.slow


def sweep_file(tmp_path: Path, steps: int, seeds: list[int]) -> Path:
    path = tmp_path / "sweep.yaml"
    base = unlearn_raw_config(max_steps=steps, checkpoint_every=50, eval_every=steps)
    path.write_text(yaml.safe_dump({"name": "killed", "base": base, "grid": {"seed": seeds}, "workers": 1}))
    return path


def start_driver(path: Path, runs: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "forgetlab.cli", "sweep", str(path), "--runs-dir", str(runs)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, timeout: float = 240.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def finished(runs: Path, key: str) -> bool:
    return (runs / key / "summary.json").is_file()


def lock_holder_pid(runs: Path, key: str) -> int | None:
    try:
        text = (runs / key / ".lock").read_text()
    except OSError:
        return None
    return int(text.split()[1]) if text.startswith("pid ") else None


def test_killing_the_driver_loses_no_finished_cell_and_runs_none_twice(tmp_path):
    path, runs = sweep_file(tmp_path, 600, [0, 1, 2]), tmp_path / "runs"
    first, second, third = (c.key for c in prepare_sweep(path).cells)
    driver = start_driver(path, runs)
    wait_for(lambda: finished(runs, first) and lock_holder_pid(runs, second) is not None)
    kept = (runs / first / "summary.json").stat()
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    rerun = start_driver(path, runs)
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output
    assert all(finished(runs, key) for key in (first, second, third))
    again = (runs / first / "summary.json").stat()
    assert (again.st_ino, again.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)  # not redone
    logs = tmp_path / "runs" / "sweeps"
    for key in (first, second, third):
        log = next(logs.glob(f"*/logs/{key}.log")).read_text()
        assert log.count("| 0/600 [") == 1, key  # trained once, also the cell whose worker outlived the driver
    assert sorted(r["id"] for r in RunStore(runs).list()) == sorted((first, second, third))


def test_a_killed_worker_is_started_again_and_resumes_to_the_numbers_of_an_unbroken_run(tmp_path):
    path, runs = sweep_file(tmp_path, 1500, [0]), tmp_path / "runs"
    (cell,) = prepare_sweep(path).cells
    driver = start_driver(path, runs)
    wait_for(lambda: any((runs / cell.key / "stages" / "unlearn-checkpoint").glob("*")))
    pid = lock_holder_pid(runs, cell.key)
    assert pid is not None and pid != driver.pid
    os.kill(pid, signal.SIGKILL)
    output, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, output
    log = next((runs / "sweeps").glob(f"*/logs/{cell.key}.log")).read_text()
    assert log.count("| 0/1500 [") == 1  # the second attempt did not start over: its bar starts at the checkpoint
    with sqlite3.connect(runs / "catalog.sqlite") as db:
        (finisher,) = db.execute("SELECT pid FROM runs WHERE id=?", (cell.key,)).fetchone()
    assert finisher != pid  # finished by the worker started again
    alone = run_experiment(build_config(cell.recipe()), tmp_path / "alone")
    for name in ("summary.json", "metrics.jsonl"):
        assert (runs / cell.key / name).read_bytes() == (alone.dir / name).read_bytes(), name
