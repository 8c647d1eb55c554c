"""The command line: last line is the run directory; bad input exits non-zero with one clear error."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from forgetlab.cli import app
from forgetlab.store import RunStore
from tests.conftest import STUDY_A_RAW
from tests.report_checks import GOLDEN, assert_numbers_match, catalog, generic_summary, golden_run, golden_runs, make_run, study_a_summary

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


# --- forgetlab report ---------------------------------------------------------------------------------

#: What ``forgetlab report`` redraws for the golden run of each experiment.
REPORTED = {
    "forget_generalization": ({"behaviour", "predictors", "items", "probes", "order", "trajectories"}, {"trajectories.png"}),
    "cross_task": ({"behaviour", "crosstask", "trajectories"}, {"crosstask.png", "trajectories.png"}),  # its Study A run's
    "id_vs_ood": ({"groups", "claims", "curves", "before"}, {"tradeoff.png"}),
    "unlearn": ({"headline", "trajectory"}, {"unlearning.png"}),
}


def _report(key, runs):
    result = runner.invoke(app, ["report", str(key), "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1])


def test_report_redraws_every_experiments_sections(tmp_path):
    runs = golden_runs(tmp_path)
    for experiment, (sections, figures) in REPORTED.items():
        run_dir, summary = runs[experiment]
        path = _report(run_dir, tmp_path)
        assert path == (run_dir / "report.html").resolve()
        parsed = assert_numbers_match(path, summary)
        drawn = {p.name for p in (run_dir / "report").glob("*.png")}
        assert sections <= set(parsed.ids) and figures <= drawn and len(parsed.images) == len(drawn), experiment


def test_report_of_a_cross_task_cell_is_generic(tmp_path):
    summary = json.loads((GOLDEN / "cross_task" / "cross_task_cell-synth_arith-synth_compare" / "summary.json").read_text())
    summary["run"] = "cell-0123456789ab"
    run_dir = make_run(tmp_path, summary)
    parsed = assert_numbers_match(_report(run_dir, tmp_path), summary)
    assert parsed.ids == ["values", "config", "versions", "summary"] and not parsed.images


def test_report_by_catalog_id_and_prefix(tmp_path):
    run_dir, summary = golden_run(tmp_path, "unlearn")
    for key in (summary["run"], summary["run"][:7]):
        assert _report(key, tmp_path) == (run_dir / "report.html").resolve()
    assert_numbers_match(run_dir / "report.html", summary)


def test_report_errors(tmp_path):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["report", "missing", "--runs-dir", str(runs)])
    assert result.exit_code == 2 and "not a runs directory" in " ".join(result.output.split())
    RunStore(runs)
    result = runner.invoke(app, ["report", "missing", "--runs-dir", str(runs)])
    assert result.exit_code == 2
    assert "expected one match" in " ".join(result.output.split())
    summary = study_a_summary(extras=False, run_id="running-000")
    run_dir = make_run(runs, summary)
    (run_dir / "summary.json").unlink()
    catalog(runs, run_dir, summary, status="running")
    result = runner.invoke(app, ["report", "running", "--runs-dir", str(runs)])
    assert result.exit_code == 2 and "summary.json" in result.output
    unknown = make_run(runs, dict(generic_summary(), experiment="retired", run="retired-0123456789ab"))
    result = runner.invoke(app, ["report", str(unknown), "--runs-dir", str(runs)])
    assert result.exit_code == 2 and "unknown experiment 'retired'" in result.output


def test_study_a_table_reads_whole_at_80_columns(monkeypatch):
    """Task names, every number and the category stay whole on an 80-column terminal (nothing cut or folded)."""
    import io

    from rich.console import Console

    from forgetlab import cli as cli_module

    screen = io.StringIO()
    monkeypatch.setattr(cli_module, "out", Console(file=screen, width=80))
    row = {"acc_pretrained": 0.6041, "acc_finetuned": 0.854, "acc_forget_test": 0.6458, "acc_forget_train": 0.625,
           "forget_gap": 0.1458, "forget_ratio": 0.5882, "category": "forget_set_not_fit"}
    cli_module._print_task_table({"run": "quickstart-9504c23ab895", "tasks": {"synth_compare": row, "synth_arith": row}})
    lines = screen.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    body = [line.split() for line in lines if line.strip().startswith("synth_")]
    assert body == [[task, "0.604", "0.854", "0.646", "0.625", "0.146", "0.588", "forget_set_not_fit"] for task in ("synth_compare", "synth_arith")]
