"""The TOFU items of a run (:class:`TofuSets`), how a question and an answer become text for the model
(:class:`Renderer`), and the encoded items training reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from forgetlab.data.tofu import AUTHOR_QUESTIONS, TofuItem, load_tofu, tofu_input_files
from forgetlab.experiments.tofu.config import TofuDataSpec, TofuEvalSpec
from forgetlab.methods import Method
from forgetlab.train import EncodedItem, encode_requests

#: The evaluation sets, in order, and the TOFU config each is read from (``forget`` from the forget split's).
EVAL_SETS = ("forget", "retain", "real_authors", "world_facts")
OPTION_SETS = ("real_authors", "world_facts")  # probability normalised over the options; the answer stands in for a paraphrase


@dataclass
class TofuSets:
    """What the models learn (``forget``, ``retain``: TOFU question-answer pairs) and what is evaluated
    (``eval``: per set of :data:`EVAL_SETS`, items with their paraphrased and perturbed answers)."""

    forget: list[TofuItem]
    retain: list[TofuItem]
    eval: dict[str, list[TofuItem]] = field(default_factory=dict)


def _configs(spec: TofuDataSpec) -> dict[str, str]:
    """The TOFU config behind each part of the run."""
    pct = int(spec.forget[-2:])
    return {"forget": spec.forget, "retain": f"retain{100 - pct}", "eval_forget": f"{spec.forget}_perturbed",
            "eval_retain": "retain_perturbed", "real_authors": "real_authors_perturbed", "world_facts": "world_facts_perturbed"}


def data_files(spec: TofuDataSpec) -> list[Any]:
    """The local files the run reads (part of its identity)."""
    return [f for config in _configs(spec).values() for f in tofu_input_files(config, spec.source, spec.root)]


def load_sets(spec: TofuDataSpec) -> TofuSets:
    """The forget split, the first ``retain_authors`` retain authors, and the evaluation sets."""
    def load(config: str) -> list[TofuItem]:
        return load_tofu(config, source=spec.source, root=spec.root, hub_path=spec.hub_path)

    configs = _configs(spec)
    retain = load(configs["retain"])
    if spec.retain_authors is not None:
        retain = retain[: spec.retain_authors * AUTHOR_QUESTIONS]
    evaluated = {
        "forget": load(configs["eval_forget"]),
        "retain": load(configs["eval_retain"])[: spec.eval_retain_authors * AUTHOR_QUESTIONS],
        "real_authors": load(configs["real_authors"])[: spec.real_authors],
        "world_facts": load(configs["world_facts"])[: spec.world_facts],
    }
    return TofuSets(load(configs["forget"]), retain, evaluated)


def sets_to_stage(sets: TofuSets) -> dict[str, Any]:
    """The ``data`` stage's payload: every item's fields."""
    def rows(items: list[TofuItem]) -> list[dict[str, Any]]:
        return [dict(vars(i), perturbed_answers=list(i.perturbed_answers)) for i in items]

    return {"forget": rows(sets.forget), "retain": rows(sets.retain), "eval": {k: rows(v) for k, v in sets.eval.items()}}


def sets_from_stage(payload: dict[str, Any]) -> TofuSets:
    def items(rows: list[dict[str, Any]]) -> list[TofuItem]:
        return [TofuItem(**dict(r, perturbed_answers=tuple(r["perturbed_answers"]))) for r in rows]

    return TofuSets(items(payload["forget"]), items(payload["retain"]), {k: items(v) for k, v in payload["eval"].items()})


class Renderer:
    """Questions and answers as the model reads them: ``prompt(question)`` and ``target(answer)`` (the answer as
    scored and trained: with the end of the turn and EOS)."""

    def __init__(self, tokenizer: Any, data: TofuDataSpec) -> None:
        self.tokenizer, self.format, self.system = tokenizer, data.prompt, data.system_prompt
        if self.format == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ValueError("data.prompt: chat needs a tokenizer with a chat template; this model has none (use data.prompt=qa)")
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has no EOS token: TOFU scores the answer's end")

    def _messages(self, question: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system is not None else []
        return system + [{"role": "user", "content": question}]

    def prompt(self, question: str) -> str:
        if self.format == "qa":
            return f"Question: {question}\nAnswer: "
        return self.tokenizer.apply_chat_template(self._messages(question), tokenize=False, add_generation_prompt=True)

    def target(self, question: str, answer: str) -> str:
        """The answer as the model must produce it, through EOS (appended unless the turn already ends with it)."""
        eos = self.tokenizer.eos_token
        if self.format == "qa":
            return answer + eos
        prompt = self.prompt(question)
        whole = self.tokenizer.apply_chat_template(
            self._messages(question) + [{"role": "assistant", "content": answer}], tokenize=False
        )
        if not whole.startswith(prompt):
            raise ValueError("data.prompt: chat: the chat template's conversation does not start with its generation prompt")
        turn = whole[len(prompt):]
        return turn if turn.endswith(eos) else turn + eos


def encode(
    tokenizer: Any, renderer: Renderer, items: Sequence[TofuItem], method: Method | None, seed: int, max_length: int,
    spec: TofuEvalSpec,
) -> list[EncodedItem]:
    """What training reads: each item's prompt with the continuations the method trains on (its ``pair_targets``:
    refusals, preference pairs; None: the answer), each rendered through the end of the turn."""
    encoded = []
    for item in items:
        answers, gold = method.pair_targets(item.item_id, item.answer, seed) if method else ([item.answer], 0)
        prompt = renderer.prompt(item.question)
        requests = [(prompt, renderer.target(item.question, a)) for a in answers]
        encoded.append(encode_requests(tokenizer, item.item_id, requests, gold, max_length, boundary=spec.boundary))
    return encoded
