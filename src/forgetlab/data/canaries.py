"""Forget sets for Study B and their seeded insertion into the training stream.

**Out-of-distribution canaries** (Carlini et al. 2019, "The Secret Sharer"; Baluta et al. 2024):
random secrets of a fixed format. A canary is the pair

    prompt = "My secret is "        target = "<10 random alphanumeric characters>"

so the prompt (shared by every canary) is the context and only the secret is the target: training
fits ``log p(secret | prompt)`` exactly as it fits a translation given its source, and exposure ranks
that same quantity. (lm-eval's ``encode_pair`` moves the prompt's trailing space into the
continuation, so the scored text is ``" <secret>"`` after ``"My secret is"``; every canary and
reference is treated alike.) ``references`` are secrets of the same format that are never inserted:
the candidate space exposure ranks against. ``unseen`` canaries are more never-inserted secrets,
scored against the references as a control (their mean exposure should be ≈ log2(e) ≈ 1.44 bits).

**In-distribution forget sets**: held-out pairs of the corpus itself (never in the base training
set), in the same repetition groups.

**Insertion**: each epoch is the base training set plus every forget item repeated ``r`` times
(``r`` its group's repetition count), shuffled by a generator seeded with ``(seed, epoch)``.

**The reference model's stream** is that exact stream with every forget item *replaced* by its own
stand-in at each of its positions (:func:`reference_stream`): a never-inserted canary of the same
format for a canary, a held-out corpus pair for an ID item, each picked from a pool of spares as
the closest in (prompt, target) token counts (:func:`stand_in_map`). The reference thus trains on as
many items, optimizer steps and (up to the best match in the pool) tokens, with the same
learning-rate schedule, the same data distribution and each stand-in repeated as often as its forget
item, and has never seen any forget item: generalized exposure then measures memorization of the
item itself, not the extra training (or the canary format) the original model had.
``replacements=None`` gives the older stream with the forget items removed (fewer steps and tokens).
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from pydantic import Field, field_validator

from forgetlab.config import Spec
from forgetlab.data.types import Pair

ALPHANUMERIC = string.ascii_letters + string.digits


class CanarySpec(Spec):
    """The format of the canaries and how many never-inserted secrets are drawn."""

    prompt: str = "My secret is "
    target_format: str = Field("{secret}", description="the target text; {secret} is the random string")
    length: int = Field(10, ge=1)
    alphabet: str = Field(ALPHANUMERIC, min_length=2)
    n_references: int = Field(10_000, ge=1, description="never-inserted secrets that exposure ranks against")
    n_unseen: int = Field(512, ge=0, description="never-inserted control canaries (expected exposure ≈ log2 e)")

    @field_validator("alphabet")
    @classmethod
    def _distinct(cls, value: str) -> str:
        if len(set(value)) != len(value):
            raise ValueError("alphabet: characters must be distinct")
        return value

    @field_validator("target_format")
    @classmethod
    def _has_secret(cls, value: str) -> str:
        if "{secret}" not in value:
            raise ValueError("target_format must contain {secret}")
        return value


class GroupKind(StrEnum):
    """What a forget group holds: ``ood`` canaries (random secrets) or ``id`` pairs of the corpus itself."""

    OOD = "ood"
    ID = "id"

    @property
    def has_references(self) -> bool:
        """Canaries have a candidate space of never-inserted secrets of the same format (the references), so
        exposure ranks them there; corpus pairs have none (their relative exposure ranks among test pairs)."""
        return self is GroupKind.OOD


class GroupSpec(Spec):
    """The forget groups: one per (kind, repetition count), ``per_group`` items each (paper: 512)."""

    repetitions: list[int] = Field(default_factory=lambda: [1, 10, 100])
    per_group: int = Field(512, ge=1)
    kinds: list[GroupKind] = Field(default_factory=lambda: [GroupKind.OOD, GroupKind.ID])

    @field_validator("repetitions")
    @classmethod
    def _positive_unique(cls, value: list[int]) -> list[int]:
        if not value or any(r < 1 for r in value) or len(set(value)) != len(value):
            raise ValueError("repetitions: distinct positive integers, at least one")
        return value

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[GroupKind]) -> list[GroupKind]:
        if not value or len(set(value)) != len(value):
            raise ValueError("kinds: 'ood' and/or 'id', each at most once")
        return value

    def names(self) -> list[str]:
        """Group names in order: ``ood_x1, ood_x10, ..., id_x1, ...``."""
        return [group_name(kind, r) for kind in self.kinds for r in self.repetitions]


def group_name(kind: GroupKind, repetitions: int) -> str:
    return f"{kind}_x{repetitions}"


@dataclass
class ForgetGroup:
    """Items inserted ``repetitions`` times per epoch; ``kind`` is ood (canaries) or id (corpus pairs)."""

    name: str
    kind: GroupKind
    repetitions: int
    items: list[Pair]

    def to_dict(self) -> dict[str, Any]:
        items = [p.to_dict() for p in self.items]
        return {"name": self.name, "kind": self.kind.value, "repetitions": self.repetitions, "items": items}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "ForgetGroup":
        return cls(row["name"], GroupKind(row["kind"]), int(row["repetitions"]), [Pair.from_dict(p) for p in row["items"]])


@dataclass
class CanarySets:
    """Canary groups, the reference secrets and the unseen control canaries (all distinct secrets)."""

    groups: list[ForgetGroup]
    references: list[Pair]
    unseen: list[Pair] = field(default_factory=list)
    spares: list[Pair] = field(default_factory=list)


def random_secrets(n: int, spec: CanarySpec, rng: random.Random, exclude: set[str] | None = None) -> list[str]:
    """``n`` distinct random strings of ``spec.length`` characters from ``spec.alphabet``."""
    space = len(spec.alphabet) ** spec.length
    taken = set(exclude or ())
    if n + len(taken) > space:
        raise ValueError(f"canaries: {n + len(taken)} distinct secrets requested, only {space} exist")
    out: list[str] = []
    while len(out) < n:
        secret = "".join(rng.choice(spec.alphabet) for _ in range(spec.length))
        if secret not in taken:
            taken.add(secret)
            out.append(secret)
    return out


def canary_pair(spec: CanarySpec, pair_id: str, secret: str) -> Pair:
    """The (prompt, target) pair of one secret."""
    return Pair(pair_id, spec.prompt, spec.target_format.format(secret=secret))


def make_canaries(
    spec: CanarySpec, repetitions: Sequence[int], per_group: int, seed: int, *, n_spares: int = 0
) -> CanarySets:
    """Seeded canary groups (one per repetition count), references, unseen controls and ``n_spares``
    spare canaries (the reference model's stand-in pool); all secrets distinct. The spares are drawn
    last, so the other sets do not depend on ``n_spares``."""
    rng = random.Random(f"canaries:{seed}")
    n_groups = len(repetitions) * per_group
    n_plain = n_groups + spec.n_references + spec.n_unseen
    secrets = random_secrets(n_plain + n_spares, spec, rng)
    groups = [
        ForgetGroup(
            group_name(GroupKind.OOD, r), GroupKind.OOD, r,
            [canary_pair(spec, f"canary-{r}-{i}", s) for i, s in enumerate(secrets[g * per_group : (g + 1) * per_group])],
        )
        for g, r in enumerate(repetitions)
    ]
    named = lambda prefix, chunk: [canary_pair(spec, f"{prefix}-{i}", s) for i, s in enumerate(chunk)]  # noqa: E731
    return CanarySets(
        groups,
        named("reference", secrets[n_groups : n_groups + spec.n_references]),
        named("unseen", secrets[n_groups + spec.n_references : n_plain]),
        named("spare-canary", secrets[n_plain:]),
    )


def make_id_groups(pool: Sequence[Pair], repetitions: Sequence[int], per_group: int) -> list[ForgetGroup]:
    """In-distribution groups: consecutive slices of ``pool`` (held-out corpus pairs), one per repetition count."""
    need = len(repetitions) * per_group
    if len(pool) < need:
        raise ValueError(f"in-distribution forget sets need {need} held-out pairs, the pool has {len(pool)}")
    return [
        ForgetGroup(group_name(GroupKind.ID, r), GroupKind.ID, r, list(pool[g * per_group : (g + 1) * per_group]))
        for g, r in enumerate(repetitions)
    ]


Lengths = Callable[[Pair], Sequence[int]]


def closest_stand_ins(items: Sequence[Pair], pool: Sequence[Pair], lengths: Lengths) -> list[Pair]:
    """For each item, in order, the unused pool pair with the smallest sum of absolute differences of
    ``lengths`` (e.g. prompt and target token counts); ties go to the earlier pool pair."""
    if len(pool) < len(items):
        raise ValueError(f"{len(items)} stand-ins needed, the pool has {len(pool)} pairs")
    table = np.array([lengths(p) for p in pool], dtype=np.float64).reshape(len(pool), -1)
    free = np.ones(len(pool), dtype=bool)
    chosen: list[Pair] = []
    for item in items:
        distance = np.where(free, np.abs(table - np.asarray(lengths(item), dtype=np.float64)).sum(axis=1), np.inf)
        index = int(np.argmin(distance))
        chosen.append(pool[index])
        free[index] = False
    return chosen


def stand_in_map(groups: Sequence[ForgetGroup], pools: Mapping[str, Sequence[Pair]], lengths: Lengths) -> dict[str, Pair]:
    """``pair_id`` of each forget item -> its stand-in from ``pools[group.kind]`` (:func:`closest_stand_ins`).

    The most repeated groups choose first, so the items that weigh most in the stream get the closest matches.
    """
    out: dict[str, Pair] = {}
    for kind in dict.fromkeys(g.kind for g in groups):
        items = [p for g in sorted(groups, key=lambda g: -g.repetitions) if g.kind == kind for p in g.items]
        out.update((item.pair_id, stand_in) for item, stand_in in zip(items, closest_stand_ins(items, pools[kind], lengths)))
    return out


@dataclass(frozen=True)
class StreamEntry:
    """One position of the training stream: a pair and its forget group (None: base corpus)."""

    pair: Pair
    group: str | None


def training_stream(base: Sequence[Pair], groups: Sequence[ForgetGroup], epochs: float, seed: int) -> list[StreamEntry]:
    """The original model's stream: per epoch, base + forget items × repetitions, shuffled with ``(seed, epoch)``.

    A fractional ``epochs`` keeps the first part of the last epoch's shuffle.
    """
    if epochs <= 0:
        raise ValueError("epochs must be positive")
    dataset = [StreamEntry(p, None) for p in base]
    for group in groups:
        dataset.extend(StreamEntry(p, group.name) for p in group.items for _ in range(group.repetitions))
    stream: list[StreamEntry] = []
    for epoch in range(math.ceil(epochs)):
        order = np.random.default_rng([seed, epoch]).permutation(len(dataset))
        stream.extend(dataset[i] for i in order)
    return stream[: max(1, round(epochs * len(dataset)))]


def reference_stream(stream: Sequence[StreamEntry], replacements: Mapping[str, Pair] | None = None) -> list[StreamEntry]:
    """The reference model's stream: the same stream with every forget item replaced by its stand-in
    (``replacements``: forget ``pair_id`` -> stand-in, see :func:`stand_in_map`) at the same positions,
    or, with ``replacements=None``, removed. Stand-ins enter as base items (``group`` None)."""
    if replacements is None:
        return [entry for entry in stream if entry.group is None]
    return [entry if entry.group is None else StreamEntry(replacements[entry.pair.pair_id], None) for entry in stream]
