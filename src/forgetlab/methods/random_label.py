"""Random-label forgetting (Zhang, Choshen & Andreas, "Unforgettable Generalization in Language Models", 2024)."""

from __future__ import annotations

from typing import Sequence

from forgetlab.data.types import MCDoc
from forgetlab.methods.base import METHODS, Method, stable_unit


@METHODS.register("random_label")
class RandomLabel(Method):
    """Fine-tune on labels drawn uniformly from the item's options, once per item and seed."""

    name = "random_label"
    needs_choices = True

    def relabel(self, docs: Sequence[MCDoc], seed: int) -> list[MCDoc]:
        return [doc.with_gold(int(stable_unit("random_label", seed, doc.task, doc.doc_id) * doc.n_choices)) for doc in docs]
