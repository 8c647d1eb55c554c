"""Did it really forget? The recovery attacks of any experiment (``attacks:`` in a recipe, or
``forgetlab attack RUN`` on a finished one).

An experiment says what is attacked — a :class:`Target`: how to load the *forgotten* model, the *original*
one (before forgetting) and the *never_learned* control (a model that never saw the forget set), how to
measure a model with its own headline metrics, and what the attacks may train on or read out. Each model is
measured first (stage ``<prefix>robustness/models``), then each attack runs on the forgotten model and on
its controls (stage ``<prefix>robustness/<i>-<attack>``), so a killed run resumes at the first unfinished
attack. :func:`robustness_summary` turns the stages into recovery per attack, variant and metric.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import torch

from forgetlab.attacks import AttackContext, AttackSpec, ProbeSplit, build_attack
from forgetlab.attacks.base import CONTROLS, Measure
from forgetlab.config import ExperimentConfig
from forgetlab.data.types import Pair
from forgetlab.experiments.base import StagedRunner
from forgetlab.metrics.recovery import recovery
from forgetlab.registry import Registry
from forgetlab.report.context import Section
from forgetlab.store import Run
from forgetlab.train import DivergenceError

ROLES = ("forgotten", *CONTROLS)


@dataclass
class Target:
    """What an experiment gives the attacks.

    ``roles`` loads each model by role (``forgotten`` and ``original`` always; ``never_learned`` when the
    experiment has one); ``measure`` returns ``{"metrics": {key: value}, "items": {key: [per forget item]}}``;
    ``metrics`` are the headline keys recovery is computed for (those in ``items`` get paired intervals).
    ``measure`` and ``context`` are only called after some role's model was loaded.
    """

    roles: dict[str, Callable[[], torch.nn.Module]]
    measure: Measure
    context: Callable[[], AttackContext]
    metrics: Sequence[str]

    def __post_init__(self) -> None:
        unknown = set(self.roles) - set(ROLES)
        if unknown or not {"forgotten", "original"} <= set(self.roles):
            raise ValueError(f"robustness: roles must include forgotten and original, among {list(ROLES)}; got {sorted(self.roles)}")


class AttackableExperiment(Protocol):
    """An experiment whose finished runs ``forgetlab attack`` can attack (registered in :data:`ATTACKABLE`)."""

    #: Dotted recipe keys an attack run may set besides ``attacks``: only what the attacks train on or read,
    #: never what the source run's results depend on (a key covers the keys under it).
    attack_fields: tuple[str, ...]
    #: The report section that draws the robustness summaries where this experiment's summary has them.
    robustness_section: Section

    def attack_finished(self, runner: StagedRunner, config: ExperimentConfig, source: Run) -> dict[str, Any]:
        """Run ``config.attacks`` (``config``: the source's recipe with the attack run's additions) on the
        finished run ``source``, reading its stages and weights and saving stages through ``runner``;
        return the attack run's summary (robustness summaries where the source's summary has its results)."""


ATTACKABLE: Registry[AttackableExperiment] = Registry("experiment with recovery attacks")


def with_attack_data(source: dict[str, Any], attacks: list[dict[str, Any]], attack_data: dict[str, Any],
                     allowed: Sequence[str]) -> dict[str, Any]:
    """The source run's recipe (``source``, resolved) with the attack run's ``attacks`` and ``attack_data``
    (dotted keys, each under one of ``allowed``) set; anything else is an error naming the key."""
    merged = copy.deepcopy(source)
    merged["attacks"] = attacks
    for key, value in attack_data.items():
        if not any(key == field or key.startswith(f"{field}.") for field in allowed):
            raise ValueError(f"attack_data.{key}: an attack run may only set what its attacks train on "
                             f"({', '.join(allowed)} for {source.get('experiment')})")
        *parents, last = key.split(".")
        node = merged
        for part in parents:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ValueError(f"attack_data.{key}: {part} is not a mapping in the source recipe")
        node[last] = value
    return merged


#: Membership probes: item i of each class goes to train (i mod 4 = 0, 1), val (2) or test (3).
PROBE_SPLIT_OF = ("train", "train", "val", "test")


def membership_splits(members: Sequence[Pair], non_members: Sequence[Pair]) -> dict[str, ProbeSplit]:
    """Probe texts for membership (label 1 = a forget item, 0 = an item of the same kind never trained on),
    as many of each class, dealt into train/val/test by :data:`PROBE_SPLIT_OF`; none when either class has
    fewer than 4 items."""
    n = min(len(members), len(non_members))
    if n < len(PROBE_SPLIT_OF):
        return {}
    rows: dict[str, tuple[list[str], list[int], list[str]]] = {name: ([], [], []) for name in ("train", "val", "test")}
    for label, items in ((1, members[:n]), (0, non_members[:n])):
        for i, item in enumerate(items):
            texts, labels, groups = rows[PROBE_SPLIT_OF[i % len(PROBE_SPLIT_OF)]]
            texts.append(item.text)
            labels.append(label)
            groups.append(item.pair_id)
    return {name: ProbeSplit(*found) for name, found in rows.items()}


def attack_label(index: int, spec: AttackSpec) -> str:
    """The stage key of the ``index``-th attack of a recipe."""
    return f"{index}-{spec.name}"


def run_attacks(runner: StagedRunner, prefix: str, attacks: Sequence[AttackSpec], target: Target,
                n_resamples: int, seed: int) -> dict[str, Any]:
    """Measure the target's models, run every attack (each a stage under ``<prefix>robustness/``) and
    return the summary (:func:`robustness_summary`)."""
    models = runner.stage(f"{prefix}robustness/models", lambda: models_stage(target))
    results = {
        attack_label(i, spec): runner.stage(f"{prefix}robustness/{attack_label(i, spec)}", lambda spec=spec: attack_stage(target, spec))
        for i, spec in enumerate(attacks)
    }
    return robustness_summary(models, results, target.metrics, n_resamples, seed)


def models_stage(target: Target) -> dict[str, Any]:
    """Every role's measurement before any attack."""
    return {"measured": {role: target.measure(load()) for role, load in target.roles.items()}}


def attack_stage(target: Target, spec: AttackSpec) -> dict[str, Any]:
    """One attack on the forgotten model and on its controls (those the target has). A model the attack
    drives to NaN/inf (e.g. relearning at too high a rate) is recorded as ``{"diverged": why}``, no numbers."""
    attack = build_attack(spec)
    loaded = {"forgotten": target.roles["forgotten"]()}  # before the context, which may need what loading sets up
    context = target.context()
    roles = ["forgotten", *(role for role in attack.controls if role in target.roles)]
    results = {}
    for role in roles:
        model = loaded.pop(role, None) or target.roles[role]()
        try:
            results[role] = attack.run(model, context, target.measure)
        except DivergenceError as error:
            results[role] = {"diverged": str(error)}
    return {"attack": spec.model_dump(mode="json"), "results": results}


# --- summary (pure) ------------------------------------------------------------------------------------


def robustness_summary(models: dict[str, Any], attacks: dict[str, dict[str, Any]], metrics: Sequence[str],
                       n_resamples: int, seed: int) -> dict[str, Any]:
    """``summary.robustness``: per attack and variant, each headline metric's recovery with its raw values,
    intervals and the controls; read-outs (no metrics) as their values per role."""
    measured = models["measured"]
    return {
        "metrics": list(metrics),
        "models": {role: {k: v for k, v in m["metrics"].items() if k in metrics} for role, m in measured.items()},
        "attacks": {label: _attack_summary(payload, measured, metrics, n_resamples, seed) for label, payload in attacks.items()},
    }


def _attack_summary(payload: dict[str, Any], measured: dict[str, Any], metrics: Sequence[str], n_resamples: int,
                    seed: int) -> dict[str, Any]:
    results = payload["results"]
    out: dict[str, Any] = {"name": payload["attack"]["name"], "options": payload["attack"]["options"], "variants": {}}
    diverged = {role: found["diverged"] for role, found in results.items() if "diverged" in found}
    if diverged:
        out["diverged"] = diverged
    results = {role: found for role, found in results.items() if role not in diverged}
    for variant, attacked in results.get("forgotten", {}).items():
        if "metrics" not in attacked:  # a read-out: its values per role
            out["variants"][variant] = {role: results[role][variant] for role in results}
            continue
        controls = {role: results[role][variant] for role in results if role != "forgotten"}
        out["variants"][variant] = _variant_summary(attacked, controls, measured, metrics, n_resamples, seed)
    return out


def _variant_summary(attacked: dict[str, Any], controls: dict[str, dict[str, Any]], measured: dict[str, Any],
                     metrics: Sequence[str], n_resamples: int, seed: int) -> dict[str, Any]:
    forgotten, original = measured["forgotten"], measured["original"]
    out = {}
    for key in metrics:
        if key not in attacked["metrics"] or key not in original["metrics"]:
            continue
        values = [m["metrics"][key] for m in (attacked, forgotten, original)]
        items = tuple(m["items"][key] for m in (attacked, forgotten, original)) if key in attacked.get("items", {}) else None
        row = recovery(*values, items=items, n_resamples=n_resamples, seed=seed)
        for role, result in controls.items():
            before, after = measured[role]["metrics"][key], result["metrics"][key]
            row[f"control_{role}"] = {"before": before, "attacked": after, "difference": after - before}
        out[key] = row
    return out


def check_attacks(attacks: Sequence[AttackSpec], relearn_data: dict[str, str | None]) -> None:
    """Each attack of a recipe exists with its options, and what relearning trains on is there:
    ``relearn_data`` maps each kind of relearning data to None when the experiment has it, else to the
    one-line reason why not (e.g. the missing recipe field)."""
    from forgetlab.attacks.relearn import Relearn

    for i, spec in enumerate(attacks):
        try:
            attack = build_attack(spec)
        except (KeyError, ValueError) as error:
            raise ValueError(f"attacks[{i}]: {error.args[0] if isinstance(error, KeyError) else error}") from None
        if isinstance(attack, Relearn) and relearn_data.get(attack.data) is not None:
            raise ValueError(f"attacks[{i}]: relearn on {attack.data!r} items {relearn_data[attack.data]}")
