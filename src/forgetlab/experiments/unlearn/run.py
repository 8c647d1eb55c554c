"""The ``unlearn`` runner (:class:`UnlearnRunner`: the data, learn and unlearn stages) and the experiment
(:class:`Unlearn`: config class, validation, inputs, run)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from accelerate import Accelerator

from forgetlab.data.types import Pair
from forgetlab.experiments.base import Experiment, Inputs, StagedRunner
from forgetlab.experiments.unlearn.config import SET_ORDER, ForgetMethodSpec, UnlearnConfig
from forgetlab.experiments.unlearn.data import build_sets, sets_from_stage, sets_to_stage, training_items
from forgetlab.experiments.unlearn.evaluate import (
    EvalSet, Evaluator, Selection, metric_names, objective_badness,
)
from forgetlab.experiments.unlearn.report import UNLEARN_SECTIONS
from forgetlab.report.robustness import robustness
from forgetlab.experiments.robustness import check_attacks, run_attacks
from forgetlab.experiments.unlearn.robustness import RELEARN_SETS, Robustness
from forgetlab.experiments.unlearn.summary import summarize, summary_metric, timings
from forgetlab.identity import RESULTS_VERSION
from forgetlab.methods import METHODS, Method
from forgetlab.methods.base import check_options
from forgetlab.models import ModelSpec, load_model, model_identity, weightless_model
from forgetlab.scoring import resolve_max_length
from forgetlab.store import Run, RunLock
from forgetlab.threads import budget
from forgetlab.train import train_items, trainable_state


class UnlearnRunner(StagedRunner):
    """The stages of one run, each skipped when the run directory already holds it."""

    config: UnlearnConfig

    def __init__(self, config: UnlearnConfig, run: Run, accelerator: Accelerator) -> None:
        super().__init__(config, run, accelerator)
        self._saved_names: set[str] | None = None

    def run(self) -> dict[str, Any]:
        sets = sets_from_stage(self.stage("data", lambda: sets_to_stage(build_sets(self.config))))
        learn = self.stage("learn", lambda: self._learn(sets)) if self.config.learn is not None else None
        unlearn = self.stage("unlearn", lambda: self._unlearn(sets))
        robustness = self._robustness(sets) if self.config.attacks else None
        self.save_timings(**timings(unlearn))
        summary = summarize(self.config, self.run_.id, sets, learn, unlearn)
        return summary if robustness is None else dict(summary, robustness=robustness)

    def _robustness(self, sets: dict[str, list[Pair]]) -> dict[str, Any]:
        """The recovery attacks (one stage each, after the models' own measurements)."""
        target = Robustness(self, sets).target()
        return run_attacks(self, "", self.config.attacks, target, self.config.mia.bootstrap, self.config.seed)

    # --- models ------------------------------------------------------------------------------------

    def load(self, learned: bool) -> None:
        """The configured model (with LoRA if set), and the learned weights when there was a learning stage."""
        torch.manual_seed(self.config.seed)  # LoRA adapters are initialised from the global generator
        self.model, self.tokenizer = load_model(self.config.model, self.accelerator.device)
        if learned:
            self.load_weights(self.model, "learn", "learned")

    def weights_state(self) -> dict[str, torch.Tensor]:
        """The weights a stage keeps: every parameter the configured model trains (all, or the LoRA
        adapters), even those ``forget.trainable`` froze, so a kept file alone restores the model."""
        names = self._saved_names
        if names is None:
            return trainable_state(self.model)
        return {n: p.detach().contiguous().clone() for n, p in self.model.named_parameters() if n in names}

    def keep(self, *parts: str) -> Path:
        """Save :meth:`weights_state` as ``stages/<parts>.safetensors`` (only the main process copies the weights)."""
        return self.save_weights(self.weights_state() if self.is_main else {}, *parts)

    def keep_selected(self, step: int) -> None:
        """Keep the current weights as the selected ones (``stages/unlearn/selected-step<N>``), drop the previous."""
        if self.config.save_models:
            path = self.keep("unlearn", f"selected-step{step}")
            if self.is_main:
                for old in path.parent.glob("selected-step*.safetensors"):
                    if old != path:
                        old.unlink()
        self.accelerator.wait_for_everyone()

    def eval_set(self, items: list[Pair], max_length: int) -> EvalSet:
        """Items encoded for scoring (each its own target)."""
        return EvalSet(items, training_items(self.tokenizer, items, None, self.config.seed, max_length))

    # --- stages --------------------------------------------------------------------------------------

    def _learn(self, sets: dict[str, list[Pair]]) -> dict[str, Any]:
        """Fine-tune on forget ∪ retain; keep the weights as the original model of the unlearning stage.

        With ``learn.share`` the weights and payload are also kept under ``<runs dir>/shared-learn/<key>``
        and reused by any later run whose key (model, learn spec, seed, threads, forget ∪ retain items) matches.
        Single-process runs (a sweep's cells) hold a lock on the key while they learn, so runs started together
        learn it once: the others wait, then reuse it.
        """
        spec = self.config.learn
        pool = sets["forget"] + sets.get("retain", [])
        key = learn_key(self.config, pool, self.accelerator.num_processes)
        shared = self.run_.dir.parent / "shared-learn" / key
        if not spec.share:
            return self._learn_here(pool, key, None)
        lock = RunLock(shared.with_name(f"{key}.lock"))
        if self.accelerator.num_processes == 1:
            lock.acquire(wait=True, run_id=f"shared-learn/{key}")
        try:
            if (shared / "payload.json").is_file():
                return self._reuse_learned(shared, key)
            return self._learn_here(pool, key, shared)
        finally:
            lock.release()

    def _learn_here(self, pool: list[Pair], key: str, shared: Path | None) -> dict[str, Any]:
        """Fine-tune on ``pool`` in this run; publish the result under ``shared`` when given."""
        spec = self.config.learn
        self.load(learned=False)
        method = METHODS.get(spec.method)(loss=spec.loss, reduction=spec.reduction)
        max_length = resolve_max_length(self.model.config, self.tokenizer)
        items = training_items(self.tokenizer, pool, None, self.config.seed, max_length)
        checkpoint = self.run_.path("stages", "learn-checkpoint")
        started = time.perf_counter()
        result = train_items(
            self.model, items, method, spec, pad_id=self.tokenizer.pad_token_id, seed=self.config.seed,
            accelerator=self.accelerator, checkpoint_dir=checkpoint, desc="learn",
        )
        learned = self.keep("learn", "learned")
        rows = [_loss_row("learn", i + 1, loss) for i, loss in enumerate(result.losses)]
        seconds = time.perf_counter() - started
        payload = {"steps": result.steps, "items": len(items), "seconds": seconds, "metrics": rows, "key": key}
        if self.is_main:
            shutil.rmtree(checkpoint, ignore_errors=True)
            if shared is not None:
                publish_learned(shared, learned, payload)
        self.accelerator.wait_for_everyone()
        return payload

    def _reuse_learned(self, shared: Path, key: str) -> dict[str, Any]:
        """The learning stage of an earlier run with the same key: its weights copied here, its payload."""
        if self.is_main:
            learned = self.weights_path("learn", "learned")
            learned.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shared / "learned.safetensors", learned)
        self.accelerator.wait_for_everyone()
        return dict(json.loads((shared / "payload.json").read_text()), shared=key)

    def _unlearn(self, sets: dict[str, list[Pair]]) -> dict[str, Any]:
        """Unlearn with the configured method, evaluating and selecting along the way."""
        self.load(learned=self.config.learn is not None)
        spec, seed = self.config.forget, self.config.seed
        method = build_method(spec)
        pattern, origin = trainable_pattern(spec, method, self.model)
        if pattern is not None:
            self._saved_names = {name for name, p in self.model.named_parameters() if p.requires_grad}
            restrict_trainable(self.model, pattern, origin)
        max_length = resolve_max_length(self.model.config, self.tokenizer)
        forget_items = training_items(self.tokenizer, sets["forget"], method, seed, max_length)
        retain_items = training_items(self.tokenizer, sets["retain"], None, seed, max_length) if "retain" in sets else None
        retain_size = self.config.eval.retain_size  # retain items scored at each evaluation
        eval_sets = {
            name: self.eval_set(items[:retain_size] if name == "retain" else items, max_length)
            for name, items in sets.items() if name in SET_ORDER
        }
        selection = Selection(self.config.select, self.run_.path("stages", "unlearn", "selection.json"))
        evaluator = Evaluator(self, eval_sets, selection)
        checkpoint = self.run_.path("stages", "unlearn-checkpoint")
        started = time.perf_counter()
        result = train_items(
            self.model, forget_items, method, spec, pad_id=self.tokenizer.pad_token_id, seed=seed,
            accelerator=self.accelerator, evaluate=evaluator, checkpoint_dir=checkpoint,
            desc=f"unlearn ({method.name})", retain_items=retain_items,
        )
        seconds = time.perf_counter() - started
        if self.config.save_models:
            self.keep("unlearn", "final")
        if self.is_main:
            shutil.rmtree(checkpoint, ignore_errors=True)
        return self._unlearn_payload(method, result, selection, seconds, evaluator.seconds)

    def _unlearn_payload(
        self, method: Method, result: Any, selection: Selection, seconds: float, eval_seconds: float
    ) -> dict[str, Any]:
        metrics = [r for r in result.trajectory if r.get("kind") != "example"]
        examples = [{k: v for k, v in r.items() if k != "kind"} for r in result.trajectory if r.get("kind") == "example"]
        metrics += [_loss_row("unlearn", i + 1, loss) for i, loss in enumerate(result.losses)]
        best = selection.best()
        weights = self.weights_path("unlearn", f"selected-step{best['step']}") if best else None
        return {
            "steps": result.steps,
            "method": method.name,
            "needs_reference": method.needs_reference,
            "needs_retain": method.needs_retain,
            "seconds": seconds,
            "eval_seconds": eval_seconds,
            "history": [{k: h[k] for k in ("step", "objective", "feasible")} for h in selection.state["history"]],
            "start": selection.start,
            "final": selection.state["history"][-1]["metrics"] if selection.state["history"] else None,
            "selected": None if best is None else {k: best[k] for k in ("step", "objective", "metrics")},
            "selected_weights": str(weights.relative_to(self.run_.dir)) if weights is not None and weights.is_file() else None,
            "metrics": metrics,
            "examples": examples,
        }


def check_unlearn_attacks(config: UnlearnConfig) -> None:
    """Each recovery attack exists with its options, has the weights and items it needs."""
    if config.attacks and not config.save_models:
        raise ValueError("attacks: attacks need the kept weights; set save_models: true")
    check_attacks(config.attacks, {kind: None if getattr(config.sets, name) is not None else f"needs sets.{name}"
                                   for kind, name in RELEARN_SETS.items()})


def _loss_row(stage: str, step: int, loss: float) -> dict[str, Any]:
    return {"stage": stage, "step": step, "split": "train", "metric": "loss", "value": loss}


# --- the learning stage, shared between runs ---------------------------------------------------------


def learn_key(config: UnlearnConfig, pool: Sequence[Pair], world_size: int = 1) -> str:
    """What determines the learned weights (SHA-256): model (spec and identity), learning spec, seed, world
    size, torch threads, the items learned and :data:`~forgetlab.identity.RESULTS_VERSION`."""
    canonical = json.dumps(
        {"model": config.model.model_dump(mode="json"), "model_identity": model_identity(config.model),
         "learn": config.learn.model_dump(mode="json", exclude={"share"}), "seed": config.seed, "world_size": world_size,
         "cpu_threads": budget(config.cpu_threads), "items": [i.to_dict() for i in pool], "results_version": RESULTS_VERSION},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def publish_learned(folder: Path, weights: Path, payload: dict[str, Any]) -> None:
    """Copy learned weights and their payload to a shared folder, atomically (rename of a staging folder)."""
    if folder.is_dir():
        return
    staging = folder.with_name(f".{folder.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(weights, staging / "learned.safetensors")
    (staging / "payload.json").write_text(json.dumps(payload))
    try:
        staging.rename(folder)
    except OSError:  # another run published the same key first
        shutil.rmtree(staging, ignore_errors=True)


# --- the method and the parameters it trains -----------------------------------------------------------


def build_method(spec: ForgetMethodSpec) -> Method:
    """The configured method with its options (unknown options raise in the constructor)."""
    return METHODS.get(spec.method)(loss=spec.loss, reduction=spec.reduction, **spec.options)


def finetune_stage(runner: StagedRunner, spec: Any, items: list[Any], desc: str) -> dict[str, Any]:
    """Fine-tune ``runner.model`` on encoded ``items`` with the ``finetune`` method and ``spec``'s optimiser,
    resumable from checkpoints; the weights are kept as ``finetuned``. Payload: steps, item count and losses."""
    checkpoint = runner.run_.path("stages", "learn-checkpoint")
    result = train_items(
        runner.model, items, METHODS.get("finetune")(loss=spec.loss, reduction=spec.reduction), spec,
        pad_id=runner.tokenizer.pad_token_id, seed=runner.config.seed, accelerator=runner.accelerator,
        checkpoint_dir=checkpoint, desc=desc,
    )
    runner.save_trained(runner.model, "finetuned", checkpoint=checkpoint)
    return {"steps": result.steps, "items": len(items), "losses": result.losses}


def forget_stage(
    runner: StagedRunner, spec: ForgetMethodSpec, encode: Callable[[list[Any], Method | None], list[Any]],
    forget: list[Any], retain: list[Any], desc: str,
) -> dict[str, Any]:
    """Unlearn ``forget`` from ``runner.model`` with the configured method (``retain`` items for methods that need
    them; ``encode(items, method)`` turns items into what training reads), resumable from checkpoints; the weights
    are kept as ``unlearned``. Payload: steps and losses."""
    method = build_method(spec)
    pattern, origin = trainable_pattern(spec, method, runner.model)
    if pattern is not None:
        restrict_trainable(runner.model, pattern, origin)
    checkpoint = runner.run_.path("stages", "unlearn-checkpoint")
    result = train_items(
        runner.model, encode(forget, method), method, spec, pad_id=runner.tokenizer.pad_token_id, seed=runner.config.seed,
        accelerator=runner.accelerator, checkpoint_dir=checkpoint, desc=f"{desc} ({method.name})",
        retain_items=encode(retain, None) if method.needs_retain else None,
    )
    runner.save_trained(runner.model, "unlearned", checkpoint=checkpoint)
    return {"steps": result.steps, "losses": result.losses}


def checked_method(spec: ForgetMethodSpec) -> Method:
    """The configured method, built; one error naming ``forget.method`` or ``forget.options`` for an unknown method,
    a bad option, or a method that relabels multiple-choice items (these experiments train on (prompt, target) items)."""
    try:
        check_options(METHODS.get(spec.method), spec.options, "forget.options")
        method = build_method(spec)
    except KeyError as error:
        raise KeyError(f"forget.method: {error.args[0]}") from None
    except (ValueError, TypeError) as error:
        message = str(error)
        raise ValueError(message if message.startswith("forget.options") else f"forget.options: {message}") from None
    if method.needs_choices:
        raise ValueError(
            f"forget.method: {method.name} relabels multiple-choice items; this experiment trains on (prompt, target) items"
        )
    return method


def trainable_pattern(spec: ForgetMethodSpec, method: Method, model: torch.nn.Module) -> tuple[str | None, str]:
    """The regex of the parameters to unlearn with (``forget.trainable`` if set, else the method's
    default; None: all) and where it came from, for error messages."""
    if spec.trainable is not None:
        return spec.trainable, "forget.trainable"
    return method.default_trainable(model), f"method {method.name}'s default trainable parameters (set forget.trainable)"


def check_trainable(config: UnlearnConfig, method: Method) -> None:
    """Before a run opens: the parameters to unlearn with (``forget.trainable`` or the method's default)
    exist in the model (checked on a weightless copy)."""
    model = weightless_model(config.model)
    pattern, origin = trainable_pattern(config.forget, method, model)
    if pattern is None:
        return
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    if not any(re.search(pattern, name) for name in names):
        raise ValueError(f"{origin}: {pattern!r} matches no trainable parameter of {config.model.name} (e.g. {', '.join(names[:3])})")


def restrict_trainable(model: torch.nn.Module, pattern: str, origin: str = "forget.trainable") -> None:
    """Freeze every trainable parameter whose name does not match ``pattern`` (at least one must match)."""
    regex = re.compile(pattern)
    kept = 0
    for name, param in model.named_parameters():
        if param.requires_grad and not regex.search(name):
            param.requires_grad_(False)
        kept += int(param.requires_grad)
    if kept == 0:
        raise ValueError(f"{origin}: {pattern!r} matches no trainable parameter")


# --- the experiment -------------------------------------------------------------------------------------


class Unlearn(Experiment):
    """The generic unlearning recipe."""

    config = UnlearnConfig
    report_sections = UNLEARN_SECTIONS
    sweep_metrics = ("selected_step", "selected.forget_loss", "selected.utility_loss", "selected.mia_loss_auc")
    #: forgetting (forget-set loss, which should rise) against utility (utility-set loss, which should not)
    tradeoff = (("selected.forget_loss", "higher"), ("selected.utility_loss", "lower"))

    def badness(self, key: str, value: float) -> float:
        return objective_badness(summary_metric(key), value)

    def validate(self, config: UnlearnConfig) -> None:
        method = checked_method(config.forget)
        if method.needs_retain and config.sets.retain is None:
            raise ValueError(f"sets.retain: method {method.name} needs a retain set")
        check_trainable(config, method)
        known = metric_names(config)
        for key in [config.select.objective, *(c.metric for c in config.select.constraints)]:
            if key not in known:
                raise ValueError(f"select: unknown metric {key!r}; this config records: {', '.join(known)}")
        try:
            objective_badness(config.select.objective, 0.0)
        except ValueError as error:
            raise ValueError(f"select.objective: {error}") from None
        check_unlearn_attacks(config)

    def inputs(self, config: UnlearnConfig) -> Inputs:
        files = [path for source in config.sources.values() for path in source.input_files()]
        models = [config.model] + ([config.mia.reference] if isinstance(config.mia.reference, ModelSpec) else [])
        return Inputs(files=files, models=models)

    def run(self, config: UnlearnConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        return UnlearnRunner(config, run, accelerator).run()

    # --- recovery attacks on a finished run (forgetlab attack) --------------------------------------

    attack_fields = ("sets.relearn", "sets.benign", "sources")
    robustness_section = staticmethod(robustness)

    def attack_finished(self, runner: StagedRunner, config: UnlearnConfig, source: Run) -> dict[str, Any]:
        """The attacks on ``source``'s selected model; new relearn/benign sets are drawn as the source would
        have drawn them (after its evaluated sets, which must come out unchanged)."""
        saved, sets = sets_from_stage(source.stage("data") or {}), build_sets(config)
        for name in config.sets.named():
            if [p.to_dict() for p in sets[name]] != [p.to_dict() for p in saved.get(name, [])]:
                raise ValueError(f"attack_data: the {name} set would differ from source run {source.id}'s; add sources, do not change them")
        target = Robustness(UnlearnRunner(config, source, runner.accelerator), sets).target()
        return {"robustness": run_attacks(runner, "", config.attacks, target, config.mia.bootstrap, config.seed)}
