"""Study B end to end on a tiny from-scratch run: identical runs write identical summaries."""

import copy
import json

import pytest

from forgetlab.config import build_config
from forgetlab.experiments import run_experiment

N_REFERENCES = 200
RAW = {
    "experiment": "id_vs_ood",
    "name": "tiny_b_values",
    "cpu_threads": 1,
    "model": "scratch",
    "scratch": {"vocab_size": 400, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_length": 96},
    "corpus": {"name": "synthetic_translation", "synthetic_sizes": {"train": 200, "validation": 20, "test": 20}},
    "train_size": 100,
    "test_size": 16,
    "canaries": {"n_references": N_REFERENCES, "n_unseen": 50},
    "groups": {"repetitions": [1, 100], "per_group": 4, "kinds": ["ood", "id"]},
    "train": {"epochs": 1, "batch_size": 32, "lr": 3e-3, "warmup_steps": 2},
    "unlearn": {"lr": 1.5e-3, "max_steps": 10, "batch_size": 4, "eval_every": 1, "stop": {"rules": []}},
    "eval": {"utility_size": 12, "bleu_size": 0, "neighbors": 0, "heldout_size": 8},
    "save_models": False,
}


@pytest.fixture(scope="module")
def values_run(tmp_path_factory, one_thread):
    run = run_experiment(build_config(RAW), tmp_path_factory.mktemp("values"))
    stage = lambda key: json.loads((run.dir / "stages" / f"{key}.json").read_text())  # noqa: E731
    return run, json.loads((run.dir / "summary.json").read_text()), stage


def _has_key(obj, key: str) -> bool:
    if isinstance(obj, dict):
        return key in obj or any(_has_key(v, key) for v in obj.values())
    return isinstance(obj, list) and any(_has_key(v, key) for v in obj)


def test_identical_runs_write_byte_identical_summaries(values_run, tmp_path):
    run, summary, _ = values_run
    assert not _has_key(summary, "seconds")
    timings = json.loads((run.dir / "timings.json").read_text())
    assert timings["total_seconds"] > 0 and {"data", "train/original", "baseline", "unlearn/ood_x100"} <= set(timings["stages"])
    again = run_experiment(build_config(copy.deepcopy(RAW)), tmp_path)
    assert again.dir != run.dir and again.id == run.id
    assert (again.dir / "summary.json").read_bytes() == (run.dir / "summary.json").read_bytes()
