"""Shared fixtures: tiny models, hand-made items, the shared data folder."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from forgetlab.data.types import MCDoc

SHARED_DATA = Path(os.environ.get("FORGETLAB_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


TINY_ID_VS_OOD = {
    "experiment": "id_vs_ood",
    "name": "tiny_b",
    "cpu_threads": 1,
    "model": "scratch",
    "scratch": {"vocab_size": 400, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_length": 96},
    "corpus": {"name": "synthetic_translation", "synthetic_sizes": {"train": 200, "validation": 20, "test": 20}},
    "train_size": 150,
    "test_size": 16,
    "canaries": {"n_references": 60, "n_unseen": 20},
    "groups": {"repetitions": [1, 10], "per_group": 6},
    "train": {"epochs": 1, "batch_size": 32, "lr": 3e-3, "warmup_steps": 2},
    "unlearn": {"lr": 1e-3, "max_steps": 4, "batch_size": 6, "eval_every": 2},
    "eval": {"utility_size": 12, "bleu_size": 6, "bleu_every": 2, "max_new_tokens": 10, "nearby_random": 6, "heldout_size": 8},
    "buckets": {"groups": ["id_x10"], "factors": ["difficulty"]},
}


@pytest.fixture
def tiny_id_vs_ood() -> dict:
    """A tiny ``id_vs_ood`` recipe (a fresh copy): a from-scratch model on generated German→English pairs."""
    return copy.deepcopy(TINY_ID_VS_OOD)


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
