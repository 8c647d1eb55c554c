"""Benchmark forgetlab's training loop against Hugging Face's ``Trainer`` on the very same batches.

Both start from the same weights and train ``--steps`` optimizer steps with the same model, batches (collated
once by forgetlab and handed to the Trainer in order), loss (cross-entropy on the labelled tokens, averaged over
the batch's tokens), optimizer (AdamW, fused — the Trainer's default ``adamw_torch_fused``), constant learning
rate, gradient clipping at 1.0 and precision. The script checks that the per-step losses agree (largest |Δ|,
target ≤ 1e-5) and prints the wall time of both, interleaved over ``--repeats`` (alternating which goes first,
so load from other jobs hits both alike), with the ratio of their minimums (target ≥ 1.3).

Data: ``items`` — Study A's multiple-choice items (a shared task, loss on the gold answer's tokens);
``pairs`` — Study B's translation pairs (Multi30k de→en, loss on the target and EOS).

    python bench/bench_training.py --model smollm2-135m --data items --steps 20 --repeats 3
    python bench/bench_training.py --model tiny-llama --data pairs

On a GPU both run there (Accelerate and the Trainer place model and batches); ``--random-init`` builds the model
from its config with random weights, so that only the tokenizer and config need to be present; ``--bf16`` runs
both under bf16 autocast (forgetlab's ``compute.mixed_precision: bf16``, the Trainer's ``bf16=True``) and ``--tf32``
lets CUDA matrix products use TF32. Under bf16 the losses agree to bf16's rounding, not to 1e-5.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import Dataset, SequentialSampler
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

from forgetlab.config import ComputeSpec, OptimSpec
from forgetlab.data.corpus import CorpusSpec, load_corpus
from forgetlab.data.tasks import load_task_docs
from forgetlab.methods import METHODS, Batch
from forgetlab.models import ModelSpec, load_model
from forgetlab.precision import compute_context, device_name
from forgetlab.scoring import resolve_max_length
from forgetlab.train import collate, encode_items, encode_pairs, micro_batches, train_items


def encoded(data: str, task: str, tokenizer: Any, max_length: int, n: int) -> list:
    if data == "items":
        docs = load_task_docs(task)
        split = "train" if docs.get("train") else next(iter(docs))
        return encode_items(tokenizer, docs[split][:n], max_length)
    pairs = load_corpus(CorpusSpec(name="multi30k")).split("train")[:n]
    return encode_pairs(tokenizer, pairs, max_length, eos=True)


def the_batches(items: list, spec: OptimSpec, pad_id: int, seed: int) -> list[Batch]:
    """The batches forgetlab's loop draws for ``spec.max_steps`` steps (its own order, seed ``seed``)."""
    stream = micro_batches(len(items), spec, seed, 0, 1)
    return [collate([items[i] for i in next(stream)], spec.loss, pad_id) for _ in range(spec.max_steps)]


def run_forgetlab(model: torch.nn.Module, items: list, spec: OptimSpec, pad_id: int, seed: int,
                  compute: ComputeSpec) -> tuple[float, list[float]]:
    method = METHODS.get(spec.method)(loss=spec.loss)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    began = time.perf_counter()
    with compute_context(compute, accelerator.device):
        result = train_items(model, items, method, spec, pad_id=pad_id, seed=seed, accelerator=accelerator, desc="forgetlab")
    return time.perf_counter() - began, result.losses


class FixedBatches(Dataset):
    """The precollated batches, one per index (the Trainer's batch size is 1 and its collator unwraps)."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        b = self.batches[index]
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask, "labels": b.labels}


class InOrderTrainer(Trainer):
    """The Trainer, fed the batches in the given order, keeping each step's loss (a tensor: no extra sync)."""

    losses: list[torch.Tensor]

    def _get_train_sampler(self, *args: Any, **kwargs: Any) -> SequentialSampler:
        return SequentialSampler(self.train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self.losses.append((loss[0] if return_outputs else loss).detach())
        return loss


def run_trainer(model: torch.nn.Module, batches: list[Batch], spec: OptimSpec, folder: str,
                compute: ComputeSpec) -> tuple[float, list[float]]:
    args = TrainingArguments(
        output_dir=folder, per_device_train_batch_size=1, max_steps=spec.max_steps, learning_rate=spec.lr,
        weight_decay=spec.weight_decay, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=spec.max_grad_norm,
        optim="adamw_torch_fused", logging_strategy="no", save_strategy="no", report_to=[], disable_tqdm=True,
        dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(), seed=0,
        bf16=compute.mixed_precision == "bf16", tf32=compute.tf32 or None,
    )
    trainer = InOrderTrainer(model=model, args=args, train_dataset=FixedBatches(batches), data_collator=lambda rows: rows[0])
    trainer.losses = []
    began = time.perf_counter()
    trainer.train()
    return time.perf_counter() - began, [float(x) for x in trainer.losses]


def profile_steps(model: torch.nn.Module, batches: list[Batch], spec: OptimSpec) -> None:
    """Seconds per phase of forgetlab's step (the same calls as its loop, timed one by one)."""
    method = METHODS.get(spec.method)(loss=spec.loss)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.lr, fused=True)
    phases: dict[str, float] = {name: 0.0 for name in ("forward + loss", "host sync (loss.item)", "backward", "clip", "optimizer")}
    model.train()
    for batch in batches:
        clock = time.perf_counter()
        loss = method.loss(model, batch)
        phases["forward + loss"] += time.perf_counter() - clock
        clock = time.perf_counter()
        loss.item()
        phases["host sync (loss.item)"] += time.perf_counter() - clock
        clock = time.perf_counter()
        loss.backward()
        phases["backward"] += time.perf_counter() - clock
        clock = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.max_grad_norm)
        phases["clip"] += time.perf_counter() - clock
        clock = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        phases["optimizer"] += time.perf_counter() - clock
    total = sum(phases.values())
    print("per step: " + ", ".join(f"{name} {seconds / len(batches) * 1000:.0f} ms ({seconds / total:.0%})" for name, seconds in phases.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", choices=["items", "pairs"], default="items")
    parser.add_argument("--task", default="arc_easy", help="Study A task for --data items")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--random-init", action="store_true", help="random weights from the model's config (nothing to download)")
    parser.add_argument("--profile", action="store_true", help="only time the phases of forgetlab's step")
    parser.add_argument("--bf16", action="store_true", help="both under bf16 autocast (compute.mixed_precision / the Trainer's bf16)")
    parser.add_argument("--tf32", action="store_true", help="both with TF32 matrix products (CUDA only)")
    args = parser.parse_args()
    compute = ComputeSpec(mixed_precision="bf16" if args.bf16 else "no", tf32=args.tf32)

    base, tokenizer = load_model(ModelSpec(name=args.model))
    if args.random_init:
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_config(base.config)
    spec = OptimSpec(method="finetune", loss="answer", lr=args.lr, batch_size=args.batch_size, max_steps=args.steps)
    items = encoded(args.data, args.task, tokenizer, resolve_max_length(base.config, tokenizer), 4 * args.steps * args.batch_size)
    batches = the_batches(items, spec, tokenizer.pad_token_id, seed=0)
    tokens = sum(int(b.attention_mask.sum()) for b in batches)
    labelled = sum(int((b.labels != -100).sum()) for b in batches)
    print(f"{args.model} on {args.data} ({args.task if args.data == 'items' else 'multi30k'}): {args.steps} steps of "
          f"{args.batch_size}, {tokens / args.steps:.0f} tokens/step ({labelled / args.steps:.0f} labelled); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}; "
          f"{device_name('cuda' if torch.cuda.is_available() else 'cpu')}, {compute.mixed_precision}, tf32 {compute.tf32}")
    if args.profile:
        profile_steps(copy.deepcopy(base), batches, spec)
        return
    walls: dict[str, list[float]] = {"forgetlab": [], "trainer": []}
    for repeat in range(args.repeats):
        order = ["forgetlab", "trainer"] if repeat % 2 == 0 else ["trainer", "forgetlab"]
        losses = {}
        for name in order:
            model = copy.deepcopy(base).train()
            if name == "forgetlab":
                wall, losses[name] = run_forgetlab(model, items, spec, tokenizer.pad_token_id, seed=0, compute=compute)
            else:
                wall, losses[name] = run_trainer(model, batches, spec, f"/tmp/bench-trainer-{os.getpid()}", compute)
            walls[name].append(wall)
        delta = max(abs(a - b) for a, b in zip(losses["forgetlab"], losses["trainer"]))
        print(f"repeat {repeat + 1} (load {os.getloadavg()[0]:.2f}): forgetlab {walls['forgetlab'][-1]:.1f} s, "
              f"Trainer {walls['trainer'][-1]:.1f} s; losses {losses['forgetlab'][0]:.4f} → {losses['forgetlab'][-1]:.4f}, "
              f"max |Δ| {delta:.1e} over {len(losses['trainer'])} steps", flush=True)
    best = {name: min(w) for name, w in walls.items()}
    print(f"min wall: forgetlab {best['forgetlab']:.1f} s ({tokens / best['forgetlab']:.0f} tokens/s), Trainer "
          f"{best['trainer']:.1f} s ({tokens / best['trainer']:.0f} tokens/s) → forgetlab {best['trainer'] / best['forgetlab']:.2f}× the Trainer")


if __name__ == "__main__":
    main()
