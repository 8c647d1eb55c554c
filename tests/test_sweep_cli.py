"""``forgetlab sweep`` at the command line: the plan without running, one line and exit 2 for a bad file or a
backend whose extra is missing (naming the extra)."""

from __future__ import annotations

import builtins

import yaml
from typer.testing import CliRunner

from forgetlab.cli import app
from tests.conftest import unlearn_raw_config

runner = CliRunner()


def sweep_file(tmp_path, **fields) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": unlearn_raw_config(), "grid": {"seed": [0, 1]}, **fields}))
    return str(path)


def test_dry_run_lists_every_cell_and_runs_nothing(tmp_path):
    result = runner.invoke(app, ["sweep", sweep_file(tmp_path), "--dry-run", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "2 runs" in result.output and "seed=0" in result.output and "seed=1" in result.output
    assert not (tmp_path / "runs").exists()


def test_a_bad_sweep_file_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["sweep", sweep_file(tmp_path, zip={"a": [1, 2], "b": [1]}), "--dry-run"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "zip: the lists must be equally long" in result.output


def test_a_backend_that_is_not_installed_names_its_extra(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.delitem(__import__("sys").modules, "ray", raising=False)
    result = runner.invoke(app, ["sweep", sweep_file(tmp_path), "--backend", "ray", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "backend ray: ray is not installed; pip install 'forgetlab[ray]'" in result.output
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_results_only_writes_the_results_of_what_is_finished_and_starts_nothing(tmp_path):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["sweep", sweep_file(tmp_path, name="partial"), "--results-only", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert "0/2 finished, 0 running, 0 failed, 2 waiting" in result.output
    folder = next((runs / "sweeps").iterdir())
    assert (folder / "results.md").is_file() and not [p for p in runs.iterdir() if p.name.startswith("partial-")]
    search = tmp_path / "search.yaml"
    search.write_text(yaml.safe_dump({"base": unlearn_raw_config(), "search": {
        "objective": "selected.forget_loss", "trials": 2, "space": {"forget.lr": {"log_uniform": [1e-4, 1e-2]}}}}))
    result = runner.invoke(app, ["sweep", str(search), "--results-only", "--runs-dir", str(runs)])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "search" in result.output
