"""The built-in benchmark tasks, with lm-evaluation-harness 0.4.13's default zero-shot prompts.

Templates are copied verbatim from lm-eval's task YAMLs (``lm_eval/tasks/<lm_eval_config>``);
where lm-eval uses Python (``!function``) the functions below re-implement it line for line.
Each spec also says which original files under the data root hold the task (``local``) and
how they map to lm-eval's splits. ``eval_split`` is the split lm-eval reports: ``test`` for ARC,
SciQ, OpenBookQA, LogiQA and MathQA (their YAMLs set ``test_split``), ``validation`` otherwise
(MNLI: ``validation_matched``).

Known prompt differences between local files and the hub data lm-eval downloads:

* WiC: local sentences are space-tokenised ("Room and board ."), HF's are detokenised, so the two
  sentence lines differ in spacing; the quoted word ``sentence1[start1:end1]`` is the same.
* BoolQ train: the local file is the ``google/boolq`` export whose passages lack the
  ``"Title -- "`` prefix that ``aps/super_glue`` passages have (validation is exact).
* HellaSwag: local text is llama.cpp's, already cleaned of ``[title]`` artifacts; ``ctx_a`` and
  ``ctx_b`` are reconstructed (see :func:`forgetlab.data.local.split_hellaswag_context`).
"""

from __future__ import annotations

import re
from typing import Any

from forgetlab.data import local
from forgetlab.data.tasks import LocalSplit, TaskSpec, register_task

TRAIN_VAL = {"train": "train", "validation": "validation"}
TRAIN_VAL_TEST = {"train": "train", "validation": "validation", "test": "test"}


# ------------------------------------------------------------------ lm-eval Python prompt code


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


# ---------------------------------------------------------------------------------- the specs


def _hub(path: str, name: str | None = None) -> str:
    return f"Hugging Face dataset {path}" + (f" ({name})" if name else "") + ", as lm-eval loads it."


SPECS: list[TaskSpec] = [
    TaskSpec(
        name="boolq",
        domain="reading_comprehension",
        lm_eval_task="boolq",
        lm_eval_config="super_glue/boolq/default.yaml",
        dataset_path="aps/super_glue",
        dataset_name="boolq",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="{{passage}}\nQuestion: {{question}}?\nAnswer:",
        doc_to_choice=["no", "yes"],
        doc_to_target="label",
        fields={"passage": "str", "question": "str", "label": "int"},
        label_field="label",
        local={
            "train": LocalSplit(("boolq/boolq_train_first1000.jsonl",), local.google_boolq),
            "validation": LocalSplit(("boolq/val.jsonl",), local.superglue_boolq),
        },
        descriptions={
            "hub": _hub("aps/super_glue", "boolq"),
            "local": "SuperGLUE val.jsonl (3270, exact) + first 1000 of 9427 train rows from the google/boolq "
            "export (passages without the 'Title -- ' prefix).",
        },
        notes="Local train passages lack the 'Title -- ' prefix of aps/super_glue; only 1000 train rows locally.",
    ),
    TaskSpec(
        name="piqa",
        domain="commonsense",
        lm_eval_task="piqa",
        lm_eval_config="piqa/piqa.yaml",
        dataset_path="baber/piqa",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="Question: {{goal}}\nAnswer:",
        doc_to_choice="{{[sol1, sol2]}}",
        doc_to_target="label",
        fields={"goal": "str", "sol1": "str", "sol2": "str", "label": "int"},
        label_field="label",
        local={"validation": LocalSplit(("piqa/valid.jsonl", "piqa/valid-labels.lst"), local.piqa)},
        descriptions={
            "hub": _hub("baber/piqa"),
            "local": "Original PIQA valid.jsonl + valid-labels.lst (1838); no train.",
        },
    ),
    TaskSpec(
        name="sciq",
        domain="science_qa",
        lm_eval_task="sciq",
        lm_eval_config="sciq/sciq.yaml",
        dataset_path="allenai/sciq",
        splits=TRAIN_VAL_TEST,
        eval_split="test",
        doc_to_text="{{support.lstrip()}}\nQuestion: {{question}}\nAnswer:",
        doc_to_choice="{{[distractor1, distractor2, distractor3, correct_answer]}}",
        doc_to_target=3,
        fields={
            "support": "str",
            "question": "str",
            "distractor1": "str",
            "distractor2": "str",
            "distractor3": "str",
            "correct_answer": "str",
        },
        label_field="correct_answer",
        descriptions={"hub": _hub("allenai/sciq")},
        notes="No local copy exists (see SOURCES.md); hub or files only. The gold answer is always the 4th choice.",
    ),
    *[
        TaskSpec(
            name=f"arc_{level.lower()}",
            domain="science_qa",
            lm_eval_task=f"arc_{level.lower()}",
            lm_eval_config=f"arc/arc_{level.lower()}.yaml",
            dataset_path="allenai/ai2_arc",
            dataset_name=f"ARC-{level}",
            splits=TRAIN_VAL_TEST,
            eval_split="test",
            doc_to_text="Question: {{question}}\nAnswer:",
            doc_to_choice="{{choices.text}}",
            doc_to_target="{{choices.label.index(answerKey)}}",
            fields={"question": "str", "choices": "dict", "answerKey": "str"},
            label_field="answerKey",
            local={
                split: LocalSplit((f"arc_{level.lower()}/ARC-{level}_{split}.jsonl",), local.hf_jsonl)
                for split in ("train", "validation", "test")
            },
            descriptions={
                "hub": _hub("allenai/ai2_arc", f"ARC-{level}"),
                "local": f"JSON-lines export of HF allenai/ai2_arc ARC-{level} (all three splits, exact).",
            },
        )
        for level in ("Easy", "Challenge")
    ],
    TaskSpec(
        name="rte",
        domain="entailment",
        lm_eval_task="rte",
        lm_eval_config="glue/rte/default.yaml",
        dataset_path="nyu-mll/glue",
        dataset_name="rte",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:",
        doc_to_choice=["True", "False"],
        doc_to_target="label",
        fields={"sentence1": "str", "sentence2": "str", "label": "int"},
        label_field="label",
        local={
            "train": LocalSplit(("rte/train.tsv",), local.glue_pair_tsv("sentence1", "sentence2", local.ENTAILMENT_2)),
            "validation": LocalSplit(
                ("rte/dev.tsv",), local.glue_pair_tsv("sentence1", "sentence2", local.ENTAILMENT_2)
            ),
        },
        descriptions={"hub": _hub("nyu-mll/glue", "rte"), "local": "GLUE RTE train.tsv/dev.tsv (2490/277)."},
    ),
    TaskSpec(
        name="sglue_rte",
        domain="entailment",
        lm_eval_task="sglue_rte",
        lm_eval_config="super_glue/rte/default.yaml",
        dataset_path="aps/super_glue",
        dataset_name="rte",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="{{premise}}\nQuestion: {{hypothesis}} True or False?\nAnswer:",
        doc_to_choice=["True", "False"],
        doc_to_target="label",
        fields={"premise": "str", "hypothesis": "str", "label": "int"},
        label_field="label",
        local={
            "train": LocalSplit(("rte/superglue/train.jsonl",), local.superglue_pairs(local.ENTAILMENT_2)),
            "validation": LocalSplit(("rte/superglue/val.jsonl",), local.superglue_pairs(local.ENTAILMENT_2)),
        },
        descriptions={
            "hub": _hub("aps/super_glue", "rte"),
            "local": "SuperGLUE RTE jsonl (2490/277; same pairs as GLUE RTE).",
        },
    ),
    TaskSpec(
        name="qnli",
        domain="entailment",
        lm_eval_task="qnli",
        lm_eval_config="glue/qnli/default.yaml",
        dataset_path="nyu-mll/glue",
        dataset_name="qnli",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="{{question}}\n{{sentence}}\nQuestion: Does this response answer the question?\nAnswer:",
        doc_to_choice=["yes", "no"],
        doc_to_target="label",
        fields={"question": "str", "sentence": "str", "label": "int"},
        label_field="label",
        local={
            "validation": LocalSplit(("qnli/dev.tsv",), local.glue_pair_tsv("question", "sentence", local.ENTAILMENT_2))
        },
        descriptions={
            "hub": _hub("nyu-mll/glue", "qnli"),
            "local": "GLUE QNLI dev.tsv (5463, read with csv.QUOTE_NONE); no train.",
        },
    ),
    TaskSpec(
        name="cb",
        domain="entailment",
        lm_eval_task="cb",
        lm_eval_config="super_glue/cb/default.yaml",
        dataset_path="aps/super_glue",
        dataset_name="cb",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="{{premise}}\nQuestion: {{hypothesis}}. True, False, or Neither?\nAnswer:",
        doc_to_choice=["True", "False", "Neither"],
        doc_to_target="label",
        fields={"premise": "str", "hypothesis": "str", "label": "int"},
        label_field="label",
        local={
            "train": LocalSplit(("cb/train.jsonl",), local.superglue_pairs(local.CB_LABELS)),
            "validation": LocalSplit(("cb/val.jsonl",), local.superglue_pairs(local.CB_LABELS)),
        },
        descriptions={"hub": _hub("aps/super_glue", "cb"), "local": "SuperGLUE CB jsonl (250/56)."},
    ),
    TaskSpec(
        name="wnli",
        domain="entailment",
        lm_eval_task="wnli",
        lm_eval_config="glue/wnli/default.yaml",
        dataset_path="nyu-mll/glue",
        dataset_name="wnli",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:",
        doc_to_choice=["False", "True"],
        doc_to_target="label",
        fields={"sentence1": "str", "sentence2": "str", "label": "int"},
        label_field="label",
        local={
            "train": LocalSplit(("wnli/train.tsv",), local.glue_pair_tsv("sentence1", "sentence2", None)),
            "validation": LocalSplit(("wnli/dev.tsv",), local.glue_pair_tsv("sentence1", "sentence2", None)),
        },
        descriptions={"hub": _hub("nyu-mll/glue", "wnli"), "local": "GLUE WNLI train.tsv/dev.tsv (635/71)."},
        notes="Dev premises repeat train premises (adversarial split); prepare_task's overlap check removes them.",
    ),
    TaskSpec(
        name="wic",
        domain="word_sense",
        lm_eval_task="wic",
        lm_eval_config="super_glue/wic/default.yaml",
        dataset_path="aps/super_glue",
        dataset_name="wic",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="Sentence 1: {{sentence1}}\nSentence 2: {{sentence2}}\nQuestion: Is the word "
        "'{{sentence1[start1:end1]}}' used in the same way in the two sentences above?\nAnswer:",
        doc_to_choice=["no", "yes"],
        doc_to_target="label",
        fields={"sentence1": "str", "sentence2": "str", "start1": "int", "end1": "int", "label": "int"},
        label_field="label",
        local={
            "train": LocalSplit(("wic/train.data.txt", "wic/train.gold.txt"), local.wic),
            "validation": LocalSplit(("wic/dev.data.txt", "wic/dev.gold.txt"), local.wic),
        },
        descriptions={
            "hub": _hub("aps/super_glue", "wic"),
            "local": "Original WiC release (5428/638): space-tokenised sentences, so prompts differ from HF's "
            "detokenised text in spacing; the quoted word is identical; row order differs from HF.",
        },
        notes="Local WiC sentences are tokenised ('Room and board .' vs HF 'Room and board.').",
    ),
    TaskSpec(
        name="cola",
        domain="acceptability",
        lm_eval_task="cola",
        lm_eval_config="glue/cola/default.yaml",
        dataset_path="nyu-mll/glue",
        dataset_name="cola",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="{{sentence}}\nQuestion: Does this sentence make sense?\nAnswer:",
        doc_to_choice=["no", "yes"],
        doc_to_target="label",
        fields={"sentence": "str", "label": "int"},
        label_field="label",
        local={
            "train": LocalSplit(("cola/train.tsv",), local.glue_cola),
            "validation": LocalSplit(("cola/dev.tsv",), local.glue_cola),
        },
        descriptions={
            "hub": _hub("nyu-mll/glue", "cola"),
            "local": "GLUE CoLA tsv without header (8551/1043; dev = in-domain + out-of-domain).",
        },
    ),
    TaskSpec(
        name="hellaswag",
        domain="commonsense",
        lm_eval_task="hellaswag",
        lm_eval_config="hellaswag/hellaswag.yaml",
        dataset_path="Rowan/hellaswag",
        splits=TRAIN_VAL,
        eval_split="validation",
        process_doc=hellaswag_process_doc,
        doc_to_text="{{query}}",
        doc_to_choice="choices",
        doc_to_target="{{label}}",
        fields={"activity_label": "str", "ctx_a": "str", "ctx_b": "str", "endings": "list", "label": "str"},
        label_field="label",
        local={"validation": LocalSplit(("hellaswag/hellaswag_val_from_llamacpp.jsonl",), local.hellaswag_llamacpp)},
        descriptions={
            "hub": _hub("Rowan/hellaswag"),
            "local": "llama.cpp HellaSwag validation text (10042, HF order); ctx_a/ctx_b reconstructed.",
        },
        notes="Local text was already cleaned of [title]-style artifacts; ctx_b is recovered heuristically.",
    ),
    TaskSpec(
        name="winogrande",
        domain="commonsense",
        lm_eval_task="winogrande",
        lm_eval_config="winogrande/default.yaml",
        dataset_path="allenai/winogrande",
        dataset_name="winogrande_xl",
        splits=TRAIN_VAL,
        eval_split="validation",
        multiple_input=True,
        doc_to_text=winogrande_doc_to_text,
        doc_to_choice=winogrande_doc_to_choice,
        doc_to_target=winogrande_doc_to_target,
        fields={"sentence": "str", "option1": "str", "option2": "str", "answer": "str"},
        label_field="answer",
        local={"validation": LocalSplit(("winogrande/dev.jsonl", "winogrande/dev-labels.lst"), local.winogrande)},
        descriptions={
            "hub": _hub("allenai/winogrande", "winogrande_xl"),
            "local": "WinoGrande dev.jsonl (1267, = winogrande_xl validation) checked against dev-labels.lst.",
        },
        notes="Multiple-input task: one context per option (sentence up to the blank), shared continuation.",
    ),
    TaskSpec(
        name="openbookqa",
        domain="science_qa",
        lm_eval_task="openbookqa",
        lm_eval_config="openbookqa/openbookqa.yaml",
        dataset_path="allenai/openbookqa",
        dataset_name="main",
        splits=TRAIN_VAL_TEST,
        eval_split="test",
        doc_to_text="question_stem",
        doc_to_choice="{{choices.text}}",
        doc_to_target="{{choices.label.index(answerKey.lstrip())}}",
        fields={"question_stem": "str", "choices": "dict", "answerKey": "str"},
        label_field="answerKey",
        descriptions={"hub": _hub("allenai/openbookqa", "main")},
        notes="No local copy; the prompt is the bare question stem (no 'Question:'/'Answer:').",
    ),
    TaskSpec(
        name="copa",
        domain="commonsense",
        lm_eval_task="copa",
        lm_eval_config="super_glue/copa/default.yaml",
        dataset_path="aps/super_glue",
        dataset_name="copa",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text=copa_doc_to_text,
        doc_to_choice=copa_doc_to_choice,
        doc_to_target=copa_doc_to_target,
        fields={"premise": "str", "choice1": "str", "choice2": "str", "question": "str", "label": "int"},
        label_field="label",
        local={
            "train": LocalSplit(("copa/copa_train.jsonl",), local.hf_jsonl),
            "validation": LocalSplit(("copa/copa_validation.jsonl",), local.hf_jsonl),
        },
        descriptions={"hub": _hub("aps/super_glue", "copa"), "local": "HF super_glue/copa export (400/100, exact)."},
        notes="As in lm-eval, continuations start with two spaces (delimiter ' ' + choice ' ...').",
    ),
    TaskSpec(
        name="mnli",
        domain="entailment",
        lm_eval_task="mnli",
        lm_eval_config="glue/mnli/default.yaml",
        dataset_path="nyu-mll/glue",
        dataset_name="mnli",
        splits={"train": "train", "validation": "validation_matched"},
        eval_split="validation",
        doc_to_text=mnli_doc_to_text,
        doc_to_choice=["True", "Neither", "False"],
        doc_to_target="label",
        fields={"premise": "str", "hypothesis": "str", "label": "int"},
        label_field="label",
        descriptions={"hub": _hub("nyu-mll/glue", "mnli") + " validation = validation_matched."},
        notes="No local copy (files over the size limit).",
    ),
    TaskSpec(
        name="mrpc",
        domain="paraphrase",
        lm_eval_task="mrpc",
        lm_eval_config="glue/mrpc/default.yaml",
        dataset_path="nyu-mll/glue",
        dataset_name="mrpc",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="Sentence 1: {{sentence1}}\nSentence 2: {{sentence2}}\nQuestion: Do both sentences mean the same "
        "thing?\nAnswer:",
        doc_to_choice=["no", "yes"],
        doc_to_target="label",
        fields={"sentence1": "str", "sentence2": "str", "label": "int"},
        label_field="label",
        local={
            "train": LocalSplit(("mrpc/msr_paraphrase_train.txt", "mrpc/dev_ids.tsv"), local.msr_split(False)),
            "validation": LocalSplit(("mrpc/msr_paraphrase_train.txt", "mrpc/dev_ids.tsv"), local.msr_split(True)),
            "test": LocalSplit(("mrpc/msr_paraphrase_test.txt",), local.msr_test),
        },
        descriptions={
            "hub": _hub("nyu-mll/glue", "mrpc"),
            "local": "MSRP source files split as HF does (train 3668 / validation 408 / labelled test 1725).",
        },
    ),
    TaskSpec(
        name="qqp",
        domain="paraphrase",
        lm_eval_task="qqp",
        lm_eval_config="glue/qqp/default.yaml",
        dataset_path="nyu-mll/glue",
        dataset_name="qqp",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="Question 1: {{question1}}\nQuestion 2: {{question2}}\nQuestion: Do both questions ask the same "
        "thing?\nAnswer:",
        doc_to_choice=["no", "yes"],
        doc_to_target="label",
        fields={"question1": "str", "question2": "str", "label": "int"},
        label_field="label",
        descriptions={"hub": _hub("nyu-mll/glue", "qqp")},
        notes="No local copy (files over the size limit).",
    ),
    TaskSpec(
        name="sst2",
        domain="sentiment",
        lm_eval_task="sst2",
        lm_eval_config="glue/sst2/default.yaml",
        dataset_path="nyu-mll/glue",
        dataset_name="sst2",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="{{sentence}}\nQuestion: Is this sentence positive or negative?\nAnswer:",
        doc_to_choice=["negative", "positive"],
        doc_to_target="label",
        fields={"sentence": "str", "label": "int"},
        label_field="label",
        local={
            "train": LocalSplit(("sst2/train.tsv",), local.glue_sst2),
            "validation": LocalSplit(("sst2/dev.tsv",), local.glue_sst2),
        },
        descriptions={"hub": _hub("nyu-mll/glue", "sst2"), "local": "GLUE SST-2 tsv (67349/872)."},
    ),
    TaskSpec(
        name="siqa",
        domain="commonsense",
        lm_eval_task="social_iqa",
        lm_eval_config="siqa/siqa.yaml",
        dataset_path="lighteval/siqa",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="Q: {{context}} {{question}}\nA:",
        doc_to_choice="{{[answerA, answerB, answerC]}}",
        doc_to_target="{{ (label|int) - 1 }}",
        fields={
            "context": "str",
            "question": "str",
            "answerA": "str",
            "answerB": "str",
            "answerC": "str",
            "label": "str",
        },
        label_field="label",
        descriptions={"hub": _hub("lighteval/siqa") + " lm-eval calls the task social_iqa."},
        notes="No local copy. Labels are '1'..'3'.",
    ),
    TaskSpec(
        name="logiqa",
        domain="logic",
        lm_eval_task="logiqa",
        lm_eval_config="logiqa/logiqa.yaml",
        dataset_path="EleutherAI/logiqa",
        dataset_name="logiqa",
        splits=TRAIN_VAL_TEST,
        eval_split="test",
        doc_to_text=logiqa_doc_to_text,
        doc_to_choice="{{options}}",
        doc_to_target=logiqa_doc_to_target,
        fields={"context": "str", "question": "str", "options": "list", "label": "str"},
        label_field="label",
        local={
            "validation": LocalSplit(("logiqa/Eval.txt",), local.logiqa),
            "test": LocalSplit(("logiqa/Test.txt",), local.logiqa),
        },
        descriptions={
            "hub": _hub("EleutherAI/logiqa", "logiqa"),
            "local": "Original LogiQA Eval.txt/Test.txt (651/651) parsed like EleutherAI/logiqa; no train.",
        },
    ),
    TaskSpec(
        name="mathqa",
        domain="math",
        lm_eval_task="mathqa",
        lm_eval_config="mathqa/mathqa.yaml",
        dataset_path="regisss/math_qa",
        splits=TRAIN_VAL_TEST,
        eval_split="test",
        doc_to_text="Question: {{Problem}}\nAnswer:",
        doc_to_choice=mathqa_doc_to_choice,
        doc_to_target="{{['a', 'b', 'c', 'd', 'e'].index(correct)}}",
        fields={"Problem": "str", "options": "str", "correct": "str"},
        label_field="correct",
        descriptions={"hub": _hub("regisss/math_qa")},
        notes="No local copy (only Git-LFS pointers were found).",
    ),
    TaskSpec(
        name="commonsense_qa",
        domain="commonsense",
        lm_eval_task="commonsense_qa",
        lm_eval_config="commonsense_qa/default.yaml",
        dataset_path="tau/commonsense_qa",
        splits=TRAIN_VAL,
        eval_split="validation",
        doc_to_text="Question: {{ question.strip() }}\nA. {{choices['text'][0]}}\nB. {{choices['text'][1]}}\nC. "
        "{{choices['text'][2]}}\nD. {{choices['text'][3]}}\nE. {{choices['text'][4]}}\nAnswer:",
        doc_to_choice=["A", "B", "C", "D", "E"],
        doc_to_target="answerKey",
        fields={"question": "str", "choices": "dict", "answerKey": "str"},
        label_field="answerKey",
        local={"validation": LocalSplit(("commonsense_qa/dev_rand_split.jsonl",), local.hf_jsonl)},
        descriptions={
            "hub": _hub("tau/commonsense_qa"),
            "local": "HF tau/commonsense_qa validation export (1221); no train.",
        },
        notes="Choices are the letters A-E; the options are listed in the prompt.",
    ),
]

for _spec in SPECS:
    register_task(_spec)
