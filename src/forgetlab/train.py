"""The one training loop: any registered method, on one or many processes (Accelerate).

Data order is a pure function of (seed, epoch), sharded by rank, so a run resumed from a checkpoint
sees exactly the batches it would have seen, and N processes see the same global batches as one
process with N times the batch size.
"""

from __future__ import annotations

import copy
import errno
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
from forgetlab.data.types import MCDoc, Pair
from forgetlab.interrupt import Interrupted, deferred, pending
from forgetlab.methods import METHODS, Batch, Method
from forgetlab.models import accepts_custom_masks
from forgetlab.precision import forward_autocast
from forgetlab.scoring import encode_pair, resolve_max_length
from forgetlab.scoring.encoding import Boundary

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


def encode_requests(
    tokenizer: PreTrainedTokenizerBase,
    item_id: str,
    requests: Sequence[tuple[str, str]],
    gold: int,
    max_length: int,
    *,
    eos_id: int | None = None,
    name: str = "",
    hint: str = "",
    boundary: Boundary = "lm_eval",
) -> EncodedItem:
    """The one encoder: each (context, continuation) request tokenised exactly as the scoring engine does
    (plus ``eos_id`` after the continuation when given; ``boundary`` as the scorer's); an item longer than
    ``max_length`` is an error naming it (``name``, default ``item <id>``) and saying what to do (``hint``)."""
    sequences, starts = [], []
    for context, continuation in requests:
        ctx, cont = encode_pair(tokenizer, context, continuation, boundary=boundary)
        sequence = ctx + cont + ([eos_id] if eos_id is not None else [])
        if len(sequence) > max_length:
            raise ValueError(f"{name or f'item {item_id}'}: {len(sequence)} tokens, longer than the model's {max_length}{hint}")
        sequences.append(sequence)
        starts.append(len(ctx))
    return EncodedItem(item_id, sequences, starts, gold)


def encode_items(tokenizer: PreTrainedTokenizerBase, docs: Sequence[MCDoc], max_length: int) -> list[EncodedItem]:
    """Every choice of every multiple-choice item (:func:`encode_requests`)."""
    return [
        encode_requests(
            tokenizer, doc.doc_id, [doc.request(c) for c in range(doc.n_choices)], doc.gold, max_length,
            name=f"{doc.task} item {doc.doc_id}", hint="; drop long items with data.max_chars",
        )
        for doc in docs
    ]


def encode_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Pair], max_length: int, *, eos: bool = False) -> list[EncodedItem]:
    """(prompt, target) pairs as single-choice items (:func:`encode_requests`), with the tokenizer's EOS after
    the target when ``eos``; a pair repeated in the list is encoded once."""
    eos_id = tokenizer.eos_token_id if eos else None
    cache: dict[str, EncodedItem] = {}
    for pair in pairs:
        if pair.pair_id not in cache:
            cache[pair.pair_id] = encode_requests(tokenizer, pair.pair_id, [pair.request()], 0, max_length, eos_id=eos_id, name=f"pair {pair.pair_id}")
    return [cache[pair.pair_id] for pair in pairs]


def collate(items: Sequence[EncodedItem], mode: str, pad_id: int, *, pack: bool = False) -> Batch:
    """The rows a loss needs (the gold choice, or every choice for the ``choice`` loss), right-padded, or with
    ``pack`` packed side by side into lines (:func:`pack_rows`)."""
    rows: list[tuple[list[int], int]] = []
    for item in items:
        choices = range(len(item.sequences)) if mode == "choice" else [item.gold]
        rows.extend((item.sequences[c], 0 if mode == "full" else item.answer_starts[c]) for c in choices)
    n_choices = len(items[0].sequences) if mode == "choice" else 1
    gold = torch.tensor([item.gold for item in items], dtype=torch.long)
    if pack:
        return pack_rows(rows, pad_id, gold, n_choices)
    width = max(len(seq) for seq, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (seq, start) in enumerate(rows):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
        labels[i, max(start, 1) : len(seq)] = torch.tensor(seq[max(start, 1) :])
    return Batch(input_ids, attention, labels, gold, n_choices)


#: The line width at which a token's attention costs about as much as its linear layers: ~(8d + 6f)/4 for hidden
#: size d and MLP size f, 3456 for SmolLM2-135M. Larger models make attention relatively cheaper, so this errs
#: toward narrower lines.
ATTENTION_WIDTH = 3456


def first_fit_decreasing(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Row indices packed into lines of ``width`` tokens, longest rows first, each into the first line with room."""
    lines: list[list[int]] = []
    room: list[int] = []
    for row in sorted(range(len(lengths)), key=lambda r: (-lengths[r], r)):
        line = next((i for i, free in enumerate(room) if free >= lengths[row]), None)
        if line is None:
            lines.append([])
            room.append(width)
            line = len(lines) - 1
        lines[line].append(row)
        room[line] -= lengths[row]
    return lines


def cheapest_lines(lengths: Sequence[int]) -> tuple[int, list[list[int]]]:
    """The line width that costs least, and the rows packed into lines of it (:func:`first_fit_decreasing`): of
    the longest row and the widths that would hold all tokens in 1, 2, ... lines, the one minimising (lines ×
    width) token slots, each weighted by ``1 + width / ATTENTION_WIDTH`` for attention over the line (narrowest
    on ties)."""
    longest, total = max(lengths), sum(lengths)
    widths = sorted({longest} | {max(longest, -(-total // m)) for m in range(1, len(lengths) + 1)})
    def cost(packing: tuple[int, list[list[int]]]) -> tuple[float, int]:
        width, lines = packing
        return len(lines) * width * (1 + width / ATTENTION_WIDTH), width

    return min(((width, first_fit_decreasing(lengths, width)) for width in widths), key=cost)


def pack_rows(rows: Sequence[tuple[list[int], int]], pad_id: int, gold: torch.Tensor, n_choices: int) -> Batch:
    """Rows ``(tokens, answer start)`` packed first-fit decreasing into lines as wide as :func:`cheapest_lines`
    finds (never narrower than the longest row, so no more lines than padding would use, often far fewer). Each
    row attends only to itself (a block-diagonal causal mask), with positions from 0, so its numbers are those of
    the padded batch up to float rounding; a padding position attends only to itself (a fully masked line would
    give NaN)."""
    lengths = [len(seq) for seq, _ in rows]
    width, lines = cheapest_lines(lengths)
    shape = (len(lines), width)
    input_ids, labels = torch.full(shape, pad_id, dtype=torch.long), torch.full(shape, -100, dtype=torch.long)
    row_ids, position_ids = torch.full(shape, -1, dtype=torch.long), torch.zeros(shape, dtype=torch.long)
    allowed = torch.eye(width, dtype=torch.bool).repeat(len(lines), 1, 1)
    for line, members in enumerate(lines):
        offset = 0
        for row in members:
            (seq, start), n = rows[row], lengths[row]
            span = slice(offset, offset + n)
            input_ids[line, span] = torch.tensor(seq)
            labels[line, offset + max(start, 1) : offset + n] = torch.tensor(seq[max(start, 1) :])
            row_ids[line, span], position_ids[line, span] = row, torch.arange(n)
            allowed[line, span, span] = torch.ones(n, n, dtype=torch.bool).tril()
            offset += n
    return Batch(input_ids, allowed, labels, gold, n_choices, row_ids=row_ids, position_ids=position_ids)


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
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, docs: Sequence[MCDoc], spec: OptimSpec, *,
    seed: int, accelerator: Accelerator, **loop: Any,
) -> StageResult:
    """Train ``model`` in place with ``spec.method`` on multiple-choice ``docs`` (relabelled by the method);
    ``loop`` are :func:`train_items`' options (``evaluate``, ``checkpoint_dir``, ``desc``)."""
    method = METHODS.get(spec.method)(loss=spec.loss, reduction=spec.reduction)
    items = encode_items(tokenizer, method.relabel(docs, seed), resolve_max_length(model.config, tokenizer))
    return train_items(model, items, method, spec, pad_id=tokenizer.pad_token_id, seed=seed, accelerator=accelerator, **loop)


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
    loop = _Loop(model, items, method, spec, pad_id, seed, accelerator, checkpoint_dir, desc, retain_items)
    if evaluate is not None and loop.result.steps == 0 and spec.eval_every:
        loop.result.trajectory.extend(evaluate(0))
    loop.start_streams(shuffle)
    while loop.result.steps < loop.n_steps:
        with deferred():  # a SIGTERM waits for the end of this step (and its evaluation), then checkpoints
            loop.step()
            if evaluate is not None and loop.evaluation_due():
                loop.result.trajectory.extend(evaluate(loop.result.steps))
                loop.wrapped.train()
            if loop.checkpoint_due():
                loop.checkpoint()
        signum = _agreed_interruption(accelerator)
        if signum is not None:
            loop.bar.close()
            if checkpoint_dir is not None:
                loop.checkpoint()
            raise Interrupted(signum)
    return loop.finish()


class _Loop:
    """One training stage in progress: the prepared model and optimiser, the data streams, the result so far."""

    def __init__(
        self, model: torch.nn.Module, items: Sequence[EncodedItem], method: Method, spec: OptimSpec, pad_id: int, seed: int,
        accelerator: Accelerator, checkpoint_dir: Path | None, desc: str, retain_items: Sequence[EncodedItem] | None,
    ) -> None:
        self.items, self.method, self.spec, self.pad_id, self.seed = items, method, spec, pad_id, seed
        self.accelerator, self.checkpoint_dir, self.desc, self.retain_items = accelerator, checkpoint_dir, desc, retain_items
        self.n_steps = total_steps(len(items), spec, accelerator.num_processes)
        longest = max(len(seq) for item in (*items, *(retain_items or ())) for seq in item.sequences)
        self.pack = spec.pack and accepts_custom_masks(model, longest)
        self.params = [p for p in model.parameters() if p.requires_grad]
        # fused: one kernel over all parameters (also on CPU), what HF Trainer uses by default (adamw_torch_fused)
        optimizer = torch.optim.AdamW(self.params, lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
        self.scheduler = get_scheduler(spec.scheduler, optimizer, num_warmup_steps=spec.warmup_steps, num_training_steps=self.n_steps)
        self.wrapped, self.optimizer = accelerator.prepare(model, optimizer)
        self.result = StageResult(steps=0)
        _seed_everything(seed)
        saved = _checkpoint_folder(checkpoint_dir) if checkpoint_dir is not None else None
        if saved is not None:
            self.result = _load_checkpoint(saved, accelerator.unwrap_model(self.wrapped), self.optimizer, self.scheduler)

    def start_streams(self, shuffle: bool) -> None:
        """This rank's item order (and the retain order), replayed up to the resume point; the progress bar."""
        rank, world, spec = self.accelerator.process_index, self.accelerator.num_processes, self.spec
        self.stream = micro_batches(len(self.items), spec, self.seed, rank, world, shuffle)
        self.retain_stream = None
        if self.method.needs_retain:
            self.retain_stream = micro_batches(len(self.retain_items), spec, self.seed + 1, rank, world)
        for _ in range(self.result.steps * spec.grad_accum):
            next(self.stream)
            if self.retain_stream is not None:
                next(self.retain_stream)
        self.bar = tqdm(total=self.n_steps, initial=self.result.steps, desc=self.desc,
                        disable=not self.accelerator.is_main_process, dynamic_ncols=True)
        self.wrapped.train()

    def step(self) -> None:
        """One optimizer step (``grad_accum`` micro-batches); a non-finite loss is a DivergenceError."""
        spec, accelerator = self.spec, self.accelerator
        step_loss = 0.0
        for _ in range(spec.grad_accum):
            batch = collate([self.items[i] for i in next(self.stream)], spec.loss, self.pad_id, pack=self.pack).to(accelerator.device)
            retain = None
            if self.retain_stream is not None:
                retain_items = [self.retain_items[i] for i in next(self.retain_stream)]
                retain = collate(retain_items, spec.loss, self.pad_id, pack=self.pack).to(accelerator.device)
            with forward_autocast(accelerator.device):
                loss = self.method.loss(self.wrapped, batch, retain) / spec.grad_accum
            value = loss.item()  # the one host sync of a micro-batch
            if not math.isfinite(value):
                raise DivergenceError(f"{self.desc}: loss became {value} at step {self.result.steps + 1}")
            accelerator.backward(loss)
            step_loss += value
        if spec.max_grad_norm is not None:
            accelerator.clip_grad_norm_(self.params, spec.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.result.steps += 1
        if accelerator.num_processes > 1:  # log the loss of the global batch, not of rank 0's share
            step_loss = accelerator.reduce(torch.tensor([step_loss]), reduction="mean").item()
        self.result.losses.append(step_loss)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{step_loss:.4f}")

    def evaluation_due(self) -> bool:
        every, steps = self.spec.eval_every, self.result.steps
        return bool(every) and (steps % every == 0 or steps == self.n_steps)

    def checkpoint_due(self) -> bool:
        every = self.spec.checkpoint_every
        return self.checkpoint_dir is not None and bool(every) and self.result.steps % every == 0

    def checkpoint(self) -> None:
        check_finite(self.accelerator.unwrap_model(self.wrapped), self.desc, self.result.steps)
        _save_checkpoint(self.checkpoint_dir, self.accelerator, self.wrapped, self.optimizer, self.scheduler, self.result)

    def finish(self) -> StageResult:
        self.bar.close()
        model = self.accelerator.unwrap_model(self.wrapped)
        check_finite(model, self.desc, self.result.steps)
        model.eval()
        self.accelerator.free_memory()
        return self.result


def _agreed_interruption(accelerator: Accelerator) -> int | None:
    """The signal that asked this process to stop during the last step; with several processes, every
    process stops at the same step when any of them was asked (so that none waits for the others)."""
    signum = pending()
    if accelerator.num_processes == 1:
        return signum
    flag = accelerator.reduce(torch.tensor([float(signum or 0)]), reduction="sum").item()
    return signum or (int(signal.SIGTERM) if flag else None)



def check_finite(model: torch.nn.Module, desc: str, step: int) -> None:
    """A DivergenceError naming the first parameter that is NaN or infinite (``desc``: the stage)."""
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
            _torch_save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staging / "optim.pt")
            _torch_save({"torch": torch.get_rng_state()}, staging / "rng.pt")
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


#: Below this many free bytes, a failed write is taken for a full disk.
NEARLY_FULL = 256 * 2**20


def _torch_save(obj: Any, path: Path) -> None:
    """``torch.save``, whose failed writes (a full disk above all) surface as an OSError naming the file rather
    than the RuntimeError of torch's zip writer ("enforce fail at inline_container.cc ... unexpected pos")."""
    try:
        torch.save(obj, path)
    except RuntimeError as error:
        if "inline_container" not in str(error):
            raise
        full = shutil.disk_usage(path.parent).free < NEARLY_FULL
        code, what = (errno.ENOSPC, "No space left on device") if full else (errno.EIO, f"write failed ({error})")
        raise OSError(code, what, str(path)) from None


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
