"""Benchmark forgetlab's Scorer against lm-evaluation-harness's ``hf`` model on real requests.

Loads a model (default SmolLM2-135M), builds loglikelihood requests from the shared BoolQ and PIQA
files exactly as lm-eval's default prompts do, scores them with ``HFLM.loglikelihood`` and with
``Scorer.loglikelihood``, checks the largest per-request difference and prints the throughput of
both (request tokens = context + continuation tokens per request). The two are interleaved on
chunks of the requests (alternating which goes first) so that load from other jobs on a shared
machine hits both alike; wall and CPU time are reported.

    python bench/bench_scoring.py --n 100 --batch-size 8

On a GPU both run there (``--device``, default cuda when there is one). ``--random-init`` builds the model from
its config with random weights (nothing but the tokenizer and config need be present), ``--dtype bfloat16`` casts
the weights for both, ``--bf16`` runs the Scorer under bf16 autocast (``compute.mixed_precision: bf16``) and
``--tf32`` allows TF32 matrix products; ``--max-tokens`` is ``compute.score_tokens`` (a GPU fills with far more
than the CPU's 2,048). Only fp32 runs are held to the 1e-4 agreement. ``--mkl-too`` also times the Scorer with
every linear on PyTorch's own path (MKL), as on an Intel CPU, and checks that the results are identical to those
with oneDNN linears (:mod:`forgetlab.onednn`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from forgetlab.config import ComputeSpec
from forgetlab.models import load_model
from forgetlab.precision import compute_context, device_name
from forgetlab.scoring import Scorer, encode_pair

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def boolq_requests(data: Path, n: int) -> list[tuple[str, str]]:
    """lm-eval ``boolq``: "{passage}\\nQuestion: {question}?\\nAnswer:" with " no" / " yes"."""
    requests = []
    with open(data / "boolq" / "val.jsonl", encoding="utf-8") as fh:
        for line in list(fh)[:n]:
            doc = json.loads(line)
            context = f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:"
            requests += [(context, " no"), (context, " yes")]
    return requests


def piqa_requests(data: Path, n: int) -> list[tuple[str, str]]:
    """lm-eval ``piqa``: "Question: {goal}\\nAnswer:" with " {sol1}" / " {sol2}"."""
    requests = []
    with open(data / "piqa" / "valid.jsonl", encoding="utf-8") as fh:
        for line in list(fh)[:n]:
            doc = json.loads(line)
            context = f"Question: {doc['goal']}\nAnswer:"
            requests += [(context, " " + doc["sol1"]), (context, " " + doc["sol2"])]
    return requests


def arc_easy_requests(data: Path, n: int) -> list[tuple[str, str]]:
    """lm-eval ``arc_easy``: "Question: {question}\nAnswer:" with " {choice}" for each (3-5) choice."""
    requests = []
    with open(data / "arc_easy" / "ARC-Easy_validation.jsonl", encoding="utf-8") as fh:
        for line in list(fh)[:n]:
            doc = json.loads(line)
            context = f"Question: {doc['question']}\nAnswer:"
            requests += [(context, " " + text) for text in doc["choices"]["text"]]
    return requests


BUILDERS = {"boolq": boolq_requests, "piqa": piqa_requests, "arc_easy": arc_easy_requests}
OURS, LM_EVAL, OURS_MKL = "forgetlab Scorer", "lm-eval HFLM", "Scorer, MKL only"


def lm_eval_runner(model, tokenizer, batch_size: int):
    """A function scoring requests with lm-eval's ``HFLM`` around the in-memory model."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)

    def run(requests):
        instances = [Instance(request_type="loglikelihood", doc={}, arguments=r, idx=0) for r in requests]
        return [lp for lp, _ in lm.loglikelihood(instances, disable_tqdm=True)]

    return run


def scorer_runner(model, tokenizer, batch_size: int, compute: ComputeSpec, onednn_linears: bool = True):
    """A function scoring requests with forgetlab's ``Scorer`` as a run with ``compute`` would; without
    ``onednn_linears`` every linear takes PyTorch's own path (MKL), as on an Intel CPU."""
    scorer = Scorer(model, tokenizer, batch_size=batch_size, max_tokens_per_batch=compute.score_tokens, progress=False,
                    onednn_linears=onednn_linears)

    def run(requests):
        with compute_context(compute, next(model.parameters()).device):
            return [r.logprob for r in scorer.loglikelihood(requests)]

    return run


def timed(run, requests) -> tuple[list[float], float, float]:
    """Results, wall seconds, CPU seconds of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    results = run(requests)
    return results, time.perf_counter() - wall, time.process_time() - cpu


def chunked(requests: list[tuple[str, str]], n_chunks: int) -> list[list[tuple[str, str]]]:
    """Split into about ``n_chunks`` contiguous chunks, never splitting the choices of one item (context)."""
    size = math.ceil(len(requests) / n_chunks)
    chunks: list[list[tuple[str, str]]] = [[]]
    for request in requests:
        if len(chunks[-1]) >= size and request[0] != chunks[-1][-1][0]:
            chunks.append([])
        chunks[-1].append(request)
    return chunks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="model alias, hub id or directory")
    parser.add_argument("--n", type=int, default=100, help="items per task")
    parser.add_argument("--batch-size", type=int, default=8, help="lm-eval batch size")
    parser.add_argument("--our-batch-size", type=int, default=64, help="Scorer batch_size (rows)")
    parser.add_argument("--max-tokens", type=int, default=2048, help="Scorer max_tokens_per_batch")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FORGETLAB_DATA", DEFAULT_DATA)))
    parser.add_argument("--tasks", default="boolq,piqa", help="comma-separated, from " + ",".join(BUILDERS))
    parser.add_argument("--chunks", type=int, default=8, help="interleave the two runs on this many chunks")
    parser.add_argument("--skip-lm-eval", action="store_true", help="time only the Scorer")
    parser.add_argument("--mkl-too", action="store_true",
                        help="also time the Scorer with every linear on PyTorch's own path (no oneDNN linears)")
    parser.add_argument("--profile", action="store_true", help="where the time goes: torch's top operators for each runner")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="the weights' dtype, for both")
    parser.add_argument("--bf16", action="store_true", help="the Scorer under bf16 autocast")
    parser.add_argument("--tf32", action="store_true", help="TF32 matrix products (CUDA only)")
    parser.add_argument("--random-init", action="store_true", help="random weights from the model's config")
    return parser.parse_args(argv)


def interleave(runners: dict, requests: list[tuple[str, str]], n_chunks: int) -> dict[str, dict]:
    """Run every runner on each chunk in turn (rotating who goes first); results and timings."""
    for run in runners.values():  # warm-up (first-call costs: weights paged in, kernels initialised)
        run(requests[:4])
    stats = {name: {"results": [], "wall": 0.0, "cpu": 0.0, "chunk_wall": []} for name in runners}
    for c, chunk in enumerate(chunked(requests, n_chunks)):
        names = list(runners)
        for name in names[c % len(names):] + names[: c % len(names)]:
            results, wall, cpu = timed(runners[name], chunk)
            stats[name]["results"] += results
            stats[name]["wall"] += wall
            stats[name]["cpu"] += cpu
            stats[name]["chunk_wall"].append(wall)
    return stats


def report(stats: dict[str, dict], n_tokens: int) -> float:
    """Print throughput (and, with both runners, the ratio and largest difference); return max |diff|."""
    for name, st in stats.items():
        print(
            f"{name:17s} {st['wall']:8.2f} s wall {n_tokens / st['wall']:8.1f} tokens/s   "
            f"{st['cpu']:8.2f} s CPU {n_tokens / st['cpu']:8.1f} tokens/CPU-s"
        )
    if OURS_MKL in stats:
        mkl = stats[OURS_MKL]
        same = mkl["results"] == stats[OURS]["results"]
        print(f"oneDNN linears: {mkl['wall'] / stats[OURS]['wall']:.2f}x the Scorer's speed with MKL only; "
              f"results {'identical' if same else 'DIFFERENT'}")
    if LM_EVAL not in stats:
        return 0.0
    ours, ref = stats[OURS], stats[LM_EVAL]
    ratios = [r / o for r, o in zip(ref["chunk_wall"], ours["chunk_wall"])]
    print(
        f"throughput ratio (ours / lm-eval): {ref['wall'] / ours['wall']:.2f}x wall, "
        f"{ref['cpu'] / ours['cpu']:.2f}x CPU; per chunk: median {statistics.median(ratios):.2f}x "
        f"({', '.join(f'{r:.2f}' for r in ratios)})"
    )
    diff = max(abs(a - b) for a, b in zip(ours["results"], ref["results"]))
    print(f"max |diff| = {diff:.2e} over {len(ours['results'])} requests")
    return diff


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    requests = [r for task in args.tasks.split(",") for r in BUILDERS[task](args.data, args.n)]
    model, tokenizer = load_model(args.model)
    if args.random_init:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(model.config)
    model = model.to(device=args.device, dtype=getattr(torch, args.dtype)).eval()
    compute = ComputeSpec(mixed_precision="bf16" if args.bf16 else "no", tf32=args.tf32, score_tokens=args.max_tokens)
    n_tokens = sum(sum(map(len, encode_pair(tokenizer, *r))) for r in requests)
    print(f"model {args.model}: {len(requests)} requests, {n_tokens} request tokens, {torch.get_num_threads()} threads, "
          f"{device_name(args.device)}, weights {args.dtype}, autocast {compute.mixed_precision}, tf32 {compute.tf32}, "
          f"load {os.getloadavg()[0]:.2f}")
    runners = {OURS: scorer_runner(model, tokenizer, args.our_batch_size, compute)}
    if not args.skip_lm_eval:
        runners[LM_EVAL] = lm_eval_runner(model, tokenizer, args.batch_size)
    if args.mkl_too:
        runners[OURS_MKL] = scorer_runner(model, tokenizer, args.our_batch_size, compute, onednn_linears=False)
    if args.profile:
        for name, run in runners.items():
            profile(name, run, requests)
        return 0
    diff = report(interleave(runners, requests, args.chunks), n_tokens)
    exact = args.dtype == "float32" and not args.bf16 and not args.tf32
    return 0 if diff <= 1e-4 or not exact else 1


def profile(name: str, run, requests: list[tuple[str, str]], top: int = 12) -> None:
    """torch's operators by their own CPU time on one pass over the requests (after a warm-up)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    run(requests[:4])
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        began = time.perf_counter()
        run(requests)
        wall = time.perf_counter() - began
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    print(f"{name}: {wall:.1f} s wall, {total:.1f} s in torch operators (the rest: Python, tokenising, batching)")
    for event in events[:top]:
        print(f"    {event.key:42s} {event.self_cpu_time_total / 1e6:7.2f} s  {event.count:7d} calls")


if __name__ == "__main__":
    sys.exit(main())
