"""What a section is given: the run's files, read once and on demand, its experiment, another finished run
through the store, and a folder for its figures."""

from __future__ import annotations

import json

import pytest
import yaml

from forgetlab.report.context import ReportContext, jsonl_rows
from forgetlab.report.page import Page
from forgetlab.report.plots import plt
from forgetlab.store import StoreError
from tests.report_checks import accuracy_rows, catalog, generic_summary, make_run, study_a_summary


def test_load_needs_a_finished_run(tmp_path):
    run_dir = make_run(tmp_path, generic_summary())
    (run_dir / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        ReportContext.load(run_dir)
    run_dir = make_run(tmp_path / "list", generic_summary())
    (run_dir / "summary.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        ReportContext.load(run_dir)


def test_experiment_is_named_by_the_config_else_the_summary(tmp_path):
    run_dir = make_run(tmp_path, dict(generic_summary(), experiment="from_summary"))
    assert ReportContext.load(run_dir).experiment == "from_summary"  # make_run's config names the same
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"config": {"experiment": "from_config"}}))
    assert ReportContext.load(run_dir).experiment == "from_config"
    (run_dir / "config.yaml").write_text("just text")
    assert ReportContext.load(run_dir).experiment == "from_summary"


def test_tables_are_read_once_and_may_be_absent(tmp_path):
    rows = accuracy_rows(["boolq"])
    context = ReportContext.load(make_run(tmp_path, study_a_summary(extras=False), metrics=rows))
    assert context.rows() == rows and context.rows("examples.jsonl") == []
    (context.run_dir / "metrics.jsonl").unlink()
    assert context.rows("metrics.jsonl") == rows  # read once
    assert jsonl_rows(tmp_path / "absent.jsonl") == []


def test_another_finished_run_is_read_through_the_store(tmp_path):
    first = study_a_summary(run_id="first-0123456789ab")
    first_dir = make_run(tmp_path, first, metrics=accuracy_rows(["boolq"]))
    catalog(tmp_path, first_dir, first)
    context = ReportContext.load(make_run(tmp_path, generic_summary()))
    assert jsonl_rows(context.finished_run(first["run"]).dir / "metrics.jsonl") == accuracy_rows(["boolq"])
    with pytest.raises(StoreError, match="not in"):
        context.finished_run("other-0123456789ab")
    with pytest.raises(ValueError, match="safe run name"):
        context.finished_run("../escape")
    lonely = ReportContext.load(make_run(tmp_path / "elsewhere", generic_summary()))
    with pytest.raises(StoreError, match="not a runs directory"):
        lonely.finished_run(first["run"])


def test_figures_are_saved_shown_and_recorded(tmp_path):
    context = ReportContext.load(make_run(tmp_path, generic_summary()))
    page = Page(context.summary)
    context.figure(page, None, "nothing", "no figure")
    assert not page.parts and not context.written and not context.figures_dir.exists()
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    context.figure(page, fig, "line", "a line")
    png = (context.figures_dir / "line.png").read_bytes()
    assert context.written == ["line.png"] and png.startswith(b"\x89PNG") and 'alt="a line"' in page.parts[0]
    assert json.loads((context.run_dir / "summary.json").read_text()) == context.summary
