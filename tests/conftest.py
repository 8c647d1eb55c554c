"""Shared fixtures: tiny models, hand-made items, the shared data folder, the tiny Study A recipes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forgetlab.data.types import MCDoc

SHARED_DATA = Path(os.environ.get("FORGETLAB_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run far faster on one thread than on two contended ones (a busy 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny():
    from forgetlab.models import load_model

    return load_model("tiny-llama")


def make_docs(n: int, task: str = "toy") -> list[MCDoc]:
    """Binary items 'a+b=' with the right and a wrong sum, gold alternating between positions."""
    docs = []
    for i in range(n):
        a, b = i % 7, (3 * i) % 5
        right, wrong = str(a + b), str(a + b + 1 + i % 3)
        gold = i % 2
        options = (wrong, right) if gold else (right, wrong)
        docs.append(MCDoc(task, f"t-{i}", (f"{a}+{b}=",) * 2, tuple(" " + o for o in options), gold))
    return docs


#: Study A on a tiny random model and one generated task: the recipe of the end-to-end, CLI and fault tests.
STUDY_A_RAW = {
    "experiment": "forget_generalization",
    "name": "tiny",
    "model": {"name": "tiny-llama"},
    "tasks": ["synth_compare"],
    "data": {"finetune_size": 16, "forget_size": 8, "validation_size": 8, "test_size": 12},
    "finetune": {"lr": 1e-3, "epochs": 1, "batch_size": 4},
    "forget": {"lr": 1e-3, "epochs": 2, "batch_size": 4, "eval_every": 2, "checkpoint_every": 1},
    "eval": {"batch_size": 8, "trajectory_test_size": 6, "bootstrap": 50},
    "analysis": {"layer": -1},  # the default fifth-to-last does not exist in a 2-layer model
}

#: Study A's analyses on two generated tasks (add ``experiment``: forget_generalization or cross_task).
STUDY_A_ANALYSIS_RAW = {
    "name": "tiny",
    "model": {"name": "tiny-llama"},
    "tasks": ["synth_compare", "synth_arith"],
    "data": {"finetune_size": 16, "forget_size": 8, "validation_size": 8, "test_size": 12},
    "finetune": {"lr": 1e-3, "epochs": 1, "batch_size": 4, "eval_every": 2},
    "forget": {"lr": 1e-3, "epochs": 2, "batch_size": 4, "eval_every": 2},
    "eval": {"batch_size": 8, "trajectory_test_size": 6, "bootstrap": 50},
    "analysis": {"probes": True, "probe_layers": [1, -1], "probe_cs": [0.1, 1.0], "layer": -1},
}
# With these the tiny model learns synth_compare (acc_FT 0.8, 95 % CI [0.66, 0.88], acc_PT 0.4) but not
# synth_arith (0.375 [0.25, 0.52] vs 0.375); it forgets with flipped labels.
STUDY_A_LEARNS_ONE = {
    "data": {"finetune_size": 128, "forget_size": 8, "validation_size": 8, "test_size": 40},
    "finetune": {"lr": 1e-2, "epochs": 4, "batch_size": 8, "eval_every": 16, "loss": "choice"},
    "forget": {"lr": 1e-2, "epochs": 2, "batch_size": 4, "eval_every": 2, "method": "flipped_label"},
}
