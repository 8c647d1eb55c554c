"""A sweep that searches (Optuna): trials asked in batches of ``parallel``, each batch run as ordinary cells on the
sweep's backend, their objective told back; the best feasible trial reported.

The objective is a summary key of each trial's run; which way is better comes from the experiment (the metric
registry) unless the sweep file says ``direction``. Optuna minimises the objective's badness. The sampler is seeded
and a trial's value is read from its finished run, so a rerun asks the same points, finds their runs in the
catalog, and continues where the last run stopped.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from forgetlab.config import ConfigError
from forgetlab.experiments import EXPERIMENTS
from forgetlab.store import RunStore
from forgetlab.sweep.aggregate import flatten
from forgetlab.sweep.backends import Backend
from forgetlab.sweep.backends.base import require
from forgetlab.sweep.driver import Scheduler, SweepState
from forgetlab.sweep.plan import Cell, Plan, plan
from forgetlab.sweep.spec import Distribution, SearchSpec, SweepSpec


def import_optuna() -> Any:
    optuna = require("optuna", "search", "search")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def search_identity(spec: SweepSpec, base: dict[str, Any]) -> str:
    """What names a search: its sweep file (as checked) and its base recipe."""
    canonical = json.dumps({"spec": json.loads(spec.model_dump_json()), "base": base}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def badness_of(search: SearchSpec, experiment: str) -> Callable[[float], float]:
    """The number Optuna minimises, from ``direction`` or else the experiment's metric registry."""
    if search.direction == "minimize":
        return lambda value: value
    if search.direction == "maximize":
        return lambda value: -value
    found = EXPERIMENTS.get(experiment)
    try:
        found.badness(search.objective, 0.0)
    except (KeyError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise ConfigError(f"search.objective: {message}") from None
    return lambda value: found.badness(search.objective, value)


def suggest(trial: Any, key: str, dist: Distribution) -> Any:
    """The trial's value of ``key``, drawn by Optuna from the same distributions random axes use."""
    if dist.uniform is not None:
        return trial.suggest_float(key, *dist.uniform)
    if dist.log_uniform is not None:
        return trial.suggest_float(key, *dist.log_uniform, log=True)
    if dist.int_uniform is not None:
        return trial.suggest_int(key, *dist.int_uniform)
    return trial.suggest_categorical(key, dist.choice)


class Search:
    """Runs the trials of a search's plan (:func:`forgetlab.sweep.prepare_sweep`) on ``backend``; the plan's cells
    and :attr:`state` grow with every batch."""

    def __init__(self, sweep: Plan, store: RunStore, backend: Backend, show: Callable[[SweepState], None]) -> None:
        assert sweep.spec.search is not None
        self.plan, self.spec, self.search = sweep, sweep.spec, sweep.spec.search
        self.store, self.backend, self.show = store, backend, show
        self.badness = badness_of(self.search, str(sweep.base.get("experiment")))
        self.state = SweepState({}, backend.capacity(), total=self.search.trials)
        self.trials: list[dict[str, Any]] = []

    def run(self) -> dict[str, Any]:
        """Every trial; returns the search's part of the results (trials, best)."""
        optuna = import_optuna()
        study = optuna.create_study(direction="minimize", sampler=self._sampler(optuna))
        while len(self.trials) < self.search.trials:
            asked = [study.ask() for _ in range(min(self.search.parallel, self.search.trials - len(self.trials)))]
            points = [{key: suggest(trial, key, dist) for key, dist in self.search.space.items()} for trial in asked]
            batch = plan(self.spec, self.plan.base, self.plan.origin, points, repeats=True)
            self._merge(batch)
            Scheduler(batch, self.store, self.backend, self.spec.retries, self.show, state=self.state).run()
            for trial, point in zip(asked, points):
                self._tell(study, trial, point, optuna)
        return self.results()

    def _sampler(self, optuna: Any) -> Any:
        if self.search.sampler == "random":
            return optuna.samplers.RandomSampler(seed=self.search.seed)
        return optuna.samplers.TPESampler(seed=self.search.seed)  # it reads each trial's constraints (set_constraint)

    def _merge(self, batch: Plan) -> None:
        known = {c.key for c in self.plan.cells}
        self.plan.cells.extend(c for c in batch.cells if c.key not in known)

    def _cell_of(self, point: dict[str, Any]) -> Cell:
        return next(c for c in self.plan.cells if c.top and c.axes == point)

    def _tell(self, study: Any, trial: Any, point: dict[str, Any], optuna: Any) -> None:
        cell = self._cell_of(point)
        run = self.store.get(cell.key)
        values = flatten(run.summary() or {}) if run is not None and run.finished else None
        value = values.get(self.search.objective) if values is not None else None
        record = {"number": trial.number, "params": point, "run": cell.key, "value": value, "badness": None, "feasible": None}
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            record["status"] = "failed" if values is None else f"no {self.search.objective} in the summary"
        else:
            violations = [bound.violation(values.get(bound.key)) for bound in self.search.constraints]
            for i, (bound, violation) in enumerate(zip(self.search.constraints, violations)):
                trial.set_constraint(f"{i}:{bound.key}", violation)  # > 0: infeasible for the sampler
            record.update(badness=self.badness(value), feasible=all(v == 0 for v in violations), status="finished")
            study.tell(trial, record["badness"])
        self.trials.append(record)

    def results(self) -> dict[str, Any]:
        feasible = [t for t in self.trials if t["feasible"]]
        best = min(feasible, key=lambda t: (t["badness"], t["number"])) if feasible else None
        return {
            "objective": self.search.objective,
            "direction": self.search.direction or "from the metric registry",
            "sampler": self.search.sampler,
            "trials": self.trials,
            "best": best,
        }
