"""The command line: last line is the run directory; bad input exits non-zero with one clear error."""

import json

import yaml
from typer.testing import CliRunner

from forgetlab.cli import app
from forgetlab.store import RunStore
from tests.conftest import STUDY_A_RAW

runner = CliRunner()


def _recipe(tmp_path, **changes):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({**STUDY_A_RAW, **changes}))
    return path


def test_run_prints_run_dir_last_then_list_and_show(tmp_path):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(_recipe(tmp_path)), "--runs-dir", str(runs), "--set", "forget.epochs=1"])
    assert result.exit_code == 0, result.output
    run_dir = result.output.strip().splitlines()[-1]
    summary = json.loads((runs / run_dir.split("/")[-1] / "summary.json").read_text())
    assert summary["tasks"]["synth_compare"]["steps"]["forget"] == 2
    listed = runner.invoke(app, ["list", "--runs-dir", str(runs)])
    assert "finished" in listed.output
    shown = runner.invoke(app, ["show", run_dir.split("/")[-1][:8], "--runs-dir", str(runs)])
    assert shown.exit_code == 0 and "acc_forget_test" in shown.output


def _fails(args, fragment):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert fragment in " ".join(result.output.split()), result.output


def test_bad_inputs_exit_with_one_error(tmp_path):
    runs = ["--runs-dir", str(tmp_path / "runs")]
    _fails(["run", str(tmp_path / "nope.yaml"), *runs], "no such file")
    _fails(["run", str(_recipe(tmp_path, tasks=["nosuchtask"])), *runs], "unknown task 'nosuchtask'")
    _fails(["run", str(_recipe(tmp_path)), "--set", "forget.lrr=1", *runs], "field 'forget.lrr'")
    _fails(["run", str(_recipe(tmp_path, model={"name": "/no/such/model/dir"})), *runs], "/no/such/model/dir")
    _fails(["run", str(_recipe(tmp_path)), "--set", "forget.method=nomethod", *runs], "unknown method 'nomethod'")
    _fails(["show", "missing", *runs], "not a runs directory")
    RunStore(tmp_path / "runs")
    _fails(["show", "missing", *runs], "expected one match")


def test_bad_data_file_names_file_and_field(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"goal": "g", "sol1": "a", "sol2": "b", "label": 7}\n')
    recipe = _recipe(tmp_path, tasks=[{"name": "piqa", "source": "files", "files": {"train": str(data), "validation": str(data)}}])
    result = runner.invoke(app, ["run", str(recipe), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "train.jsonl" in result.output and "label" in result.output
    assert not list((tmp_path / "runs").glob("*/summary.json"))


def test_registries_are_listed():
    assert "boolq" in runner.invoke(app, ["tasks"]).output
    assert "random_label" in runner.invoke(app, ["methods"]).output
    assert "smollm2-135m" in runner.invoke(app, ["models"]).output
    assert "quickstart" in runner.invoke(app, ["recipes"]).output
