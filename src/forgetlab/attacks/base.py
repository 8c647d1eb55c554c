"""Recovery attacks: does forgotten knowledge come back?

An attack takes the forgotten model and a ``measure`` function (the experiment's own metrics of a model)
and returns the metrics of every variant it tries: ``{variant label: {metric: value}}`` — the quantized
model, the model after k relearning steps, ... Attacks never change the model they are given (they work on
a copy). Each attack is one file registered by name in :data:`ATTACKS`; recipes list them under
``attacks:`` with their options.
"""

from __future__ import annotations

import abc

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Hashable, Mapping, Sequence

import torch
from accelerate import Accelerator

from forgetlab.config import Spec
from forgetlab.registry import Registry
from forgetlab.train import EncodedItem

Measure = Callable[[torch.nn.Module], dict[str, Any]]
Results = dict[str, dict[str, Any]]
#: The models an experiment can attack besides the forgotten one: the model before forgetting, and one that
#: never learned the forget set (the control that tells memory coming back from the attack teaching).
CONTROLS = ("original", "never_learned")


@dataclass(frozen=True)
class ProbeSplit:
    """Labelled texts for a linear probe (one of train, val, test): each text, its 0/1 label and its group
    (the question a multiple-choice text answers; for (prompt, target) items, the item itself)."""

    texts: Sequence[str]
    labels: Sequence[int]
    groups: Sequence[Hashable]

    def __post_init__(self) -> None:
        if not len(self.texts) == len(self.labels) == len(self.groups):
            raise ValueError(f"probe split: {len(self.texts)} texts, {len(self.labels)} labels, {len(self.groups)} groups")


@dataclass
class AttackContext:
    """What an attack may use besides the model: the tokenizer, the seed, the processes, encoded items to
    relearn on by kind (never the forget items themselves), and the forget set for read-outs: its (prompt,
    target) requests, or — for multiple-choice items — each item's choice requests and gold index; and
    labelled texts for linear probes."""

    tokenizer: Any
    seed: int
    accelerator: Accelerator
    relearn_items: Mapping[str, Sequence[EncodedItem]] = field(default_factory=dict)
    forget_requests: Sequence[tuple[str, str]] = ()  # (prompt, target) of the forget items, for read-outs
    forget_choices: Sequence[tuple[Sequence[tuple[str, str]], int]] = ()  # multiple choice: (choice requests, gold)
    probe_splits: Mapping[str, ProbeSplit] = field(default_factory=dict)  # train, val, test texts for linear probes
    score_tokens: int = 2048  # tokens per scoring pass: the run's compute.score_tokens


class Attack(abc.ABC):
    """Base class: one way to try to bring forgotten knowledge back."""

    name: ClassVar[str] = "attack"
    #: The other models the experiment attacks the same way, as controls (see :data:`CONTROLS`).
    controls: ClassVar[tuple[str, ...]] = ("original",)

    @abc.abstractmethod
    def run(self, model: torch.nn.Module, context: AttackContext, measure: Measure) -> Results:
        """``{variant label: measure(attacked model)}`` (``model`` itself is left as it was)."""


ATTACKS: Registry[type[Attack]] = Registry("attack")


class AttackSpec(Spec):
    """One attack of a recipe: its registered name and its options (the attack's constructor arguments)."""

    name: str
    options: dict[str, Any] = {}


def build_attack(spec: AttackSpec) -> Attack:
    """The attack of a spec; unknown names and options are errors naming them."""
    try:
        return ATTACKS.get(spec.name)(**spec.options)
    except TypeError as error:
        raise ValueError(f"attack {spec.name}: {error}") from None
