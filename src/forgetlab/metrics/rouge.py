"""ROUGE-L between generated and reference texts, with Google's ``rouge_score`` (what TOFU, MUSE and
OpenUnlearning use): its tokenizer lower-cases and splits on anything but ``[a-z0-9]``; ``stemmer`` applies
the Porter stemmer to tokens longer than three characters (TOFU and OpenUnlearning: on; MUSE: off)."""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

RougeField = Literal["recall", "precision", "fmeasure"]


def rouge_l(generated: Sequence[str], references: Sequence[str], field: RougeField, *, stemmer: bool = True) -> np.ndarray:
    """Per item ROUGE-L ``field`` of a generated text against its reference (``scorer.score(reference, generated)``)."""
    from rouge_score import rouge_scorer

    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated texts for {len(references)} references")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stemmer)
    return np.array([getattr(scorer.score(ref, gen)["rougeL"], field) for gen, ref in zip(generated, references)], dtype=np.float64)
