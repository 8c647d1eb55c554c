"""Every user error: exit code 2, one line that names the file, line, field or option, no traceback —
and, when the error is in the input itself, nothing left behind (no catalog row, no run directory)."""

from __future__ import annotations

import errno
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml
from typer.testing import CliRunner

import forgetlab.data.records as records
import forgetlab.store as store_module
from forgetlab.cli import app
from tests.conftest import STUDY_A_RAW, unlearn_raw_config

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Case:
    """One bad input: how to build the command in ``tmp_path``, the fragment its error must contain,
    and whether it must be refused before a run is opened."""

    name: str
    args: Callable[[Path], list[str]]
    fragment: str
    before_run: bool = True
    setup: Callable[[Path, pytest.MonkeyPatch], None] = field(default=lambda tmp, mp: None)
    regex: bool = False  # the fragment is a regular expression


def _recipe(tmp: Path, raw: dict | None = None, **changes) -> str:
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump({**(raw or STUDY_A_RAW), **changes}))
    return str(path)


def _unlearn(tmp: Path, **changes) -> str:
    return _recipe(tmp, unlearn_raw_config(), **changes)


def _run(tmp: Path, recipe: str, *sets: str) -> list[str]:
    out = ["run", recipe, "--runs-dir", str(tmp / "runs")]
    for item in sets:
        out += ["--set", item]
    return out


def _piqa_files(tmp: Path, content: bytes, suffix: str = "jsonl") -> str:
    path = tmp / f"train.{suffix}"
    path.write_bytes(content)
    task = {"name": "piqa", "source": "files", "files": {"train": str(path), "validation": str(path)}}
    return _recipe(tmp, tasks=[task])


def _finished_run(tmp: Path) -> str:
    result = runner.invoke(app, _run(tmp, _recipe(tmp), "forget.epochs=1"))
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def _truncate_summary(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    run_dir = Path(_finished_run(tmp))
    (run_dir / "summary.json").write_text('{"experiment": "forget_gen')


def _corrupt_catalog(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    (tmp / "runs").mkdir()
    (tmp / "runs" / "catalog.sqlite").write_bytes(b"\x00garbage" * 512)


def _read_only(code: int) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """Runs directory on a read-only / forbidden file system (root ignores chmod, so the errors are injected)."""

    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        def refuse(*args, **kwargs):
            raise OSError(code, f"{errno.errorcode[code]} injected", str(tmp / "runs" / "x"))

        def refuse_db(*args, **kwargs):
            raise sqlite3.OperationalError("attempt to write a readonly database")

        mp.setattr(store_module.tempfile, "mkstemp", refuse)
        mp.setattr(store_module.sqlite3, "connect", refuse_db)

    return setup


def _forbidden_writes(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    """The catalog can be written but the run's files cannot (EACCES)."""
    RunStore_ = store_module.RunStore
    RunStore_(tmp / "runs")

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    mp.setattr(store_module.tempfile, "mkstemp", refuse)


def _small_csv_limit(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    mp.setattr(records, "CSV_FIELD_LIMIT", 1000)


CASES = [
    # 6: each of these gave a traceback with exit 1
    Case("list index out of range", lambda t: _run(t, _recipe(t), "tasks.5.name=x"), "override 'tasks.5.name=x': index 5 is out of range"),
    Case("broken YAML value", lambda t: _run(t, _recipe(t), "forget.lr=[1,"), "override 'forget.lr=[1,': the value is not valid YAML"),
    Case("CSV cell over the csv limit", lambda t: _run(t, _piqa_files(t, b"goal,sol1,sol2,label\n" + b"g" * 2000 + b",a,b,0\n", "csv")),
         "train.csv line 2: not valid CSV: field larger than field limit", before_run=False, setup=_small_csv_limit),
    Case("invalid trainable regex", lambda t: _run(t, _unlearn(t), "forget.trainable=(["), "field 'forget.trainable': Value error, not a valid regular expression"),
    Case("read-only runs directory (EROFS)", lambda t: _run(t, _recipe(t)), "catalog.sqlite: attempt to write a readonly database", setup=_read_only(errno.EROFS)),
    Case("run directory not writable (EACCES)", lambda t: _run(t, _recipe(t)), r"runs/tiny-[0-9a-f]{12}: Permission denied",
         before_run=False, setup=_forbidden_writes, regex=True),
    Case("corrupt catalog", lambda t: _run(t, _recipe(t)), "catalog.sqlite: file is not a database", setup=_corrupt_catalog),
    Case("truncated summary.json under run", lambda t: _run(t, _recipe(t), "forget.epochs=1"), "summary.json: damaged, not valid JSON",
         before_run=False, setup=_truncate_summary),
    Case("truncated summary.json under show", lambda t: ["show", "tiny", "--runs-dir", str(t / "runs")], "summary.json: damaged, not valid JSON",
         before_run=False, setup=_truncate_summary),
    # 6: these named nothing
    Case("non-UTF-8 data file", lambda t: _run(t, _piqa_files(t, b'{"goal": "ok", "sol1": "a", "sol2": "b", "label": 0}\n{"goal": "g\xff"}\n')),
         "train.jsonl line 2: not UTF-8 text (byte(s) ff at column 12)", before_run=False),
    Case("empty data file", lambda t: _run(t, _piqa_files(t, b"")), "train.jsonl: no rows: the file is empty", before_run=False),
    Case("negative seed", lambda t: _run(t, _recipe(t), "seed=-1"), "field 'seed': Input should be greater than or equal to 0"),
    Case("oversized seed", lambda t: _run(t, _recipe(t), "seed=99999999999999999999999"), "field 'seed': Input should be less than or equal to 4294967295"),
    Case("option of the wrong type", lambda t: _run(t, _unlearn(t), "forget.method=grad_diff", "forget.options.retain_weight=abc"),
         "forget.options.retain_weight: 'abc' is not valid for method grad_diff"),
    Case("divergence during unlearning", lambda t: _run(t, _unlearn(t), "forget.lr=1e4", "forget.max_steps=6", "forget.eval_every=1"),
         "unlearn (gradient_ascent): the model diverged by step", before_run=False),
    Case("unknown hub model (offline)", lambda t: _run(t, _recipe(t), "model.name=nobody/no-such-model"),
         "model.name: 'nobody/no-such-model' is not a built-in alias or a local directory", setup=lambda t, mp: mp.setenv("HF_HUB_OFFLINE", "1")),
    # 7: refused before a run is opened
    Case("model directory without a checkpoint", lambda t: _run(t, _recipe(t), f"model.name={t}"), "has no config.json"),
    Case("analysis layer the model lacks", lambda t: _run(t, _recipe(t), "analysis.layer=-5"), "analysis.layer must be an int in [-3, 2]"),
    Case("trainable regex matching nothing", lambda t: _run(t, _unlearn(t), "forget.trainable=no_such_param"),
         "forget.trainable: 'no_such_param' matches no trainable parameter of tiny-llama"),
    Case("infinite learning rate", lambda t: _run(t, _recipe(t), "forget.lr=.inf"), "field 'forget.lr': Input should be a finite number"),
    Case("unsafe run name", lambda t: _run(t, _recipe(t), "name=../../x"), "field 'name': Value error, run name '../../x' is not a safe run name"),
    Case("absolute run name", lambda t: _run(t, _recipe(t), f"name={t}/x"), "is not a safe run name"),
    # 8
    Case("show with SQL wildcards", lambda t: ["show", "t%", "--runs-dir", str(t / "runs")], "run 't%': expected one match",
         before_run=False, setup=lambda t, mp: _finished_run(t)),
    Case("list of a runs directory that does not exist", lambda t: ["list", "--runs-dir", str(t / "typo")], "typo: not a runs directory (no catalog.sqlite)"),
    Case("test_size larger than the data", lambda t: _run(t, _recipe(t), "data.test_size=100000"),
         "data.validation_size 8 + data.test_size 100000 ask for more than the 500 evaluation items", before_run=False),
]


def _error_lines(output: str) -> list[str]:
    return [line for line in output.replace("\r", "\n").splitlines() if "error:" in line]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_with_one_line_naming_it(case: Case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case.setup(tmp_path, monkeypatch)
    catalog_rows_before = _rows(tmp_path / "runs")
    result = runner.invoke(app, case.args(tmp_path))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = _error_lines(result.output)
    assert len(lines) == 1, result.output
    assert re.search(case.fragment, lines[0]) if case.regex else case.fragment in lines[0], result.output
    if case.before_run:
        assert _rows(tmp_path / "runs") == catalog_rows_before
        assert not [p for p in (tmp_path / "runs").glob("*") if p.is_dir()]
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()  # no escape through the name


def _rows(runs: Path) -> list:
    if not (runs / "catalog.sqlite").is_file():
        return []
    try:
        with sqlite3.connect(runs / "catalog.sqlite") as db:
            return db.execute("SELECT id, status FROM runs").fetchall()
    except sqlite3.DatabaseError:
        return ["unreadable"]


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", *_run(tmp_path, _recipe(tmp_path), "seed=-1")])
    assert result.exit_code != 0 and isinstance(result.exception, ValueError)


def test_show_prints_the_error_of_a_failed_run(tmp_path):
    failing = runner.invoke(app, _run(tmp_path, _recipe(tmp_path), "data.test_size=100000"))
    assert failing.exit_code == 2
    shown = runner.invoke(app, ["show", "tiny", "--runs-dir", str(tmp_path / "runs")])
    assert shown.exit_code == 0, shown.output
    assert "(failed)" in shown.output
    assert "error: ValueError: task synth_compare: data.validation_size 8 + data.test_size 100000" in " ".join(shown.output.split())


def test_a_large_csv_cell_is_read(tmp_path):
    """Cells over Python's default 128 KiB csv limit (whole documents) load."""
    path = tmp_path / "big.csv"
    path.write_text("prompt,target\n" + "p," + "w " * 100_000 + "\n")
    (row,) = records.read_table_file(path)
    assert len(row.doc["target"]) == 200_000


def test_unlearn_summary_is_byte_identical_and_timings_are_apart(tmp_path):
    from forgetlab.experiments import build_config
    from forgetlab.experiments import run_experiment

    config = build_config(unlearn_raw_config())
    a = run_experiment(config, tmp_path / "a")
    b = run_experiment(config, tmp_path / "b")
    assert (a.dir / "summary.json").read_bytes() == (b.dir / "summary.json").read_bytes()
    assert "seconds" not in (a.dir / "summary.json").read_text()
    timings = json.loads((a.dir / "timings.json").read_text())
    assert set(timings) == {"stages", "cpu_threads", "device", "unlearn_eval", "unlearn_train"}
    assert set(timings["stages"]) == {"data", "unlearn"}
    assert timings["cpu_threads"] == 1  # the recipe's count, recorded beside the times
    assert timings["device"] == "cpu"  # what it computed on
    assert timings["stages"]["unlearn"] > 0
