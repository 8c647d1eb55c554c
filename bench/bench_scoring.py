"""Benchmark forgetlab's Scorer against lm-evaluation-harness's ``hf`` model on real requests.

Loads a model (default SmolLM2-135M), builds loglikelihood requests from the shared BoolQ and PIQA
files exactly as lm-eval's default prompts do, scores them with ``HFLM.loglikelihood`` and with
``Scorer.loglikelihood``, checks the largest per-request difference and prints the throughput of
both (request tokens = context + continuation tokens per request). The two are interleaved on
chunks of the requests (alternating which goes first) so that load from other jobs on a shared
machine hits both alike; wall and CPU time are reported.

    python bench/bench_scoring.py --n 100 --batch-size 8
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

from forgetlab.models import load_model
from forgetlab.scoring import Scorer

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


def lm_eval_runner(model, tokenizer, batch_size: int):
    """A function scoring requests with lm-eval's ``HFLM`` around the in-memory model."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)

    def run(requests):
        instances = [Instance(request_type="loglikelihood", doc={}, arguments=r, idx=0) for r in requests]
        return [lp for lp, _ in lm.loglikelihood(instances, disable_tqdm=True)]

    return run


def scorer_runner(model, tokenizer, batch_size: int, max_tokens: int):
    """A function scoring requests with forgetlab's ``Scorer``."""
    scorer = Scorer(model, tokenizer, batch_size=batch_size, max_tokens_per_batch=max_tokens, progress=False)
    return lambda requests: [r.logprob for r in scorer.loglikelihood(requests)]


def timed(run, requests) -> tuple[list[float], float, float]:
    """Results, wall seconds, CPU seconds of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    results = run(requests)
    return results, time.perf_counter() - wall, time.process_time() - cpu


def chunked(requests: list, n_chunks: int) -> list[list]:
    """Split into contiguous chunks of whole items (2 requests each)."""
    items = [requests[i : i + 2] for i in range(0, len(requests), 2)]
    size = math.ceil(len(items) / n_chunks)
    return [sum(items[i : i + size], []) for i in range(0, len(items), size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="model alias, hub id or directory")
    parser.add_argument("--n", type=int, default=100, help="items per task (2 requests each)")
    parser.add_argument("--batch-size", type=int, default=8, help="lm-eval batch size")
    parser.add_argument("--our-batch-size", type=int, default=64, help="Scorer batch_size (rows)")
    parser.add_argument("--max-tokens", type=int, default=2048, help="Scorer max_tokens_per_batch")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FORGETLAB_DATA", DEFAULT_DATA)))
    parser.add_argument("--tasks", default="boolq,piqa", help="comma-separated subset of boolq,piqa")
    parser.add_argument("--chunks", type=int, default=4, help="interleave the two runs on this many chunks")
    parser.add_argument("--skip-lm-eval", action="store_true", help="time only the Scorer")
    args = parser.parse_args(argv)

    builders = {"boolq": boolq_requests, "piqa": piqa_requests}
    requests = [r for task in args.tasks.split(",") for r in builders[task](args.data, args.n)]
    model, tokenizer = load_model(args.model)
    n_tokens = sum(sum(map(len, Scorer(model, tokenizer).encode_pair(*r))) for r in requests)
    print(f"model {args.model}: {len(requests)} requests, {n_tokens} request tokens, {torch.get_num_threads()} threads")

    runners = {"forgetlab Scorer": scorer_runner(model, tokenizer, args.our_batch_size, args.max_tokens)}
    if not args.skip_lm_eval:
        runners["lm-eval HFLM"] = lm_eval_runner(model, tokenizer, args.batch_size)
    results = {name: [] for name in runners}
    wall = {name: 0.0 for name in runners}
    cpu = {name: 0.0 for name in runners}
    ratios = []
    # interleave the two on chunks (alternating who goes first): fair on a machine shared with other jobs
    for c, chunk in enumerate(chunked(requests, args.chunks)):
        order = list(runners) if c % 2 == 0 else list(runners)[::-1]
        chunk_wall = {}
        for name in order:
            res, w, t = timed(runners[name], chunk)
            results[name] += res
            wall[name] += w
            cpu[name] += t
            chunk_wall[name] = w
        if len(runners) == 2:
            ratios.append(chunk_wall["lm-eval HFLM"] / chunk_wall["forgetlab Scorer"])
    for name in runners:
        print(
            f"{name:17s} {wall[name]:8.2f} s wall {n_tokens / wall[name]:8.1f} tokens/s   "
            f"{cpu[name]:8.2f} s CPU {n_tokens / cpu[name]:8.1f} tokens/CPU-s"
        )
    if args.skip_lm_eval:
        return 0
    ours, ref = results["forgetlab Scorer"], results["lm-eval HFLM"]
    diff = max(abs(a - b) for a, b in zip(ours, ref))
    print(
        f"throughput ratio (ours / lm-eval): {wall['lm-eval HFLM'] / wall['forgetlab Scorer']:.2f}x wall, "
        f"{cpu['lm-eval HFLM'] / cpu['forgetlab Scorer']:.2f}x CPU, per-chunk median "
        f"{statistics.median(ratios):.2f}x (chunks: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(f"max |diff| = {diff:.2e} over {len(ours)} requests")
    return 0 if diff <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
