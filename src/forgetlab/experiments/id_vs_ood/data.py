"""The data of an ``id_vs_ood`` run (the ``data`` stage) and the training streams built from it.

The corpus's training split, shuffled once, is cut into the in-distribution (ID) forget pool, the base
training set and the ID stand-in spares; canaries (out-of-distribution groups, references, unseen controls
and their spares) come from :mod:`forgetlab.data.canaries`. The original model trains on the base set with
every forget item inserted; the reference model on the same stream with each forget item replaced by a
stand-in, or removed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from forgetlab.data.canaries import (
    ForgetGroup,
    GroupKind,
    StreamEntry,
    make_canaries,
    make_id_groups,
    reference_stream,
    stand_in_map,
    training_stream,
)
from forgetlab.data.corpus import load_corpus
from forgetlab.data.types import Pair
from forgetlab.experiments.id_vs_ood.config import IdVsOodConfig
from forgetlab.scoring import encode_pair
from forgetlab.train import EncodedItem

SPARES_PER_ITEM = 32  # candidates per forget item among which its stand-in in the reference stream is chosen


@dataclass
class IdVsOodData:
    """Everything the run trains on and scores, as saved in the ``data`` stage."""

    base: list[Pair]
    groups: list[ForgetGroup]
    references: list[Pair]
    unseen: list[Pair]
    test: list[Pair]
    heldout: list[Pair]
    dropped: dict[str, int] = field(default_factory=dict)
    spares: dict[str, list[Pair]] = field(default_factory=dict)

    def group(self, name: str) -> ForgetGroup:
        """The forget group called ``name``."""
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(f"no forget group {name!r}")

    def to_dict(self) -> dict[str, Any]:
        pairs = lambda ps: [p.to_dict() for p in ps]  # noqa: E731
        return {
            "base": pairs(self.base), "groups": [g.to_dict() for g in self.groups], "references": pairs(self.references),
            "unseen": pairs(self.unseen), "test": pairs(self.test), "heldout": pairs(self.heldout), "dropped": self.dropped,
            "spares": {kind: pairs(ps) for kind, ps in self.spares.items()},
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "IdVsOodData":
        pairs = lambda key: [Pair.from_dict(p) for p in row[key]]  # noqa: E731
        return cls(
            pairs("base"), [ForgetGroup.from_dict(g) for g in row["groups"]], pairs("references"), pairs("unseen"),
            pairs("test"), pairs("heldout"), dict(row.get("dropped", {})),
            {kind: [Pair.from_dict(p) for p in ps] for kind, ps in row.get("spares", {}).items()},
        )


def build_data(config: IdVsOodConfig) -> IdVsOodData:
    """Seeded corpus subsets, ID groups (held-out train pairs), canaries and the reference model's spares.

    The training split is shuffled once and cut into the ID forget pool, the base training set and
    (``train.reference: replace``) up to ``SPARES_PER_ITEM`` spare pairs per ID forget item; as many
    spare canaries per canary are fresh secrets. The training stage picks each forget item's stand-in
    among them by token counts. The base set, groups, references and test/held-out pairs do not
    depend on ``train.reference``.
    """
    corpus = load_corpus(config.corpus)
    rng = random.Random(f"study_b:{config.seed}")  # the seed's name predates "id_vs_ood": renaming it changes every run
    spec, replace = config.groups, config.train.reference == "replace"
    train = corpus.split("train")[:]
    rng.shuffle(train)
    n_id = spec.per_group * len(spec.repetitions) if GroupKind.ID in spec.kinds else 0
    n_spare = n_id if replace else 0  # the least that works: one stand-in per item
    if len(train) < n_id + config.train_size + n_spare:
        raise ValueError(
            f"corpus {corpus.name!r}: {len(train)} training pairs after cleaning, {n_id} (ID forget sets) + "
            f"{config.train_size} (train_size) + {n_spare} (ID stand-ins for the reference model) needed"
        )
    reps = spec.repetitions if GroupKind.OOD in spec.kinds else []
    n_spares = SPARES_PER_ITEM * len(reps) * spec.per_group if replace else 0
    canaries = make_canaries(config.canaries, reps, spec.per_group, config.seed, n_spares=n_spares)
    made: dict[GroupKind, Callable[[], list[ForgetGroup]]] = {
        GroupKind.OOD: lambda: canaries.groups,
        GroupKind.ID: lambda: make_id_groups(train[:n_id], spec.repetitions, spec.per_group),
    }
    start = n_id + config.train_size
    spares: dict[str, list[Pair]] = {}
    if replace:
        spares = {GroupKind.OOD: canaries.spares, GroupKind.ID: train[start : start + SPARES_PER_ITEM * n_id]}
    return IdVsOodData(
        base=train[n_id : n_id + config.train_size],
        groups=[group for kind in spec.kinds for group in made[kind]()],
        references=canaries.references,
        unseen=canaries.unseen,
        test=_sample(corpus.split("test"), config.test_size, rng, "test"),
        heldout=_sample(corpus.split("validation"), config.eval.heldout_size, rng, "validation"),
        dropped=corpus.dropped,
        spares=spares,
    )


def _sample(pairs: Sequence[Pair], n: int, rng: random.Random, split: str) -> list[Pair]:
    if len(pairs) < n:
        raise ValueError(f"the corpus {split} split has {len(pairs)} pairs after cleaning, {n} needed")
    return rng.sample(list(pairs), n)


def original_training_stream(config: IdVsOodConfig, data: IdVsOodData) -> list[StreamEntry]:
    """The original model's stream: the base pairs with every forget item inserted, seeded."""
    return training_stream(data.base, data.groups, config.train.epochs, config.seed)


def reference_training_stream(
    config: IdVsOodConfig, data: IdVsOodData, lengths: Callable[[Pair], Sequence[int]]
) -> tuple[list[StreamEntry], dict[str, str]]:
    """The reference model's stream: the original stream with every forget item replaced by its stand-in
    (``train.reference: replace``; closest in ``lengths``, e.g. :func:`token_lengths`) or removed
    (``remove``); and each forget item's stand-in (``pair_id`` to ``pair_id``)."""
    stream = original_training_stream(config, data)
    if config.train.reference == "remove":
        return reference_stream(stream), {}
    stand_ins = stand_in_map(data.groups, data.spares, lengths)
    return reference_stream(stream, stand_ins), {k: v.pair_id for k, v in stand_ins.items()}


def token_lengths(tokenizer: Any, pair: Pair) -> tuple[int, int]:
    """Prompt and target tokens of a pair, tokenised as for training."""
    ctx, cont = encode_pair(tokenizer, pair.prompt, pair.target)
    return len(ctx), len(cont)


def stream_tokens(items: Sequence[EncodedItem]) -> dict[str, int]:
    """Tokens of a training stream: whole sequences, and the trained-on targets (after the prompt, EOS included)."""
    return {
        "tokens": sum(len(item.sequences[0]) for item in items),
        "target_tokens": sum(len(item.sequences[0]) - item.answer_starts[0] for item in items),
    }
