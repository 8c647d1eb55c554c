"""An attack run: recovery attacks on a finished run, which is never rewritten (``forgetlab attack RUN``).

The attack run is a child run in the same runs directory: its id is ``<source run id>-attacks-<12 hex
digits>``, its config holds the source's id and resolved recipe (checked against the source's
``config.yaml``), the attacks and ``attack_data`` (dotted recipe keys of the source's experiment that only
give the attacks their data, e.g. ``sets.benign`` or ``attack_data.benign``). Its stages (one per attack,
and per task or group where the source has several) resume like any run's; its summary has the source's
shape (``robustness``, or ``tasks.<task>.robustness`` ...) and its report the Robustness section. After it
finishes, the source's report is redrawn to link to it (its results are untouched).
"""

from __future__ import annotations

import copy
import sys
from typing import Any, Literal

from accelerate import Accelerator
from pydantic import Field, field_validator

from forgetlab.attacks import AttackSpec
from forgetlab.config import ConfigError, ExperimentConfig, check_run_name
from forgetlab.experiments.base import EXPERIMENTS, Experiment, Inputs, StagedRunner, write_run_report
from forgetlab.experiments.recipes import build_config
from forgetlab.experiments.robustness import ATTACKABLE, with_attack_data
from forgetlab.report.context import Section
from forgetlab.store import ATTACK_RUNS, Run, RunStore, recorded_config

#: What ``forgetlab attack RUN`` runs without a recipe: both quantizations, relearning on other items of the
#: forgotten kind, and the logit lens.
DEFAULT_ATTACKS = (
    {"name": "quantize", "options": {"bits": [8, 4]}},
    {"name": "relearn", "options": {"data": "disjoint", "steps": [1, 2, 5, 10, 20], "lr": 1e-4}},
    {"name": "logit_lens"},
)


class AttackRunConfig(ExperimentConfig):
    """Recovery attacks on the finished run ``source_run`` (same runs directory)."""

    experiment: Literal["attack"] = "attack"
    source_run: str = Field(description="the finished run attacked (its id)")
    source_config: dict[str, Any] = Field(description="the source run's resolved recipe, as in its config.yaml")
    attacks: list[AttackSpec] = Field(default_factory=lambda: [AttackSpec(**a) for a in DEFAULT_ATTACKS], min_length=1,
                                      description="the recovery attacks (forgetlab.attacks: quantize, relearn, logit_lens)")
    attack_data: dict[str, Any] = Field(default_factory=dict, description="dotted keys of the source's recipe that give the "
                                        "attacks their data (e.g. sets.benign for unlearn, attack_data.benign for Study A)")

    @field_validator("source_run")
    @classmethod
    def _run_id(cls, value: str) -> str:
        return check_run_name(value, "source_run")

    def attacked(self) -> ExperimentConfig:
        """The source's recipe with this run's attacks and attack data."""
        experiment = self.source_config.get("experiment")
        if experiment not in ATTACKABLE:
            raise ValueError(f"source_run {self.source_run}: {experiment} runs have no recovery attacks "
                             f"(attackable: {', '.join(ATTACKABLE.names())})")
        attacks = [spec.model_dump(mode="json") for spec in self.attacks]
        return build_config(with_attack_data(self.source_config, attacks, self.attack_data, ATTACKABLE.get(experiment).attack_fields),
                            origin=f"source_run {self.source_run} with these attacks")


def attack_recipe(raw: dict[str, Any] | None) -> dict[str, Any]:
    """An attack recipe (``attacks``, ``attack_data``) with the default attacks where it names none."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - {"attacks", "attack_data"})
    if unknown:
        raise ConfigError(f"attack recipe: unknown field(s) {unknown}; it has attacks and attack_data")
    raw.setdefault("attacks", copy.deepcopy(list(DEFAULT_ATTACKS)))
    return raw


def attack_run_config(source: Run, recipe: dict[str, Any], origin: str = "attack recipe") -> AttackRunConfig:
    """The attack run of the finished run ``source`` from an attack recipe (:func:`attack_recipe`)."""
    source_config = recorded_config(source.dir)
    raw = {**attack_recipe(recipe), "experiment": "attack", "name": f"{source.id}{ATTACK_RUNS}", "source_run": source.id,
           "source_config": source_config, "model": source_config.get("model", {})}
    return build_config(raw, origin=origin)


class AttackRun(Experiment):
    """The ``attack`` experiment."""

    config = AttackRunConfig

    @property
    def report_sections(self) -> tuple[Section, ...]:
        """The Robustness section of every attackable experiment (each draws only what the summary has)."""
        return tuple(dict.fromkeys(ATTACKABLE.get(name).robustness_section for name in ATTACKABLE.names()))

    def validate(self, config: AttackRunConfig) -> None:
        attacked = config.attacked()
        EXPERIMENTS.get(attacked.experiment).validate(attacked)
        if attacked.model != config.model:
            raise ValueError(f"model: an attack run uses its source run's model ({attacked.model.name})")

    def inputs(self, config: AttackRunConfig) -> Inputs:
        """What the attacked recipe reads (the source's data, any data the attacks add) and its model."""
        attacked = config.attacked()
        return EXPERIMENTS.get(attacked.experiment).inputs(attacked)

    def run(self, config: AttackRunConfig, run: Run, accelerator: Accelerator) -> dict[str, Any]:
        source = RunStore(run.dir.parent, create=False).finished_run(config.source_run)
        if recorded_config(source.dir) != config.source_config:
            raise ValueError(f"source_run {source.id}: its config.yaml differs from this attack run's source_config")
        attacked, runner = config.attacked(), StagedRunner(config, run, accelerator)
        summary = ATTACKABLE.get(attacked.experiment).attack_finished(runner, attacked, source)
        runner.save_timings()
        return {"source_run": source.id, "source_experiment": attacked.experiment, **summary}


def link_from_source(run: Run, config: AttackRunConfig) -> None:
    """Redraw the source run's report so that it links to this attack run (a failure is only a warning)."""
    try:
        write_run_report(run.dir.parent / config.source_run)
    except Exception as error:  # noqa: BLE001  (the attack run is finished and recorded)
        print(f"warning: the report of {config.source_run} was not redrawn: {type(error).__name__}: {error}", file=sys.stderr)
