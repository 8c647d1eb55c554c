"""Two CPU processes (Accelerate, gloo) give the same run as one process with twice the batch."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import STUDY_A_RAW


def _recipe(tmp_path, batch_size):
    # reduction "sum" averages over sequences, so the two ranks' averaged gradients equal one rank's
    # gradient over the global batch exactly (the token-mean loss would weight tokens slightly differently).
    raw = {
        **STUDY_A_RAW,
        "finetune": {**STUDY_A_RAW["finetune"], "batch_size": batch_size, "reduction": "sum"},
        "forget": {**STUDY_A_RAW["forget"], "batch_size": batch_size, "reduction": "sum", "checkpoint_every": 0},
    }
    path = tmp_path / f"recipe{batch_size}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _summary(output: str, root) -> dict:
    run_dir = output.strip().splitlines()[-1]
    return json.loads((root / run_dir.split("/")[-1] / "summary.json").read_text())


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    launcher = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    if launcher is None:
        pytest.skip("accelerate launcher not installed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "-m", "forgetlab.cli", "run", str(_recipe(tmp_path, 2)), "--runs-dir", str(tmp_path / "two")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, "-m", "forgetlab.cli", "run", str(_recipe(tmp_path, 4)), "--runs-dir", str(tmp_path / "one")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    (two_dir,) = (tmp_path / "two").glob("*/config.yaml")
    assert yaml.safe_load(two_dir.read_text())["world_size"] == 2
    a = _summary(two.stdout, tmp_path / "two")["tasks"]["synth_compare"]
    b = _summary(one.stdout, tmp_path / "one")["tasks"]["synth_compare"]
    assert a["steps"] == b["steps"]
    for key in ("acc_pretrained", "acc_finetuned", "acc_forget_test", "acc_forget_train"):
        assert a[key] == pytest.approx(b[key]), key
    losses = lambda root: [json.loads(l)["value"] for l in open(next(root.glob("*/metrics.jsonl"))) if '"loss"' in l]
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-4)
