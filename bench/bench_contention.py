"""Benchmark forgetlab on a shared machine: does a run keep its pace when other work shares the CPUs?

Runs a recipe (default: the embedded quickstart) as separate ``forgetlab run`` processes, each in a fresh runs
folder, and prints two ratios per round, and for the minimum walls over the rounds:

(a) two runs (seeds 1 and 2) started together, against the same two runs one after the other:
    ``together / sequential`` (target ≤ 1.2);
(b) one run beside two busy CPU-bound processes that are not forgetlab (``while True: pass``), against the same
    run on an otherwise idle machine: ``busy / idle`` (target ≤ 2.5).

``--set`` passes overrides to every run (e.g. a smaller quickstart: ``--set forget.epochs=2``); ``--src`` puts
another checkout's ``src`` first on the runs' ``PYTHONPATH`` (to measure the code before a change side by side).
The load average before each round is printed: the machine should be otherwise idle.

    python bench/bench_contention.py --rounds 3 --set data.test_size=48
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUSY = "while True: pass"


def run_forgetlab(recipe: str, seed: int, overrides: list[str], env: dict[str, str]) -> subprocess.Popen:
    runs = tempfile.mkdtemp(prefix="bench-contention-")
    command = [sys.executable, "-m", "forgetlab.cli", "run", recipe, "--runs-dir", runs, "--set", f"seed={seed}"]
    for item in overrides:
        command += ["--set", item]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        _, errors = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a run failed (exit {process.returncode}):\n{errors[-2000:]}")


def timed(start: callable) -> float:
    began = time.perf_counter()
    wait_all(start())
    return time.perf_counter() - began


def one_round(recipe: str, overrides: list[str], env: dict[str, str]) -> dict[str, float]:
    walls = {}
    walls["idle"] = timed(lambda: [run_forgetlab(recipe, 1, overrides, env)])
    walls["sequential"] = walls["idle"] + timed(lambda: [run_forgetlab(recipe, 2, overrides, env)])
    walls["together"] = timed(lambda: [run_forgetlab(recipe, 1, overrides, env), run_forgetlab(recipe, 2, overrides, env)])
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        walls["busy"] = timed(lambda: [run_forgetlab(recipe, 1, overrides, env)])
    finally:
        for process in busy:
            process.kill()
            process.wait()
    return walls


def ratios(walls: dict[str, float]) -> str:
    return (f"(a) together/sequential = {walls['together'] / walls['sequential']:.2f}   "
            f"(b) busy/idle = {walls['busy'] / walls['idle']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="quickstart")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--src", type=Path, help="a checkout's src folder to run instead of the installed forgetlab")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.src.resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    print(f"recipe {args.recipe} {' '.join(args.overrides)}; {os.cpu_count()} CPUs; forgetlab from {args.src or 'the environment'}")
    rounds = []
    for index in range(args.rounds):
        load = os.getloadavg()[0]
        walls = one_round(args.recipe, args.overrides, env)
        rounds.append(walls)
        print(f"round {index + 1} (load {load:.2f}): " + "  ".join(f"{k} {v:.1f} s" for k, v in walls.items()) + "   " + ratios(walls), flush=True)
    best = {key: min(r[key] for r in rounds) for key in rounds[0]}
    print("min over rounds: " + "  ".join(f"{k} {v:.1f} s" for k, v in best.items()) + "   " + ratios(best))


if __name__ == "__main__":
    main()
