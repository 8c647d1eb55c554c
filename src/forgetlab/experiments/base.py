"""Running an experiment config into a run directory, resumably, with one process per run at a time."""

from __future__ import annotations

import abc
import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from forgetlab.config import ExperimentConfig
from forgetlab.identity import RESULTS_VERSION, code_version, input_digests
from forgetlab.models import ModelSpec, model_config, model_identity
from forgetlab.precision import compute_context, device_name
from forgetlab.registry import Registry
from forgetlab.report.context import ReportContext, Section
from forgetlab.report.html import render_report, write_report
from forgetlab.scoring import Scorer
from forgetlab.store import Run, RunStore, package_versions, run_id_for
from forgetlab.threads import budget, thread_budget
from forgetlab.train import save_state, trainable_state


@dataclass
class Inputs:
    """What a run reads besides its config: files and folders (their contents are hashed into the run's
    identity) and models (identified by :func:`forgetlab.models.model_identity`)."""

    files: list[Path] = field(default_factory=list)
    models: list[ModelSpec] = field(default_factory=list)


@dataclass(frozen=True)
class Part:
    """A run that an experiment's run starts (and finds finished when it was run first): its config and the
    indexes, in the experiment's list of parts, of the parts it reads the results of."""

    config: ExperimentConfig
    needs: tuple[int, ...] = ()
    label: str = ""  # what the part is, for people (default: its run name)


class Experiment(abc.ABC):
    """An experiment: its config class, a cheap up-front check of a config, what a run reads, the run itself,
    what its report shows, and the facts a sweep needs (its parts, the numbers its table shows)."""

    config: type[ExperimentConfig]
    #: Whether a finished run writes report.html (False e.g. for the many small cells of a sweep).
    writes_report: bool = True
    #: The experiment's parts of the report, between the generic header and the summary values, config and
    #: versions (see :mod:`forgetlab.report.context`); ``forgetlab report RUN`` redraws them from the run's files.
    report_sections: tuple[Section, ...] = ()
    #: Summary keys a sweep's table and plots show by default (dotted; ``*`` matches any run of characters, e.g. a task).
    sweep_metrics: tuple[str, ...] = ()
    #: For a forget-vs-keep trade-off plot: (summary key, better direction) of a forgetting number and of a
    #: utility number, or None when the experiment has no such pair.
    tradeoff: tuple[tuple[str, str], tuple[str, str]] | None = None

    def validate(self, config: ExperimentConfig) -> None:
        """Raise one clear error for anything unknown (task, method, ...) before any work starts."""

    @abc.abstractmethod
    def inputs(self, config: ExperimentConfig) -> Inputs:
        """The data files and models the run will read (part of its identity)."""

    @abc.abstractmethod
    def run(self, config: ExperimentConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        """Do the work (skipping finished stages) and return the summary."""

    def badness(self, key: str, value: float) -> float:
        """How bad ``value`` of the summary number at ``key`` is, lower being better (a search minimises it), from
        the metric registry's direction; KeyError when the experiment cannot tell which way the number is better."""
        raise KeyError(f"{key}: the {type(self).__name__} experiment cannot tell which way this number is better; "
                       "give search.direction (minimize or maximize)")

    def combine(self, cells: list[tuple[ExperimentConfig, dict[str, Any]]]) -> dict[str, Any] | None:
        """What a sweep's finished cells (each its config and summary) say only together, shaped like one run's
        summary so that :attr:`report_sections` can draw it in the sweep's report; None (the default) when the
        cells say nothing beyond their own summaries."""
        return None

    def markdown(self, summary: dict[str, Any]) -> str:
        """A summary's headline tables as Markdown (a sweep writes those of its combined summary into
        ``results.md``); empty by default."""
        return ""

    def parts(self, config: ExperimentConfig) -> list[Part]:
        """The runs this run starts, in an order that respects their needs (none by default). A sweep runs
        them first, each as its own cell, possibly at once on several workers; the run then finds them finished."""
        return []


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


class StagedRunner:
    """What every experiment's runner shares: stages computed once and saved (a rerun resumes at the first
    unfinished one), trained weights kept in the run directory, the scoring engine, and stage timings.

    Subclasses implement ``run() -> summary`` from :meth:`stage` calls. Every process computes a stage
    (they shard the work); only the main process writes.
    """

    def __init__(self, config: ExperimentConfig, run: Run, accelerator: Accelerator) -> None:
        self.config, self.run_, self.accelerator = config, run, accelerator
        self.stage_seconds: dict[str, float] = {}
        self.model: torch.nn.Module | None = None  # the model the current stage works on
        self.tokenizer: Any = None

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def stage(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The saved payload of stage ``key``, or ``compute()``'s, saved (with its wall-clock ``seconds``)."""
        self.accelerator.wait_for_everyone()
        payload = self.run_.stage(key)
        if payload is None:
            started = time.time()
            payload = compute()
            payload.setdefault("seconds", time.time() - started)
            if self.is_main:
                self.run_.save_stage(key, payload)
            self.accelerator.wait_for_everyone()
        self.stage_seconds[key] = payload.get("seconds", 0.0)
        return payload

    def weights_path(self, *parts: str) -> Path:
        """Where the weights named by ``parts`` are kept: ``stages/<parts>.safetensors`` in the run directory."""
        return self.run_.weights_path("/".join(parts))

    def save_weights(self, state: dict[str, torch.Tensor], *parts: str) -> Path:
        """Keep a state dict (main process, atomically); every process waits for it."""
        path = self.weights_path(*parts)
        if self.is_main:
            save_state(state, path)
        self.accelerator.wait_for_everyone()
        return path

    def save_trained(self, model: torch.nn.Module, *parts: str, checkpoint: Path | None = None) -> Path:
        """Keep the weights training changed in ``model`` (all, or its LoRA adapters; only the main process
        copies them); the stage's resumable ``checkpoint`` folder, no longer needed, is removed."""
        path = self.save_weights(trainable_state(model) if self.is_main else {}, *parts)
        if checkpoint is not None and self.is_main:
            shutil.rmtree(checkpoint, ignore_errors=True)
        return path

    def load_weights(self, model: torch.nn.Module, *parts: str) -> torch.nn.Module:
        """Load kept weights into ``model`` (only the tensors saved: all trained ones, or the LoRA adapters)."""
        model.load_state_dict(load_file(str(self.weights_path(*parts))), strict=False)
        return model

    def scorer(self, model: torch.nn.Module, tokenizer: Any, *, batch_size: int, progress: bool = False, **options: Any) -> Scorer:
        """The scoring engine on ``model``, sharded over the processes."""
        options.setdefault("max_tokens_per_batch", self.config.compute.score_tokens)
        return Scorer(model, tokenizer, batch_size=batch_size, accelerator=self.accelerator, progress=progress and self.is_main, **options)

    def save_timings(self, **extra: Any) -> None:
        """``timings.json``: the seconds of every stage (of the attempt that computed it) and any extras."""
        save_timings(self.run_, self.accelerator, self.stage_seconds, **extra)


def save_timings(run: Run, accelerator: Accelerator, stage_seconds: dict[str, float], **extra: Any) -> None:
    """Write a run's ``timings.json`` (main process): its stages' seconds, the torch threads, the device and any
    extras. Wall-clock times stay out of ``summary.json`` so that identical runs write identical summaries."""
    if accelerator.is_main_process:
        run.save_timings({"stages": stage_seconds, "cpu_threads": torch.get_num_threads(),
                          "device": device_name(accelerator.device), **extra})


@dataclass
class Identity:
    """A run's fingerprint (hash of everything its results depend on) and the record kept beside it."""

    fingerprint: str
    record: dict[str, Any]


def run_identity(config: ExperimentConfig, experiment: Experiment, world_size: int, command: str = "") -> Identity:
    """Hash the resolved config, :data:`RESULTS_VERSION`, the world size, the torch threads per process (the
    config's ``cpu_threads`` or this machine's budget, :mod:`forgetlab.threads`), the content of every input
    file and the identity of every model; the record adds versions, the code commit and the command."""
    threads = budget(config.cpu_threads)
    inputs = experiment.inputs(config)
    files = input_digests(inputs.files)
    models = [dict(model_identity(spec), name=spec.name) for spec in inputs.models]
    resolved = config.model_dump(mode="json")
    identity = {
        "results_version": RESULTS_VERSION,
        "config": config.model_dump(mode="json", exclude=_unhashed(config)),
        "cpu_threads": threads,
        "world_size": world_size,
        "inputs": [f["sha256"] for f in files],
        "models": models,
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    record = {
        "config": resolved,
        "seed": config.seed,
        "world_size": world_size,
        "cpu_threads": threads,
        "results_version": RESULTS_VERSION,
        "inputs": files,
        "models": models,
        "code": code_version(),
        "versions": package_versions(),
        "command": command,
    }
    return Identity(hashlib.sha256(canonical.encode()).hexdigest(), record)


def _unhashed(config: ExperimentConfig) -> set[str]:
    """Config fields kept out of the hash: ``cpu_threads`` (hashed as the count used) and the ``compute`` block at
    its defaults, which joined the config later, so that runs made before it keep their ids."""
    return {"cpu_threads"} | ({"compute"} if config.compute.is_default else set())


def run_id(config: ExperimentConfig, experiment: Experiment, world_size: int = 1) -> str:
    """The id the run of ``config`` has (or will have) in any runs directory, computed without running it."""
    return run_id_for(config.name, run_identity(config, experiment, world_size).fingerprint)


def finished_stage(run: Run, key: str) -> dict[str, Any]:
    """The saved payload of stage ``key`` of another run (one this run starts from); FileNotFoundError naming it."""
    payload = run.stage(key)
    if payload is None:
        raise FileNotFoundError(f"run {run.id}: no {key!r} stage")
    return payload


def check_models(inputs: Inputs) -> None:
    """Every model a run reads exists (alias, local checkpoint, or reachable/cached hub id) — before work starts."""
    for spec in inputs.models:
        model_config(spec)


def run_experiment(
    config: ExperimentConfig,
    runs_dir: str | Path,
    *,
    command: str = "",
    accelerator: Accelerator | None = None,
    wait: bool = False,
) -> Run:
    """Run (or find, or resume) the run of ``config`` under ``runs_dir``; returns it finished.

    The run is locked by this process while it works (another process gets
    :class:`~forgetlab.store.RunLocked`, or waits with ``wait``). On an error the run is marked failed,
    on a signal or Ctrl-C interrupted, and the error propagates; finished stages are kept.
    """
    experiment = EXPERIMENTS.get(config.experiment)
    experiment.validate(config)
    check_models(experiment.inputs(config))
    # Without CUDA, cpu=True makes Accelerate use gloo across processes started by torchrun/accelerate launch.
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    store, run = _open(config, experiment, runs_dir, accelerator, command, wait)
    if run.finished:
        return run
    try:
        with thread_budget(config.cpu_threads), compute_context(config.compute, accelerator.device):
            summary = experiment.run(config, run, accelerator)
        _reject_non_finite(summary)
        if accelerator.is_main_process:
            store.finish(run, summary)
            if experiment.writes_report:
                _write_report(run, experiment)
        accelerator.wait_for_everyone()
    except BaseException as error:
        if accelerator.is_main_process:
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            for problem in store.fail(run, f"{type(error).__name__}: {error}", status=status):
                print(f"warning: {problem}", file=sys.stderr)
        raise
    finally:
        run.release()
    return store.get(run.id) or run


def _open(
    config: ExperimentConfig, experiment: Experiment, runs_dir: str | Path, accelerator: Accelerator, command: str, wait: bool
) -> tuple[RunStore, Run]:
    """The main process opens (and locks) the run; the others learn its id and status from it."""
    store = run = None
    outcome: list[Any] = [None, None]
    if accelerator.is_main_process:
        try:
            store = RunStore(runs_dir)
            identity = run_identity(config, experiment, accelerator.num_processes, command)
            run = store.open(config, identity.fingerprint, identity.record, wait=wait)
            outcome = [run.id, run.status]
        except Exception as error:
            outcome = [None, f"{type(error).__name__}: {error}"]
            if accelerator.num_processes == 1:
                raise
            _broadcast(outcome, accelerator)
            raise
    if accelerator.num_processes > 1:
        outcome = _broadcast(outcome, accelerator)
    if run is not None and store is not None:
        return store, run
    if outcome[0] is None:
        raise RuntimeError(f"the main process could not open the run: {outcome[1]}")
    store = RunStore(runs_dir)
    return store, Run(outcome[0], store.run_dir(outcome[0]), outcome[1])


def _broadcast(outcome: list[Any], accelerator: Accelerator) -> list[Any]:
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list(list(outcome), from_process=0)


def write_run_report(run_dir: Path) -> Path:
    """Write the report of the finished run in ``run_dir`` with the sections of the experiment it ran (named
    by its config.yaml, else its summary.json); returns the HTML's path. FileNotFoundError for a run that
    has not finished, KeyError for an experiment that is not registered."""
    context = ReportContext.load(run_dir)
    if context.experiment is None:
        raise ValueError(f"{run_dir}: neither config.yaml nor summary.json names the experiment")
    return render_report(context, EXPERIMENTS.get(context.experiment).report_sections)


def _write_report(run: Run, experiment: Experiment) -> None:
    """The run's report.html; a report that cannot be drawn is logged, never a reason to lose the result."""
    try:
        write_report(run.dir, experiment.report_sections)
    except Exception as error:  # noqa: BLE001  (the run is finished and recorded; say what failed)
        print(f"warning: report for {run.id} not written: {type(error).__name__}: {error}", file=sys.stderr)


def _reject_non_finite(obj: Any, path: str = "summary") -> None:
    """A diverged number must never be recorded as a result."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"{path} is {obj}: not recording a non-finite result")
    if isinstance(obj, dict):
        for key, value in obj.items():
            _reject_non_finite(value, f"{path}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _reject_non_finite(value, f"{path}[{i}]")
