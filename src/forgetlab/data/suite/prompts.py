"""lm-evaluation-harness 0.4.13's Python prompt code (its ``!function`` entries), re-implemented line for line
for the built-in tasks of :mod:`forgetlab.data.suite` (HellaSwag, WinoGrande, COPA, MNLI, LogiQA, MathQA)."""

from __future__ import annotations

import re
from typing import Any


def hellaswag_preprocess(text: str) -> str:
    """lm-eval ``hellaswag/utils.py::preprocess``: strip WikiHow ``[title]``-style artifacts."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def hellaswag_process_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """lm-eval ``hellaswag/utils.py::process_docs`` for one doc (adds query, choices, gold)."""
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return {
        **doc,
        "query": hellaswag_preprocess(doc["activity_label"] + ": " + ctx),
        "choices": [hellaswag_preprocess(ending) for ending in doc["endings"]],
        "gold": int(doc["label"]),
    }


def winogrande_doc_to_text(doc: dict[str, Any]) -> int:
    """lm-eval ``preprocess_winogrande.doc_to_text``: the gold index (multiple-input task)."""
    return {"1": 0, "2": 1}[doc["answer"]]


def winogrande_doc_to_target(doc: dict[str, Any]) -> str:
    """lm-eval ``preprocess_winogrande.doc_to_target``: the sentence after the blank."""
    idx = doc["sentence"].index("_") + 1
    return doc["sentence"][idx:].strip()


def winogrande_doc_to_choice(doc: dict[str, Any]) -> list[str]:
    """lm-eval ``preprocess_winogrande.doc_to_choice``: the sentence up to the blank, filled."""
    idx = doc["sentence"].index("_")
    return [doc["sentence"][:idx] + opt for opt in (doc["option1"], doc["option2"])]


def _copa_choice(choice: str) -> str:
    return choice[0].lower() + choice[1:]


def copa_doc_to_text(doc: dict[str, Any]) -> str:
    """lm-eval ``super_glue/copa/utils.py::doc_to_text``: premise without its period + connector."""
    connector = {"cause": "because", "effect": "therefore"}[doc["question"]]
    return doc["premise"].strip()[:-1] + f" {connector}"


def copa_doc_to_target(doc: dict[str, Any]) -> str:
    """lm-eval COPA target: the correct choice, lower-cased first letter, with a leading space."""
    correct = doc["choice1"] if doc["label"] == 0 else doc["choice2"]
    return " " + _copa_choice(correct)


def copa_doc_to_choice(doc: dict[str, Any]) -> list[str]:
    """lm-eval COPA choices (leading space; with the default delimiter the continuation starts with 2 spaces)."""
    return [" " + _copa_choice(doc["choice1"]), " " + _copa_choice(doc["choice2"])]


def mnli_doc_to_text(doc: dict[str, Any]) -> str:
    """lm-eval ``glue/mnli/utils.py::doc_to_text``."""
    return "{}\nQuestion: {} True, False or Neither?\nAnswer:".format(
        doc["premise"],
        doc["hypothesis"].strip() + ("" if doc["hypothesis"].strip().endswith(".") else "."),
    )


def logiqa_doc_to_text(doc: dict[str, Any]) -> str:
    """lm-eval ``logiqa/utils_logiqa.py::doc_to_text``."""
    prompt = "Passage: " + doc["context"] + "\n"
    prompt += "Question: " + doc["question"] + "\nChoices:\n"
    for choice, option in zip("abcd", doc["options"]):
        prompt += f"{choice.upper()}. {option}\n"
    prompt += "Answer:"
    return prompt


def logiqa_doc_to_target(doc: dict[str, Any]) -> int:
    """lm-eval ``logiqa/utils_logiqa.py::doc_to_target``: index of the answer letter."""
    return ["a", "b", "c", "d"].index(doc["label"].strip())


def mathqa_doc_to_choice(doc: dict[str, Any]) -> list[str]:
    """lm-eval ``mathqa/utils.py::doc_to_choice``: options parsed from ``"a ) 1 , b ) 2 , ..."``."""
    return [c[4:].rstrip(" ,") for c in re.findall(r"[abcd] \) .*?, |e \) .*?$", doc["options"])]
