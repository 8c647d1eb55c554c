"""Study A end to end on a tiny random model and generated tasks: stages, summary, resume, errors."""

import json
import shutil

import pytest

from forgetlab.experiments import build_config
from forgetlab.experiments import run_experiment
from forgetlab.store import RunStore, read_jsonl
from tests.conftest import STUDY_A_RAW

FIELDS = {"acc_pretrained", "acc_finetuned", "acc_forget_test", "acc_forget_train", "forget_gap", "forget_ratio", "category"}


def test_full_pipeline_writes_everything(tmp_path):
    run = run_experiment(build_config(STUDY_A_RAW), tmp_path)
    assert run.finished
    summary = json.loads((run.dir / "summary.json").read_text())
    task = summary["tasks"]["synth_compare"]
    assert FIELDS <= set(task)
    assert task["sizes"] == {"finetune": 16, "forget": 8, "validation": 8, "test": 12}
    assert task["steps"] == {"finetune": 4, "forget": 4}
    assert task["forget_gap"] == pytest.approx(task["acc_forget_test"] - 0.5)
    metrics = list(read_jsonl(run.dir / "metrics.jsonl"))
    trajectory = sorted({m["step"] for m in metrics if m["stage"] == "forget" and m["metric"] == "acc" and m["split"] == "forget"})
    assert trajectory == [0, 2, 4]
    assert {m["split"] for m in metrics if m["stage"] == "forget" and m["metric"] == "acc"} == {"forget", "test"}
    examples = list(read_jsonl(run.dir / "examples.jsonl"))
    assert {e["stage"] for e in examples} >= {"pretrained", "finetuned", "forgotten", "forget"}
    assert (run.dir / "report" / "trajectories.png").is_file() and not (run.dir / "plots").exists()
    assert (run.dir / "stages" / "synth_compare" / "forgotten.safetensors").is_file()
    assert not (run.dir / "stages" / "synth_compare" / "forget-checkpoint").exists()
    assert "world_size: 1" in (run.dir / "config.yaml").read_text()
    timings = json.loads((run.dir / "timings.json").read_text())
    stages = {f"synth_compare/{stage}" for stage in ("data", "pretrained", "finetune", "finetuned", "forget", "forgotten")}
    assert stages <= set(timings["stages"]) and timings["device"] == "cpu"
    assert all(seconds > 0 for seconds in timings["stages"].values())


def test_same_config_is_found_and_killed_run_resumes_identically(tmp_path):
    config = build_config(STUDY_A_RAW)
    first = run_experiment(config, tmp_path / "a")
    mtime = (first.dir / "summary.json").stat().st_mtime_ns
    assert run_experiment(config, tmp_path / "a").dir == first.dir
    assert (first.dir / "summary.json").stat().st_mtime_ns == mtime  # found, not redone

    # Simulate a kill after the forgetting checkpoint at step 1: drop everything later, keep the checkpoint.
    second = run_experiment(config, tmp_path / "b")
    stages = second.dir / "stages" / "synth_compare"
    for name in ("forget.json", "forgotten.json", "analysis.json", "forgotten.safetensors"):
        (stages / name).unlink()
    (second.dir / "summary.json").unlink()
    store = RunStore(tmp_path / "b")
    store.fail(second, "killed")
    shutil.copytree(_checkpoint_after_one_step(config, tmp_path / "c"), stages / "forget-checkpoint")
    resumed = run_experiment(config, tmp_path / "b")
    a = json.loads((first.dir / "summary.json").read_text())["tasks"]
    b = json.loads((resumed.dir / "summary.json").read_text())["tasks"]
    assert a == b


def _checkpoint_after_one_step(config, root):
    """A forget-stage checkpoint at step 1, made by a run that is stopped right after writing it."""
    import forgetlab.train as train

    original = train._save_checkpoint

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt

    train._save_checkpoint = save_then_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            run_experiment(config, root)
    finally:
        train._save_checkpoint = original
    (checkpoint,) = root.glob("*/stages/synth_compare/forget-checkpoint")
    assert json.loads((checkpoint / "state.json").read_text())["steps"] == 1
    assert RunStore(root).list()[0]["status"] == "interrupted"  # Ctrl-C: not a failure, resumable
    return checkpoint


def test_unknown_task_and_method_fail_before_any_work(tmp_path):
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        run_experiment(build_config({**STUDY_A_RAW, "tasks": ["nope"]}), tmp_path)
    with pytest.raises(KeyError, match="forget.method: unknown method 'forgettt'"):
        run_experiment(build_config({**STUDY_A_RAW, "forget": {"method": "forgettt"}}), tmp_path)
    assert RunStore(tmp_path).list() == []


def test_split_too_small_fails_and_is_not_finished(tmp_path):
    raw = {**STUDY_A_RAW, "tasks": [{"name": "synth_compare"}], "data": {**STUDY_A_RAW["data"], "forget_size": 100000}}
    with pytest.raises(ValueError, match="synth_compare"):
        run_experiment(build_config(raw), tmp_path)
    (row,) = RunStore(tmp_path).list()
    assert row["status"] == "failed"
    assert not list(tmp_path.glob("*/summary.json"))


def test_over_long_item_is_named(tmp_path):
    raw = {**STUDY_A_RAW, "model": {"name": "tiny-llama", "tiny": {"max_position_embeddings": 12}}}
    with pytest.raises(ValueError, match=r"synth_compare item \S+ choice \d"):
        run_experiment(build_config(raw), tmp_path)
    assert RunStore(tmp_path).list()[0]["status"] == "failed"
