"""A small MUSE-News stand-in in the authors' file layout, for tests that run the MUSE experiments on a tiny model."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = "the minister said council budget river school police market storm election hospital train city report".split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_muse_news(root: Path, seed: int = 0) -> Path:
    """``<root>/muse_news/...``: 6 raw forget articles, privleak texts inside them, VerbMem prompts, KnowMem QA."""
    rng = random.Random(seed)
    base = root / "muse_news"
    articles = [" ".join(sentence(rng, 8) for _ in range(6)) + f" Reporter number {i} wrote it." for i in range(6)]
    files = {
        "raw/forget.json": articles,
        "privleak/forget.json": [a[:120] for a in articles[:4]],
        "privleak/holdout.json": [" ".join(sentence(rng, 8) for _ in range(2)) for _ in range(4)],
        "privleak/retain2.json": [" ".join(sentence(rng, 8) for _ in range(3)) for _ in range(3)],
        "verbmem/forget.json": [{"prompt": a[:80], "gt": a[80:140]} for a in articles[2:5]],
        "knowmem/forget_qa.json": [{"question": f"Who wrote article {i}?", "answer": f"Reporter number {i}"} for i in range(4)],
        "knowmem/retain2_qa.json": [{"question": "What did the council pass?", "answer": "the budget"}] * 3,
        "knowmem/forget_qa_icl.json": [{"question": "Who?", "answer": "A reporter"}] * 2,
        "knowmem/retain2_qa_icl.json": [{"question": "What?", "answer": "A budget"}] * 2,
    }
    for name, rows in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows))
    return root
