"""Golden results: each experiment's tiny recipe (tests/golden/recipes) rerun and compared with the committed
summary.json and metrics.jsonl of every run it makes — numbers must not change unless on purpose.

Run ids, versions and timings are stripped before comparing. A change that alters numbers on purpose (a fixed
formula, a faster kernel) regenerates the files in the same commit and says why in its message:

    .venv/bin/python -m tests.test_golden          # rewrites tests/golden/<recipe>/...

Floats are compared to 1e-9 (relative) on the machine kind the files were made on (same torch version, CPU
capability and processor, recorded in tests/golden/machine.json). On another kind the comparison is skipped, with
both kinds named: float kernels differ by processor (a different AVX-512 CPU changes losses at 1e-8), and the tiny
recipes amplify that (Adam turns rounding-level gradients into full steps), so an item flips and no tolerance tells a
changed formula from a changed CPU. The other tests read these files as sample runs on any machine.
"""

from __future__ import annotations

import json
import math
import platform
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from forgetlab.experiments import load_config
from forgetlab.experiments import run_experiment
from forgetlab.store import RunStore, read_jsonl

GOLDEN = Path(__file__).parent / "golden"
RECIPES = sorted(p.stem for p in (GOLDEN / "recipes").glob("*.yaml"))
RUN_ID = re.compile(r"\b([A-Za-z0-9][A-Za-z0-9_.-]*?)-[0-9a-f]{12}\b")
VOLATILE = {"seconds", "versions"}


def machine() -> dict[str, str]:
    """This machine's kind, as far as float results depend on it: torch, the kernels it picks, the processor."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "processor": processor()}


def processor() -> str:
    """Vendor, family, model and name of the CPU (``/proc/cpuinfo``; elsewhere ``platform.processor()``)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("vendor_id", "cpu family", "model", "model name") and key.strip() not in fields:
                fields[key.strip()] = value.strip()
    except OSError:
        return platform.processor() or platform.machine()
    return " / ".join(fields[k] for k in ("vendor_id", "cpu family", "model", "model name") if k in fields)


def normalize(value: Any) -> Any:
    """Run ids become ``<name>-<id>``; timing and version keys are dropped."""
    if isinstance(value, dict):
        return {normalize(k): normalize(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str):
        return RUN_ID.sub(r"\1-<id>", value)
    return value


def run_recipe(recipe: str, runs: Path) -> dict[str, dict[str, Any]]:
    """Run one golden recipe (each sets ``cpu_threads: 1``); every run it made, labelled by experiment (and task
    pair for cells)."""
    run_experiment(load_config(GOLDEN / "recipes" / f"{recipe}.yaml"), runs)
    return results_of(runs)


def results_of(runs: Path) -> dict[str, dict[str, Any]]:
    """Every run in ``runs``, labelled by experiment (and task pair for cells), normalized for comparing."""
    out = {}
    for row in RunStore(runs).list():
        run = RunStore(runs).find(row["id"])
        summary = run.summary()
        label = row["experiment"]
        if "forget_task" in summary:
            label += f"-{summary['forget_task']}-{summary['eval_task']}"
        if row["experiment"] == "forget_generalization":  # a cross-task sweep's Study A runs, one per task
            label += "-" + "-".join(summary["tasks"])
        if "learn" in summary:  # a benchmark's fine-tuning parts: the target and the reference model
            label += f"-{summary['learn']}"
        metrics = run.dir / "metrics.jsonl"
        out[label] = {"summary": normalize(summary), "metrics": normalize(list(read_jsonl(metrics))) if metrics.is_file() else []}
    return out


def write(recipe: str, runs: Path) -> None:
    shutil.rmtree(GOLDEN / recipe, ignore_errors=True)
    for label, result in run_recipe(recipe, runs).items():
        folder = GOLDEN / recipe / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(result["summary"], indent=1, sort_keys=True) + "\n")
        (folder / "metrics.jsonl").write_text("".join(json.dumps(m, sort_keys=True) + "\n" for m in result["metrics"]))
    (GOLDEN / "machine.json").write_text(json.dumps(machine(), indent=1) + "\n")


def assert_same(expected: Any, actual: Any, rel: float, where: str = "") -> None:
    if isinstance(expected, float) or isinstance(actual, float):
        assert isinstance(actual, (int, float)) and isinstance(expected, (int, float)), f"{where}: {expected!r} vs {actual!r}"
        assert math.isclose(expected, actual, rel_tol=rel, abs_tol=rel * 1e-3), f"{where}: {expected!r} vs {actual!r}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(expected) == sorted(actual), f"{where}: keys {sorted(expected)} vs {sorted(actual) if isinstance(actual, dict) else actual!r}"
        for key in expected:
            assert_same(expected[key], actual[key], rel, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(expected) == len(actual), f"{where}: length {len(expected)} vs {len(actual) if isinstance(actual, list) else actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_same(e, a, rel, f"{where}[{i}]")
    else:
        assert expected == actual, f"{where}: {expected!r} vs {actual!r}"


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_golden_recipe_gives_the_committed_numbers(recipe, tmp_path):
    assert_golden(recipe, run_recipe(recipe, tmp_path))


def assert_golden(recipe: str, results: dict[str, dict[str, Any]]) -> None:
    """``results`` (from :func:`results_of`) are the committed golden files of ``recipe``."""
    made_on = json.loads((GOLDEN / "machine.json").read_text())
    if made_on != machine():
        pytest.skip(f"golden files made on {made_on}, this machine is {machine()}: float results differ by machine kind "
                    "(python -m tests.test_golden remakes them here)")
    rel = 1e-9
    expected_labels = sorted(p.name for p in (GOLDEN / recipe).iterdir() if p.is_dir())
    assert sorted(results) == expected_labels
    for label, result in results.items():
        folder = GOLDEN / recipe / label
        assert_same(json.loads((folder / "summary.json").read_text()), json.loads(json.dumps(result["summary"])), rel, f"{label}/summary")
        assert_same(list(read_jsonl(folder / "metrics.jsonl")), json.loads(json.dumps(result["metrics"])), rel, f"{label}/metrics")


if __name__ == "__main__":
    import tempfile

    for name in sys.argv[1:] or RECIPES:
        with tempfile.TemporaryDirectory() as folder:
            write(name, Path(folder))
        print(f"wrote tests/golden/{name}/")
