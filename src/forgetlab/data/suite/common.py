"""What the built-in task specs share: split maps and the hub description."""

from __future__ import annotations

TRAIN_VAL = {"train": "train", "validation": "validation"}
TRAIN_VAL_TEST = {"train": "train", "validation": "validation", "test": "test"}


def hub_description(path: str, name: str | None = None) -> str:
    return f"Hugging Face dataset {path}" + (f" ({name})" if name else "") + ", as lm-eval loads it."
