"""The two example types: :class:`MCDoc` (a multiple-choice item: one (context, continuation) request per
choice) and :class:`Pair` (one (prompt, target) example). Training and scoring encode both the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MCDoc:
    """One multiple-choice item, as lm-evaluation-harness turns it into loglikelihood requests.

    Choice ``i`` is scored as ``log p(continuations[i] | contexts[i])``. For ordinary tasks every
    context is the same prompt and each continuation is ``target_delimiter + choice``; for
    "multiple input" tasks such as WinoGrande the contexts differ and the continuation is shared.
    """

    task: str
    doc_id: str
    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    gold: int

    def __post_init__(self) -> None:
        n = len(self.contexts)
        if n < 2 or len(self.continuations) != n:
            raise ValueError(
                f"{self.task} item {self.doc_id}: needs >= 2 choices with one context and one "
                f"continuation each, got {n} contexts and {len(self.continuations)} continuations"
            )
        if not 0 <= self.gold < n:
            raise ValueError(f"{self.task} item {self.doc_id}: gold index {self.gold} out of range 0..{n - 1}")
        if any(not c for c in self.continuations):
            raise ValueError(f"{self.task} item {self.doc_id}: empty continuation")

    @property
    def n_choices(self) -> int:
        return len(self.contexts)

    def request(self, choice: int) -> tuple[str, str]:
        """The (context, continuation) loglikelihood request of one choice."""
        return self.contexts[choice], self.continuations[choice]

    def with_gold(self, gold: int) -> "MCDoc":
        """The same item with another answer marked as gold (used for random/flipped labels)."""
        return MCDoc(self.task, self.doc_id, self.contexts, self.continuations, gold)


@dataclass(frozen=True)
class Pair:
    """One (prompt, target) example — a corpus sentence pair, a canary, an item to unlearn; ``pair_id`` is
    unique within a run (e.g. ``train-123``, ``canary-7``, ``row-4``)."""

    pair_id: str
    prompt: str
    target: str

    def request(self) -> tuple[str, str]:
        """The (context, continuation) loglikelihood request."""
        return self.prompt, self.target

    @property
    def text(self) -> str:
        """Prompt and target as one string (what similarity search compares)."""
        return self.prompt + self.target

    def to_dict(self) -> dict[str, str]:
        return {"pair_id": self.pair_id, "prompt": self.prompt, "target": self.target}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Pair":
        return cls(str(row["pair_id"]), str(row["prompt"]), str(row["target"]))
