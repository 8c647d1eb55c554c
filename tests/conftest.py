"""Shared fixtures: tiny models, hand-made items, the shared data folder, the tiny Study A recipes."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import pytest
import torch

from forgetlab.data.types import MCDoc
from forgetlab.methods import METHODS, Batch
from forgetlab.models import ModelSpec, load_model

SHARED_DATA = Path(os.environ.get("FORGETLAB_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def shared_data_root() -> Path:
    """The shared benchmark data folder ($FORGETLAB_DATA or ../shared/data); skips the calling test without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA} (set FORGETLAB_DATA)")
    return SHARED_DATA


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


# --------------------------------------------------------------------------- unlearning methods: losses by hand
# Every method's loss is recomputed with plain Python floats from per-row log-probabilities (or hidden states) of
# separate, unpadded forward passes, so padding, masking, reductions and signs are all checked.


@pytest.fixture(scope="module")
def tiny_pair():
    """The tiny model and a differently seeded one as its frozen reference, both in eval mode."""
    model, _ = load_model("tiny-llama")
    reference, _ = load_model(ModelSpec(name="tiny-llama", tiny={"seed": 1}))
    return model.eval(), reference.eval()


def forget_batch(gold=(1,), n_choices=2):
    # two rows, right-padded (pad id 0); answers start at position 3 (row 0) and 2 (row 1)
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    labels = torch.tensor([[-100, -100, -100, 8, 9], [-100, -100, 12, 13, -100]])
    return Batch(ids, mask, labels, torch.tensor(gold), n_choices=n_choices)


def retain_batch():
    ids = torch.tensor([[40, 41, 42, 43, 44, 45], [50, 51, 52, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    labels = torch.tensor([[-100, 41, 42, 43, 44, 45], [-100, -100, 52, -100, -100, -100]])
    return Batch(ids, mask, labels, torch.tensor([0, 0]), n_choices=1)


def unpadded_rows(model, batch):
    """Per row: (unpadded ids, labelled positions, log-softmax of each position's logits)."""
    out = []
    for r in range(batch.input_ids.shape[0]):
        length = int(batch.attention_mask[r].sum())
        ids = batch.input_ids[r, :length]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids[None]).logits[0].double(), -1)
        positions = [p for p in range(1, length) if batch.labels[r, p] != -100]
        out.append((ids, positions, logp))
    return out


def hand_logprobs(model, batch):
    """Summed log-prob of each row's labelled tokens, and their count."""
    sums, counts = [], []
    for ids, positions, logp in unpadded_rows(model, batch):
        sums.append(sum(logp[p - 1, ids[p]].item() for p in positions))
        counts.append(len(positions))
    return sums, counts


def hand_nll(model, batch, reduction="mean"):
    sums, counts = hand_logprobs(model, batch)
    return -sum(sums) / len(sums) if reduction == "sum" else -sum(sums) / sum(counts)


def hand_kl(model, reference, batch):
    """Mean over labelled positions of KL(p_ref || p_model)."""
    terms = []
    for (ids, positions, logp), (_, _, ref_logp) in zip(unpadded_rows(model, batch), unpadded_rows(reference, batch)):
        for p in positions:
            q, r = logp[p - 1], ref_logp[p - 1]
            terms.append(sum(math.exp(rv) * (rv - qv) for rv, qv in zip(r.tolist(), q.tolist())))
    return sum(terms) / len(terms)


def log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def make_method(name, reference=None, **options):
    """The registered method with its options, given a copy of ``reference`` as its frozen model."""
    method = METHODS.get(name)(**options)
    if reference is not None:
        method.attach_reference(copy.deepcopy(reference))
    return method


def loss_value(method, model, batch, retain=None):
    """The method's loss on one batch, as a float."""
    with torch.no_grad():
        return method.loss(model, batch, retain).item()


def sgd_step(method, model, batch, retain=None, lr=1e-2):
    """A copy of the model after one SGD step on the method's loss."""
    trained = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(trained.parameters(), lr=lr)
    method.loss(trained, batch, retain).backward()
    optimizer.step()
    return trained.eval()


# --------------------------------------------------------------------------- the unlearn experiment: a tiny recipe


COLOURS = ("red", "blue", "green", "tall", "small", "old")
TEXTS = [f"Item {i}: the {COLOURS[i % 6]} fox number {i * 7} jumps over {i % 5} logs." for i in range(80)]


def unlearn_raw_config(method="gradient_ascent", **forget):
    """A raw ``unlearn`` recipe on the tiny model and inline texts: forget/holdout/retain/utility sets, 2 steps."""
    return {
        "experiment": "unlearn",
        "name": "tiny",
        "cpu_threads": 1,
        "model": {"name": "tiny-llama"},
        "sources": {"texts": {"kind": "inline", "items": TEXTS, "prompt_words": 3}},
        "sets": {
            "forget": {"source": "texts", "size": 8},
            "holdout": {"source": "texts", "size": 8},
            "retain": {"source": "texts", "size": 8},
            "utility": {"source": "texts", "size": 6},
        },
        "forget": {"method": method, "lr": 3e-3, "max_steps": 2, "batch_size": 4, "eval_every": 2, **forget},
        "eval": {"batch_size": 16},
        "mia": {"bootstrap": 50},
    }


@pytest.fixture(scope="module")
def probe_budgets():
    """The ``max_tokens_per_batch`` of every Scorer the linear probe attack builds while the module runs."""
    from forgetlab.attacks import probe
    from forgetlab.scoring import Scorer

    budgets: list[int] = []

    class Recording(Scorer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            budgets.append(self.max_tokens_per_batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(probe, "Scorer", Recording)
        yield budgets
