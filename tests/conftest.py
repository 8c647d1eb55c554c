"""Shared fixtures: tiny models, hand-made items, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forgetlab.data.types import MCDoc

SHARED_DATA = Path(os.environ.get("FORGETLAB_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def shared_data_root() -> Path:
    """The shared benchmark data folder ($FORGETLAB_DATA or ../shared/data); skips the calling test without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA} (set FORGETLAB_DATA)")
    return SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    return shared_data_root()


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
