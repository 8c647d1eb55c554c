"""Multi-process scoring: two CPU processes under ``accelerate launch`` each get the full, ordered result.

accelerate 1.x's ``launch --cpu`` always starts ONE process (its simple launcher; several CPU processes
need MPI); two local CPU processes come from ``launch --multi_gpu --num_processes 2`` (torchrun) with
``Accelerator(cpu=True)`` in the script, which then runs a gloo process group (``MULTI_CPU``).

Run as a script (by the test, through ``accelerate launch``), this file scores a fixed request set on
a tiny model with ``Scorer(accelerator=...)`` and writes each process's full result to JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REQUESTS = [
    ("Question: is the sky blue?\nAnswer:", " yes"),
    ("Question: is the sky blue?\nAnswer:", " no"),
    ("The quick brown fox " * 12, " jumps over the lazy dog"),
    ("The quick brown fox " * 12, " sleeps"),
    ("", "Empty context"),
    ("Hi", "!"),
    ("Café 🙂", " déjà vu"),
    ("A longer prompt that goes on " * 5, " and ends"),
    ("Hi", "!"),
]
TEXTS = ["a", "Hello world", "The quick brown fox " * 5, "Café 🙂"]
LAYERS = [0, 1, -1]


def make_scorer(accelerator=None):
    from forgetlab.models import ModelSpec, load_model
    from forgetlab.scoring import Scorer

    model, tokenizer = load_model(ModelSpec(name="tiny-llama", tiny={"seed": 5, "initializer_range": 0.2}))
    return Scorer(model, tokenizer, batch_size=2, max_tokens_per_batch=256, accelerator=accelerator, progress=False)


def score(scorer) -> dict:
    """Scores and hidden states of the fixed inputs (JSON-friendly)."""
    results = scorer.loglikelihood(REQUESTS)
    hidden = scorer.hidden_states(TEXTS, LAYERS)
    tokens = scorer.token_scores(REQUESTS)
    return {
        "token_logprobs": [t.logprobs.tolist() for t in tokens],
        "token_sigma": [t.sigma.tolist() for t in tokens],
        "logprobs": [r.logprob for r in results],
        "greedy": [r.is_greedy for r in results],
        "n_tokens": [r.n_tokens for r in results],
        "hidden": {str(k): v.tolist() for k, v in hidden.items()},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_gather_the_single_process_result(tmp_path: Path):
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if launcher is None:
        pytest.skip("accelerate CLI not installed")
    command = [
        launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
        __file__, str(tmp_path),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    expected = score(make_scorer())
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["world"] == 2 and got["rank"] == rank
        assert got["greedy"] == expected["greedy"] and got["n_tokens"] == expected["n_tokens"]
        assert got["logprobs"] == pytest.approx(expected["logprobs"], abs=1e-5)
        for key in ("token_logprobs", "token_sigma"):
            for a, b in zip(got[key], expected[key], strict=True):
                np.testing.assert_allclose(a, b, atol=1e-5)
        for layer in map(str, LAYERS):
            np.testing.assert_allclose(got["hidden"][layer], expected["hidden"][layer], atol=1e-5)
        # both processes did work: the shard sizes are recorded by the worker
        assert got["rows"] > 0


def _worker(out_dir: str) -> None:
    import torch
    from accelerate import Accelerator

    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    scorer = make_scorer(accelerator)
    result = score(scorer)
    # how many context groups this process ran: the work really was sharded
    groups = scorer._plan(scorer._encode_jobs(REQUESTS, None)[0])
    owners = scorer._shard([sum(len(r.tokens) for r in g) for g in groups])
    rank = accelerator.process_index
    result.update(world=accelerator.num_processes, rank=rank, rows=owners.count(rank))
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    _worker(sys.argv[1])
