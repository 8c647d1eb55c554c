"""The cross-task sweep on a tiny random model: the matrix, the cells, tasks not learned, resume by cell."""

import json

import pytest

from forgetlab.experiments import build_config
from forgetlab.experiments import run_experiment
from forgetlab.store import RunStore
from tests.conftest import STUDY_A_ANALYSIS_RAW, STUDY_A_LEARNS_ONE


def test_cross_task_sweep_builds_the_matrix_and_resumes_by_cell(tmp_path):
    raw = dict(STUDY_A_ANALYSIS_RAW, experiment="cross_task", analysis={"probes": False, "layer": 0.5}, **STUDY_A_LEARNS_ONE)
    sweep = run_experiment(build_config(raw), tmp_path)
    summary = json.loads((sweep.dir / "summary.json").read_text())
    matrix = summary["crosstask"]
    tasks = summary["tasks"]
    for b in tasks:
        assert matrix["reference"][b] == tasks[b]["acc_finetuned"]
        assert matrix["accuracy"][b][b] == tasks[b]["acc_forget_test"]
    learned, unlearned = tasks["synth_compare"], tasks["synth_arith"]
    assert learned["acc_finetuned_ci"][0] > max(0.5, learned["acc_pretrained"]) and learned["learned"]
    assert unlearned["acc_finetuned_ci"][0] <= max(0.5, unlearned["acc_pretrained"]) and not unlearned["learned"]
    ft, f = learned["acc_finetuned"], learned["acc_forget_test"]
    assert learned["forget_ratio"] == pytest.approx((ft - f) / (2 * ft - 1)) and ft != f  # flipped labels
    assert learned["category"] != "not_learned"
    assert unlearned["category"] == "not_learned" and unlearned["forget_ratio"] is None
    # the task not learned: no column in the matrix, no place in the predictor correlations
    assert matrix["not_learned"] == ["synth_arith"]
    assert matrix["forget_ratio"]["synth_compare"]["synth_arith"] is None and matrix["forget_ratio"]["synth_arith"]["synth_arith"] is None
    assert summary["analysis"]["excluded"] == ["synth_arith"]
    assert all(c["tasks"] == ["synth_compare"] for c in summary["analysis"]["correlations"].values())
    store = RunStore(tmp_path)
    scored = store.find(summary["cells"]["synth_arith"]["synth_compare"]).summary()
    ref, acc = matrix["reference"]["synth_compare"], scored["acc_eval_test"]
    assert matrix["forget_ratio"]["synth_arith"]["synth_compare"] == pytest.approx((ref - acc) / (ref - 0.5))  # vs chance
    assert scored["forget_ratio"] == pytest.approx((ref - acc) / (2 * ref - 1))  # the cell's own: flipped formula
    cell = store.find(summary["cells"]["synth_compare"]["synth_arith"])
    cell_summary = cell.summary()
    assert cell_summary["forget_task"] == "synth_compare" and cell_summary["eval_task"] == "synth_arith"
    assert cell_summary["forget_ratio"] is None  # its evaluation task was not learned
    assert not (cell.dir / "stages" / "forgotten.safetensors").exists()
    assert set(json.loads((cell.dir / "timings.json").read_text())["stages"]) == {"forget"}
    assert sorted(matrix["row_order"]) == sorted(tasks)
    assert (sweep.dir / "report.html").is_file() and not (cell.dir / "report.html").exists()
    assert (sweep.dir / "report" / "trajectories.png").is_file()  # its Study A run's trajectories

    # Kill the sweep after its cells: running again reuses every finished cell.
    mtime = (cell.dir / "summary.json").stat().st_mtime_ns
    (sweep.dir / "summary.json").unlink()
    store.fail(sweep, "killed")
    again = run_experiment(build_config(raw), tmp_path)
    assert json.loads((again.dir / "summary.json").read_text())["crosstask"] == matrix
    assert (cell.dir / "summary.json").stat().st_mtime_ns == mtime


def test_cross_task_needs_two_tasks(tmp_path):
    raw = dict(STUDY_A_ANALYSIS_RAW, experiment="cross_task", tasks=["synth_compare"])
    with pytest.raises(ValueError, match="at least two tasks"):
        run_experiment(build_config(raw), tmp_path)
