"""The training loop (forgetlab/train.py) on its own: data order, batching, steps, collation, divergence,
checkpoints and resume, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from collections import namedtuple

import numpy as np
import pytest
import torch
from accelerate import Accelerator

import forgetlab.train as train
from forgetlab.config import OptimSpec
from forgetlab.interrupt import Interrupted, handle_sigterm
from forgetlab.methods import METHODS
from forgetlab.models import load_model
from forgetlab.train import DivergenceError, collate, encode_items, micro_batches, steps_per_epoch, total_steps, train_items
from tests.conftest import make_docs

pytestmark = pytest.mark.usefixtures("one_thread")


def _spec(**changes) -> OptimSpec:
    return OptimSpec(**{"method": "finetune", "lr": 1e-3, "batch_size": 4, "max_grad_norm": 1.0, **changes})


def test_steps_per_epoch_and_total_steps_by_hand():
    spec = _spec(batch_size=4, grad_accum=2, epochs=2.5)
    assert steps_per_epoch(30, spec, world_size=1) == 4  # ceil(ceil(30 / 4) / 2)
    assert steps_per_epoch(30, spec, world_size=2) == 2  # ceil(ceil(30 / 8) / 2)
    assert total_steps(30, spec, world_size=1) == 10  # ceil(2.5 * 4)
    assert total_steps(30, _spec(max_steps=7), world_size=1) == 7


def test_micro_batches_depend_only_on_seed_and_epoch_and_shard_the_global_batch():
    spec = _spec(batch_size=3)
    one = micro_batches(10, _spec(batch_size=6), seed=5, rank=0, world_size=1)
    first_epoch = [next(one) for _ in range(2)]
    order = np.random.default_rng([5, 0]).permutation(10).tolist()
    assert first_epoch == [order[:6], order[6:] + order[:2]]  # the last batch is padded from the start
    ranks = [micro_batches(10, spec, seed=5, rank=r, world_size=2) for r in (0, 1)]
    global_batches = [next(ranks[0]) + next(ranks[1]) for _ in range(2)]
    assert global_batches == first_epoch  # two processes of 3 see what one process of 6 sees
    assert next(one) == np.random.default_rng([5, 1]).permutation(10).tolist()[:6]  # epoch 1


def test_collate_masks_the_prompt_and_right_pads(tiny):
    _, tokenizer = tiny
    items = encode_items(tokenizer, make_docs(2), max_length=64)
    batch = collate(items, "answer", pad_id=tokenizer.pad_token_id)
    for row, item in enumerate(items):
        seq, start = item.sequences[item.gold], item.answer_starts[item.gold]
        assert batch.input_ids[row, : len(seq)].tolist() == seq
        assert (batch.labels[row, :start] == -100).all() and batch.labels[row, start : len(seq)].tolist() == seq[start:]
        assert (batch.labels[row, len(seq) :] == -100).all() and (batch.attention_mask[row, len(seq) :] == 0).all()
    choice = collate(items, "choice", pad_id=tokenizer.pad_token_id)
    assert choice.input_ids.shape[0] == 4 and choice.n_choices == 2 and choice.gold.tolist() == [i.gold for i in items]


def _train(model, tokenizer, spec, **kwargs):
    items = encode_items(tokenizer, make_docs(16), max_length=64)
    method = METHODS.get(spec.method)(loss=spec.loss)
    return train_items(model, items, method, spec, pad_id=tokenizer.pad_token_id, seed=0, accelerator=Accelerator(cpu=True), **kwargs)


def test_fine_tuning_lowers_the_loss_and_evaluates_on_schedule():
    model, tokenizer = load_model("tiny-llama")
    evaluated = []
    result = _train(model, tokenizer, _spec(lr=1e-2, epochs=4, eval_every=3), evaluate=lambda step: evaluated.append(step) or [])
    assert result.steps == 16 and len(result.losses) == 16
    assert np.mean(result.losses[-4:]) < np.mean(result.losses[:4]) - 0.5
    assert evaluated == [0, 3, 6, 9, 12, 15, 16]  # before, every 3 steps, and at the end
    assert not model.training


def test_divergence_names_the_stage_and_step(monkeypatch):
    model, tokenizer = load_model("tiny-llama")
    finetune = METHODS.get("finetune")
    real_loss, calls = finetune.loss, []

    def loss_turning_nan(self, model, batch, retain=None):
        calls.append(1)
        value = real_loss(self, model, batch, retain)
        return value * float("nan") if len(calls) == 3 else value

    monkeypatch.setattr(finetune, "loss", loss_turning_nan, raising=False)
    with pytest.raises(DivergenceError, match=r"^fine-tune: loss became nan at step 3$"):
        _train(model, tokenizer, _spec(max_steps=8), desc="fine-tune")


def test_weights_that_became_infinite_are_never_returned():
    model, tokenizer = load_model("tiny-llama")

    def poison(step: int) -> list:
        if step == 4:  # after the last step: only the final check can catch it
            with torch.no_grad():
                next(model.parameters()).fill_(float("inf"))
        return []

    with pytest.raises(DivergenceError, match=r"fine-tune: parameter model.embed_tokens.weight became NaN/inf by step \d+"):
        _train(model, tokenizer, _spec(max_steps=4, eval_every=1), evaluate=poison, desc="fine-tune")


def test_resuming_from_a_checkpoint_equals_training_through(tmp_path):
    spec = _spec(lr=1e-2, max_steps=6, checkpoint_every=2)
    straight, tokenizer = load_model("tiny-llama")
    expected = _train(straight, tokenizer, spec, checkpoint_dir=tmp_path / "a")
    real_save = train._save_checkpoint

    def stop_after_step_4(directory, accelerator, wrapped, optimizer, scheduler, result):
        real_save(directory, accelerator, wrapped, optimizer, scheduler, result)
        if result.steps == 4:
            raise KeyboardInterrupt

    killed, _ = load_model("tiny-llama")
    train._save_checkpoint = stop_after_step_4
    try:
        with pytest.raises(KeyboardInterrupt):
            _train(killed, tokenizer, spec, checkpoint_dir=tmp_path / "b")
    finally:
        train._save_checkpoint = real_save
    assert json.loads((tmp_path / "b" / "state.json").read_text())["steps"] == 4
    resumed_model, _ = load_model("tiny-llama")
    resumed = _train(resumed_model, tokenizer, spec, checkpoint_dir=tmp_path / "b")
    assert resumed.losses == expected.losses
    for (name, a), b in zip(straight.named_parameters(), resumed_model.parameters()):
        assert torch.equal(a, b), name


def test_sigterm_finishes_the_step_saves_a_checkpoint_and_stops(tmp_path):
    model, tokenizer = load_model("tiny-llama")

    def evaluate(step: int) -> list:
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while step 2 is being evaluated
        return [{"step": step}]

    with handle_sigterm(), pytest.raises(Interrupted, match="SIGTERM"):
        _train(model, tokenizer, _spec(max_steps=6, eval_every=1), evaluate=evaluate, checkpoint_dir=tmp_path / "c")
    state = json.loads((tmp_path / "c" / "state.json").read_text())
    assert state["steps"] == 2 and [r["step"] for r in state["trajectory"]] == [0, 1, 2]


def test_a_checkpoint_swap_killed_halfway_falls_back_to_the_previous_one(tmp_path):
    previous = tmp_path / "forget-checkpoint.old"
    previous.mkdir()
    (previous / "state.json").write_text("{}")
    assert train._checkpoint_folder(tmp_path / "forget-checkpoint") == previous
    assert train._checkpoint_folder(tmp_path / "other-checkpoint") is None


def test_save_state_leaves_nothing_half_written(tmp_path, monkeypatch):
    def full_disk(state, filename):
        open(filename, "wb").write(b"\0" * 10)
        raise OSError(28, "No space left on device", filename)

    monkeypatch.setattr(train, "save_file", full_disk)
    with pytest.raises(OSError, match="No space"):
        train.save_state({"w": torch.zeros(2)}, tmp_path / "weights.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_training_loop_keeps_the_given_order_without_shuffle():
    spec = OptimSpec(method="finetune", batch_size=4)
    batches = micro_batches(10, spec, seed=0, rank=0, world_size=1, shuffle=False)
    assert [next(batches) for _ in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]
    shuffled = micro_batches(10, spec, seed=0, rank=0, world_size=1)
    assert next(shuffled) != [0, 1, 2, 3]


def test_pack_rows_fills_lines_first_fit_decreasing_by_hand():
    # rows of 3, 5 and 2 tokens: two lines of 5 (10 slots, no padding) cost less attention than one of 10
    rows = [([1, 2, 3], 1), ([4, 5, 6, 7, 8], 3), ([9, 10], 0)]
    batch = train.pack_rows(rows, 0, torch.tensor([0, 0, 0]), 1)
    assert batch.input_ids.tolist() == [[4, 5, 6, 7, 8], [1, 2, 3, 9, 10]]
    assert batch.row_ids.tolist() == [[1, 1, 1, 1, 1], [0, 0, 0, 2, 2]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 0, 1]]
    assert batch.labels.tolist() == [[-100, -100, -100, 7, 8], [-100, 2, 3, -100, 10]]  # a row's first token never
    second = batch.attention_mask[1].int().tolist()
    assert second == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1]]
    # 3 + 1 > 3, so lines as wide as the longest row would need two (6 slots, 2 padded); one line of 4 holds both
    joined = train.pack_rows([([1, 2, 3], 1), ([4], 0)], 0, torch.tensor([0, 0]), 1)
    assert joined.input_ids.tolist() == [[1, 2, 3, 4]] and joined.position_ids.tolist() == [[0, 1, 2, 0]]
    assert joined.attention_mask[0].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]]


@pytest.mark.parametrize("lengths, width", [
    ([2, 2, 2, 2], 2),  # every width holds 8 tokens in 8 slots: the narrowest, its attention is cheapest
    ([3, 1], 4),  # one line of 4 slots beats two of 3
    ([2000, 1100, 1000], 4100),  # 3 lines of 2000 (6000 slots, x 1.58) cost more than one of 4100 (x 2.19)
    ([3000, 1700, 1500], 3000),  # 3 lines of 3000 (9000 slots, x 1.87) cost less than one of 6200 (x 2.79)
])
def test_line_width_weighs_padding_against_attention(lengths, width):
    chosen, lines = train.cheapest_lines(lengths)
    assert chosen == width
    assert lines == train.first_fit_decreasing(lengths, width)


@pytest.mark.parametrize("mode", ["answer", "choice", "full"])
def test_packed_batches_give_the_padded_numbers_and_gradients(tiny, mode):
    from forgetlab.methods.base import sequence_logprobs

    from forgetlab.data.types import MCDoc

    model, tokenizer = tiny
    docs = [MCDoc("toy", f"t-{i}", (f"{'ab' * (1 + 5 * (i % 3))} {i}=",) * 2, (" yes", " no"), i % 2) for i in range(6)]
    items = encode_items(tokenizer, docs, 512)
    results = {}
    for pack in (False, True):
        model.zero_grad()
        batch = collate(items, mode, tokenizer.pad_token_id, pack=pack)
        total, count = sequence_logprobs(model, batch)
        total.sum().backward()
        results[pack] = (total.detach(), count, [p.grad.clone() for p in model.parameters()])
    padded, packed = results[False], results[True]
    assert collate(items, mode, tokenizer.pad_token_id, pack=True).input_ids.shape[0] < len(items) * (2 if mode == "choice" else 1)
    assert packed[1].tolist() == padded[1].tolist()
    torch.testing.assert_close(packed[0], padded[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(packed[2], padded[2]):
        assert torch.isfinite(a).all()  # padding positions attend to themselves: no NaN
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_a_failed_checkpoint_write_is_an_os_error_naming_the_file(tmp_path, monkeypatch):
    def zip_writer_fails(obj, path):  # what torch.save raises when the disk fills up under it
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(train.torch, "save", zip_writer_fails)
    target = tmp_path / "optim.pt"
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1024))
    with pytest.raises(OSError) as full:
        train._torch_save({}, target)
    assert (full.value.errno, full.value.strerror, full.value.filename) == (errno.ENOSPC, "No space left on device", str(target))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, 10**12))
    with pytest.raises(OSError) as other:
        train._torch_save({}, target)
    assert other.value.errno == errno.EIO and other.value.filename == str(target) and "unexpected pos" in other.value.strerror
