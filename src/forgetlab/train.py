"""The one training loop: any registered method, on one or many processes (Accelerate).

Data order is a pure function of (seed, epoch), sharded by rank, so a run resumed from a checkpoint
sees exactly the batches it would have seen, and N processes see the same global batches as one
process with N times the batch size.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase, get_scheduler

from forgetlab.config import OptimSpec
from forgetlab.data.types import MCDoc
from forgetlab.interrupt import Interrupted, deferred, pending
from forgetlab.methods import METHODS, Batch, Method
from forgetlab.scoring import encode_pair

EvalFn = Callable[[int], list[dict[str, Any]]]


class DivergenceError(RuntimeError):
    """The loss or the weights became NaN/inf; the stage is not recorded as a result."""


@dataclass
class EncodedItem:
    """Token ids of every choice of one item, and where each choice's answer starts.

    A (prompt, target) pair is an item with a single choice and ``gold = 0``.
    """

    doc_id: str
    sequences: list[list[int]]
    answer_starts: list[int]
    gold: int


def encode_items(tokenizer: PreTrainedTokenizerBase, docs: Sequence[MCDoc], max_length: int) -> list[EncodedItem]:
    """Tokenise every choice exactly as the scoring engine does; over-long items are an error."""
    items = []
    for doc in docs:
        sequences, starts = [], []
        for choice in range(doc.n_choices):
            ctx, cont = encode_pair(tokenizer, *doc.request(choice))
            if len(ctx) + len(cont) > max_length:
                raise ValueError(
                    f"{doc.task} item {doc.doc_id}: {len(ctx) + len(cont)} tokens, longer than the model's "
                    f"{max_length}; drop long items with data.max_chars"
                )
            sequences.append(ctx + cont)
            starts.append(len(ctx))
        items.append(EncodedItem(doc.doc_id, sequences, starts, doc.gold))
    return items


def collate(items: Sequence[EncodedItem], mode: str, pad_id: int) -> Batch:
    """Right-pad the rows a loss needs: the gold choice, or every choice for the ``choice`` loss."""
    rows: list[tuple[list[int], int]] = []
    for item in items:
        choices = range(len(item.sequences)) if mode == "choice" else [item.gold]
        rows.extend((item.sequences[c], 0 if mode == "full" else item.answer_starts[c]) for c in choices)
    width = max(len(seq) for seq, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (seq, start) in enumerate(rows):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
        labels[i, max(start, 1) : len(seq)] = torch.tensor(seq[max(start, 1) :])
    n_choices = len(items[0].sequences) if mode == "choice" else 1
    gold = torch.tensor([item.gold for item in items], dtype=torch.long)
    return Batch(input_ids, attention, labels, gold, n_choices)


def steps_per_epoch(n_items: int, spec: OptimSpec, world_size: int) -> int:
    micro = math.ceil(n_items / (spec.batch_size * world_size))
    return math.ceil(micro / spec.grad_accum)


def total_steps(n_items: int, spec: OptimSpec, world_size: int) -> int:
    """Optimizer steps of a stage: ``max_steps`` if set, else ``epochs`` passes over the items."""
    if spec.max_steps is not None:
        return spec.max_steps
    return max(1, math.ceil(spec.epochs * steps_per_epoch(n_items, spec, world_size)))


def micro_batches(
    n_items: int, spec: OptimSpec, seed: int, rank: int, world_size: int, shuffle: bool = True
) -> Iterator[list[int]]:
    """Endless stream of this rank's item indices, epoch after epoch; order depends only on (seed, epoch).

    ``shuffle=False`` keeps the items' given order in every epoch (for callers that build the stream).
    """
    global_size = spec.batch_size * world_size
    epoch = 0
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(n_items).tolist() if shuffle else list(range(n_items))
        n_batches = math.ceil(n_items / global_size)
        padded = order + order[: n_batches * global_size - n_items]  # even batches on every rank
        for b in range(n_batches):
            chunk = padded[b * global_size : (b + 1) * global_size]
            yield chunk[rank * spec.batch_size : (rank + 1) * spec.batch_size]
        epoch += 1


@dataclass
class StageResult:
    steps: int
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def train_stage(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    docs: Sequence[MCDoc],
    spec: OptimSpec,
    *,
    seed: int,
    accelerator: Accelerator,
    evaluate: EvalFn | None = None,
    checkpoint_dir: Path | None = None,
    desc: str = "train",
) -> StageResult:
    """Train ``model`` in place with ``spec.method`` on multiple-choice ``docs`` (relabelled by the method)."""
    method = METHODS.get(spec.method)(loss=spec.loss, reduction=spec.reduction)
    items = encode_items(tokenizer, method.relabel(docs, seed), _max_length(model))
    return train_items(
        model, items, method, spec, pad_id=tokenizer.pad_token_id, seed=seed, accelerator=accelerator,
        evaluate=evaluate, checkpoint_dir=checkpoint_dir, desc=desc,
    )


def train_items(
    model: torch.nn.Module,
    items: Sequence[EncodedItem],
    method: Method,
    spec: OptimSpec,
    *,
    pad_id: int,
    seed: int,
    accelerator: Accelerator,
    evaluate: EvalFn | None = None,
    checkpoint_dir: Path | None = None,
    desc: str = "train",
    shuffle: bool = True,
    retain_items: Sequence[EncodedItem] | None = None,
) -> StageResult:
    """Train ``model`` in place on encoded items; evaluate every ``spec.eval_every`` steps.

    Methods that need retain data get one batch of ``retain_items`` per forget batch, in their own
    seeded order; methods that need a reference get a frozen copy of the model as it was before.

    ``evaluate(step)`` returns records that are kept in the trajectory (it runs on every process).
    With ``checkpoint_dir`` and ``spec.checkpoint_every``, a killed stage resumes from its last checkpoint;
    with ``checkpoint_dir``, a SIGTERM (see :mod:`forgetlab.interrupt`) saves one at the end of the current
    step before the stage stops with :class:`~forgetlab.interrupt.Interrupted`.
    """
    if method.needs_retain and not retain_items:
        raise ValueError(f"{desc}: method {method.name} needs retain items and none were given")
    if method.needs_reference:
        method.attach_reference(copy.deepcopy(model))
    n_steps = total_steps(len(items), spec, accelerator.num_processes)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    scheduler = get_scheduler(spec.scheduler, optimizer, num_warmup_steps=spec.warmup_steps, num_training_steps=n_steps)
    wrapped, optimizer = accelerator.prepare(model, optimizer)

    result = StageResult(steps=0)
    _seed_everything(seed)
    saved = _checkpoint_folder(checkpoint_dir) if checkpoint_dir is not None else None
    if saved is not None:
        result = _load_checkpoint(saved, accelerator.unwrap_model(wrapped), optimizer, scheduler)
    if evaluate is not None and result.steps == 0 and spec.eval_every:
        result.trajectory.extend(evaluate(0))

    stream = micro_batches(len(items), spec, seed, accelerator.process_index, accelerator.num_processes, shuffle)
    retain_stream = None
    if method.needs_retain:
        retain_stream = micro_batches(len(retain_items), spec, seed + 1, accelerator.process_index, accelerator.num_processes)
    for _ in range(result.steps * spec.grad_accum):  # replay the order up to the resume point
        next(stream)
        if retain_stream is not None:
            next(retain_stream)
    bar = tqdm(total=n_steps, initial=result.steps, desc=desc, disable=not accelerator.is_main_process, dynamic_ncols=True)
    wrapped.train()
    while result.steps < n_steps:
        with deferred():  # a SIGTERM waits for the end of this step (and its evaluation), then checkpoints
            step_loss = 0.0
            for _ in range(spec.grad_accum):
                batch = collate([items[i] for i in next(stream)], spec.loss, pad_id)
                retain = collate([retain_items[i] for i in next(retain_stream)], spec.loss, pad_id) if retain_stream else None
                loss = method.loss(wrapped, batch, retain) / spec.grad_accum
                if not torch.isfinite(loss):
                    raise DivergenceError(f"{desc}: loss became {loss.item()} at step {result.steps + 1}")
                accelerator.backward(loss)
                step_loss += loss.item()
            if spec.max_grad_norm is not None:
                accelerator.clip_grad_norm_(params, spec.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.steps += 1
            if accelerator.num_processes > 1:  # log the loss of the global batch, not of rank 0's share
                step_loss = accelerator.reduce(torch.tensor([step_loss]), reduction="mean").item()
            result.losses.append(step_loss)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}")
            if evaluate is not None and spec.eval_every and (result.steps % spec.eval_every == 0 or result.steps == n_steps):
                result.trajectory.extend(evaluate(result.steps))
                wrapped.train()
            if checkpoint_dir is not None and spec.checkpoint_every and result.steps % spec.checkpoint_every == 0:
                _check_finite(accelerator.unwrap_model(wrapped), desc, result.steps)
                _save_checkpoint(checkpoint_dir, accelerator, wrapped, optimizer, scheduler, result)
        signum = _agreed_interruption(accelerator)
        if signum is not None:
            bar.close()
            if checkpoint_dir is not None:
                _check_finite(accelerator.unwrap_model(wrapped), desc, result.steps)
                _save_checkpoint(checkpoint_dir, accelerator, wrapped, optimizer, scheduler, result)
            raise Interrupted(signum)
    bar.close()
    model = accelerator.unwrap_model(wrapped)
    _check_finite(model, desc, result.steps)
    model.eval()
    accelerator.free_memory()
    return result


def _agreed_interruption(accelerator: Accelerator) -> int | None:
    """The signal that asked this process to stop during the last step; with several processes, every
    process stops at the same step when any of them was asked (so that none waits for the others)."""
    signum = pending()
    if accelerator.num_processes == 1:
        return signum
    flag = accelerator.reduce(torch.tensor([float(signum or 0)]), reduction="sum").item()
    return signum or (int(signal.SIGTERM) if flag else None)


def _max_length(model: torch.nn.Module) -> int:
    config = getattr(model, "config", None)
    return int(getattr(config, "max_position_embeddings", 2048) or 2048)


def _check_finite(model: torch.nn.Module, desc: str, step: int) -> None:
    for name, param in model.named_parameters():
        if not torch.isfinite(param).all():
            raise DivergenceError(f"{desc}: parameter {name} became NaN/inf by step {step}")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that training changes (all of them, or only the LoRA adapters)."""
    return {name: p.detach().contiguous().clone() for name, p in model.named_parameters() if p.requires_grad}


def save_state(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors to a safetensors file atomically (a killed run never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(state, str(tmp))
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save_checkpoint(
    directory: Path, accelerator: Accelerator, wrapped: torch.nn.Module, optimizer: Any, scheduler: Any, result: StageResult
) -> None:
    """Write model, optimiser, schedule and progress to a fresh folder, then swap it in.

    The swap renames the current checkpoint to ``*.old`` before moving the new one in; a process
    killed between the two renames leaves ``*.old``, which :func:`_checkpoint_folder` falls back to.
    """
    if accelerator.is_main_process:
        staging = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir(parents=True)
            save_file(trainable_state(accelerator.unwrap_model(wrapped)), str(staging / "model.safetensors"))
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staging / "optim.pt")
            torch.save({"torch": torch.get_rng_state()}, staging / "rng.pt")
            state = {"steps": result.steps, "trajectory": result.trajectory, "losses": result.losses}
            (staging / "state.json").write_text(json.dumps(state))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        old = directory.with_name(directory.name + ".old")
        if directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
        os.replace(staging, directory)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _checkpoint_folder(directory: Path) -> Path | None:
    """The complete checkpoint of a stage: ``directory``, or ``directory.old`` left by an interrupted swap."""
    for folder in (directory, directory.with_name(directory.name + ".old")):
        if (folder / "state.json").is_file():
            return folder
    return None


def _load_checkpoint(directory: Path, model: torch.nn.Module, optimizer: Any, scheduler: Any) -> StageResult:
    model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=False)
    states = torch.load(directory / "optim.pt", weights_only=True)
    optimizer.load_state_dict(states["optimizer"])
    scheduler.load_state_dict(states["scheduler"])
    torch.set_rng_state(torch.load(directory / "rng.pt", weights_only=True)["torch"])
    state = json.loads((directory / "state.json").read_text())
    return StageResult(steps=state["steps"], trajectory=state["trajectory"], losses=state["losses"])
