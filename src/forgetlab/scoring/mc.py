"""Multiple-choice items on the scoring engine: lm-eval's acc and acc_norm, confidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from forgetlab.scoring.engine import Scorer

if TYPE_CHECKING:
    from forgetlab.data.types import MCDoc


@dataclass(frozen=True)
class MCScore:
    """The scores of one multiple-choice item; ``pred``/``pred_norm`` follow lm-eval's acc/acc_norm."""

    doc_id: str
    gold: int
    logprobs: tuple[float, ...]
    cont_chars: tuple[int, ...]  # characters per choice, the acc_norm denominator
    task: str = ""

    @property
    def pred(self) -> int:
        """The choice with the highest log-likelihood (first on ties, like ``np.argmax``)."""
        return int(np.argmax(self.logprobs))

    @property
    def pred_norm(self) -> int:
        """The choice with the highest log-likelihood per character (lm-eval ``acc_norm``)."""
        return int(np.argmax(np.asarray(self.logprobs) / np.asarray(self.cont_chars, dtype=float)))

    @property
    def correct(self) -> bool:
        return self.pred == self.gold

    @property
    def correct_norm(self) -> bool:
        return self.pred_norm == self.gold

    @property
    def confidence(self) -> float:
        """``p(gold) / sum_j p(choice j)``: the softmax of the log-likelihoods at the gold choice."""
        lp = np.asarray(self.logprobs, dtype=np.float64)
        return float(np.exp(lp[self.gold] - (lp.max() + np.log(np.exp(lp - lp.max()).sum()))))

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-friendly record (fields and derived properties)."""
        return {
            "task": self.task,
            "doc_id": self.doc_id,
            "gold": self.gold,
            "logprobs": list(self.logprobs),
            "cont_chars": list(self.cont_chars),
            "pred": self.pred,
            "pred_norm": self.pred_norm,
            "correct": self.correct,
            "correct_norm": self.correct_norm,
            "confidence": self.confidence,
        }



# --------------------------------------------------------------------------------------- MC items


def _choice_chars(doc: MCDoc, target_delimiter: str) -> tuple[int, ...]:
    """lm-eval's acc_norm denominators: ``len(choice)`` without the target delimiter.

    For multiple-input items (one shared continuation, one context per choice) lm-eval measures the
    choices, which are the contexts.
    """
    if len(set(doc.continuations)) == 1 and len(set(doc.contexts)) > 1:
        return tuple(len(c) for c in doc.contexts)
    n = len(target_delimiter)
    return tuple(len(c) - n if n and c.startswith(target_delimiter) else len(c) for c in doc.continuations)


def score_mc(
    scorer: Scorer, docs: Sequence[MCDoc], *, target_delimiter: str = " ", desc: str | None = None
) -> list[MCScore]:
    """Score every choice of every item (identical requests run once) into :class:`MCScore`.

    ``target_delimiter`` is the task's lm-eval delimiter that the continuations start with; it is not
    counted in ``cont_chars`` (lm-eval divides by ``len(choice)``).
    """
    requests, names = [], []
    for doc in docs:
        for i in range(doc.n_choices):
            requests.append(doc.request(i))
            names.append(f"{doc.task} item {doc.doc_id} choice {i}")
    scored = iter(scorer.loglikelihood(requests, names=names, desc=desc or "multiple choice"))
    return [
        MCScore(
            doc_id=doc.doc_id,
            gold=doc.gold,
            logprobs=tuple(next(scored).logprob for _ in range(doc.n_choices)),
            cont_chars=_choice_chars(doc, target_delimiter),
            task=doc.task,
        )
        for doc in docs
    ]


