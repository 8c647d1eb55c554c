"""Recovery attacks on a finished run, as a child run that references it (``forgetlab attack RUN``)."""

from forgetlab.experiments.attack.run import (
    DEFAULT_ATTACKS, AttackRun, AttackRunConfig, attack_recipe, attack_run_config, link_from_source,
)
from forgetlab.experiments.base import EXPERIMENTS

EXPERIMENTS.register("attack")(AttackRun())

__all__ = ["DEFAULT_ATTACKS", "AttackRun", "AttackRunConfig", "attack_recipe", "attack_run_config", "link_from_source"]
