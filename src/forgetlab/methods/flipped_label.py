"""Flipped-label forgetting: always train on a wrong answer (the variant of Study A)."""

from __future__ import annotations

from typing import Sequence

from forgetlab.data.types import MCDoc
from forgetlab.methods.base import METHODS, Method, stable_unit


@METHODS.register("flipped_label")
class FlippedLabel(Method):
    """Fine-tune on a wrong option: the other one for binary items, a seeded random wrong one otherwise."""

    name = "flipped_label"
    needs_choices = True
    flips_labels = True

    def relabel(self, docs: Sequence[MCDoc], seed: int) -> list[MCDoc]:
        return [doc.with_gold(_wrong_choice(doc, seed)) for doc in docs]


def _wrong_choice(doc: MCDoc, seed: int) -> int:
    offset = 1 + int(stable_unit("flipped_label", seed, doc.task, doc.doc_id) * (doc.n_choices - 1))
    return (doc.gold + offset) % doc.n_choices
