"""Task specifications in lm-evaluation-harness terms, and loading a task's items from any source.

A :class:`TaskSpec` holds what an lm-eval task YAML holds for a ``multiple_choice`` task
(``doc_to_text``, ``doc_to_choice``, ``doc_to_target``, ``target_delimiter``, dataset path and
splits) plus where forgetlab can find the data offline. Templates are rendered with the same
Jinja settings and the same field-name / digit / literal rules as lm-eval 0.4.13's
``ConfigurableTask``, so the (context, continuation) requests are identical to lm-eval's for the
same HF-layout doc.

Sources (``load_task_docs(source=...)``):

* ``"local"``: the original benchmark files under a data root (env ``FORGETLAB_DATA``, else
  ``../shared/data`` relative to the working directory), converted to the HF field layout;
* ``"hub"``: ``datasets.load_dataset(dataset_path, dataset_name)`` as lm-eval does;
* ``"files"``: user files per split (jsonl/json/tsv/csv/parquet) already in the HF field layout;
* ``"synthetic"``: generated in code (see :mod:`forgetlab.data.synthetic`);
* ``"auto"``: local if all of the task's local files exist, else synthetic, else hub.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Union

import jinja2

from forgetlab.data.records import Record, data_error, read_table_file
from forgetlab.data.types import MCDoc
from forgetlab.registry import Registry

Template = Union[str, int, list, Callable[[dict], Any]]
SPLITS = ("train", "validation", "test")
SOURCES = ("auto", "local", "hub", "files", "synthetic")
FIELD_KINDS = ("str", "int", "list", "dict", "any")

_JINJA = jinja2.Environment(loader=jinja2.BaseLoader(), undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_JINJA.filters["regex_replace"] = lambda s, pattern, repl, count=0: re.sub(pattern, repl, s, count=count)


@dataclass(frozen=True)
class LocalSplit:
    """One split's original files (relative to the data root) and the reader that converts them."""

    files: tuple[str, ...]
    reader: Callable[..., list[Record]]


@dataclass(frozen=True)
class SyntheticSource:
    """A generator ``generate(seed, sizes) -> {split: [HF-layout dict]}`` and its default sizes/seed."""

    generate: Callable[[int, Mapping[str, int]], dict[str, list[dict[str, Any]]]]
    sizes: Mapping[str, int]
    seed: int = 0


def _text_or_index(spec: Template, doc: dict) -> str | int:
    """lm-eval's ``doc_to_text``/``doc_to_target`` rule: a constant int, a callable, a field name, or a Jinja
    template whose all-digit rendering becomes an int."""
    if isinstance(spec, int) or callable(spec):
        return spec if isinstance(spec, int) else spec(doc)
    if spec in doc:
        return doc[spec]
    text = render_template(spec, doc)
    return ast.literal_eval(text) if text.isdigit() else text


@dataclass(frozen=True)
class TaskSpec:
    """One multiple-choice task in lm-eval terms, plus where to find its data.

    ``doc_to_text``/``doc_to_choice``/``doc_to_target`` follow lm-eval's YAML semantics: a string
    that names a field returns that field, any other string is a Jinja template (a rendered
    ``doc_to_choice`` is parsed as a Python literal, a rendered all-digit text/target becomes an
    int), a list or int is a constant, a callable is called on the doc. ``process_doc`` is applied
    first (lm-eval's ``process_docs``, one doc at a time). ``multiple_input`` tasks (WinoGrande)
    return the gold index from ``doc_to_text`` and one context per choice from ``doc_to_choice``.
    ``splits`` maps forgetlab's split names to the HF split names lm-eval uses; ``eval_split`` is
    the split lm-eval reports (its ``test_split`` if set, else ``validation_split``).
    """

    name: str
    domain: str
    doc_to_text: Template
    doc_to_choice: Template
    doc_to_target: Template
    fields: Mapping[str, str]
    label_field: str
    splits: Mapping[str, str]
    eval_split: str
    dataset_path: str | None = None
    dataset_name: str | None = None
    target_delimiter: str = " "
    process_doc: Callable[[dict], dict] | None = None
    multiple_input: bool = False
    local: Mapping[str, LocalSplit] = field(default_factory=dict)
    synthetic: SyntheticSource | None = None
    descriptions: Mapping[str, str] = field(default_factory=dict)
    lm_eval_task: str | None = None
    lm_eval_config: str | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.eval_split not in self.splits:
            raise ValueError(f"task {self.name}: eval_split {self.eval_split!r} not in splits {list(self.splits)}")
        bad = {k: v for k, v in self.fields.items() if v not in FIELD_KINDS}
        if bad:
            raise ValueError(f"task {self.name}: unknown field kinds {bad}; use {FIELD_KINDS}")

    # ------------------------------------------------------------------ lm-eval style rendering
    def doc_text(self, doc: dict) -> str | int:
        """lm-eval ``doc_to_text``: the prompt (or the gold index for multiple-input tasks)."""
        return _text_or_index(self.doc_to_text, doc)

    def doc_choices(self, doc: dict) -> list[str]:
        """lm-eval ``doc_to_choice``: the answer options (or the contexts, for multiple-input tasks)."""
        spec = self.doc_to_choice
        if isinstance(spec, list):
            return list(spec)
        if callable(spec):
            return list(spec(doc))
        if spec in doc:
            return list(doc[spec])
        return list(ast.literal_eval(render_template(spec, doc)))

    def doc_target(self, doc: dict) -> int | str:
        """lm-eval ``doc_to_target``: the gold index, or the gold choice text (or shared continuation)."""
        return _text_or_index(self.doc_to_target, doc)

    def to_mcdoc(self, doc: dict, doc_id: str, origin: str = "") -> MCDoc:
        """Render one HF-layout doc into its lm-eval loglikelihood requests.

        Raises one ValueError naming ``origin`` (file and line/row) and the field on bad input.
        """
        origin = origin or f"{self.name} {doc_id}"
        doc = coerce_fields(self, doc, origin)
        try:
            if self.process_doc is not None:
                doc = self.process_doc(doc)
            text, choices, target = self.doc_text(doc), self.doc_choices(doc), self.doc_target(doc)
        except (KeyError, IndexError, ValueError, TypeError, SyntaxError, jinja2.TemplateError) as exc:
            raise data_error(
                origin,
                f"task {self.name}: cannot render the item ({type(exc).__name__}: {exc}); "
                f"check field {self.label_field!r} and the fields {sorted(self.fields)}",
            ) from None
        if self.multiple_input:
            return self._multiple_input_doc(doc_id, text, choices, target, origin)
        if not isinstance(text, str):
            raise data_error(
                origin, f"task {self.name}: doc_to_text gave {type(text).__name__}, expected a prompt string"
            )
        gold = self._gold_index(target, choices, origin)
        conts = tuple(f"{self.target_delimiter}{c}" for c in choices)
        return MCDoc(self.name, doc_id, (text,) * len(choices), conts, gold)

    def _multiple_input_doc(self, doc_id: str, gold: Any, contexts: list[str], target: Any, origin: str) -> MCDoc:
        if not isinstance(gold, int) or isinstance(gold, bool):
            raise data_error(
                origin, f"task {self.name}: multiple-input doc_to_text must give the gold index, got {gold!r}"
            )
        self._check_range(gold, len(contexts), origin)
        cont = f"{self.target_delimiter}{target}"
        return MCDoc(self.name, doc_id, tuple(contexts), (cont,) * len(contexts), gold)

    def _gold_index(self, target: Any, choices: list[str], origin: str) -> int:
        if isinstance(target, str):
            if target not in choices:
                raise data_error(origin, f"field {self.label_field!r}: unknown label {target!r} (choices: {choices})")
            return choices.index(target)
        if not isinstance(target, int) or isinstance(target, bool):
            raise data_error(origin, f"field {self.label_field!r}: label {target!r} is neither an index nor a choice")
        self._check_range(target, len(choices), origin)
        return target

    def _check_range(self, gold: int, n: int, origin: str) -> None:
        if not 0 <= gold < n:
            raise data_error(
                origin, f"field {self.label_field!r}: label gives gold index {gold}, out of range 0..{n - 1}"
            )


@functools.lru_cache(maxsize=512)
def _compiled(template: str) -> jinja2.Template:
    return _JINJA.from_string(template)


def render_template(template: str, doc: dict) -> str:
    """Render an lm-eval Jinja template (StrictUndefined, trailing newline kept) on a doc."""
    return _compiled(template).render(**doc)


# --------------------------------------------------------------------------------- field checks


def _coerce(kind: str, value: Any) -> Any:
    if kind == "str":
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError(f"expected a string, got {type(value).__name__} {value!r}")
        return str(value)
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        raise TypeError(f"expected an integer, got {value!r}")
    if kind in ("list", "dict"):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise TypeError(f"expected a {kind} (or its JSON text), got {value[:60]!r}") from None
        if not isinstance(value, list if kind == "list" else dict):
            raise TypeError(f"expected a {kind}, got {type(value).__name__}")
        return value
    return value


def coerce_fields(spec: TaskSpec, doc: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """The doc with the spec's required fields present and of the right kind.

    Strings from CSV/TSV cells become ints, lists or dicts where the field needs it; a missing
    field or a wrong kind raises a ValueError naming ``origin`` and the field.
    """
    out = dict(doc)
    for name, kind in spec.fields.items():
        if name not in out:
            present = ", ".join(sorted(out)) or "(none)"
            raise data_error(origin, f"task {spec.name}: missing field {name!r} (fields present: {present})")
        try:
            out[name] = _coerce(kind, out[name])
        except TypeError as exc:
            raise data_error(origin, f"task {spec.name}: field {name!r}: {exc}") from None
    return out


# ------------------------------------------------------------------------------------ registry

TASKS: Registry[TaskSpec] = Registry("task")


def get_task(name: str) -> TaskSpec:
    """The registered spec for ``name`` (the built-ins register when :mod:`forgetlab.data` is imported)."""
    return TASKS.get(name)


def task_names() -> list[str]:
    """Names of all registered tasks (the built-ins register when :mod:`forgetlab.data` is imported)."""
    return TASKS.names()


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a spec to :data:`TASKS` under its name (ValueError if the name is taken)."""
    return TASKS.register(spec.name)(spec)


# --------------------------------------------------------------------------------- data roots


def resolve_data_root(data_root: str | Path | None = None, *, required: bool = True) -> Path | None:
    """The directory holding the original benchmark files.

    ``data_root`` if given, else env ``FORGETLAB_DATA``, else ``../shared/data`` relative to the
    current directory. Missing everywhere: ValueError if ``required``, else ``None``.
    """
    if data_root is not None:
        candidates = [("data_root argument", Path(data_root))]
    elif os.environ.get("FORGETLAB_DATA"):
        candidates = [("FORGETLAB_DATA", Path(os.environ["FORGETLAB_DATA"]))]
    else:
        candidates = [("default ../shared/data", Path.cwd().parent / "shared" / "data")]
    how, path = candidates[0]
    if path.is_dir():
        return path
    if required:
        raise ValueError(
            f"no benchmark data directory: {how} -> {path} does not exist; pass data_root=... or set FORGETLAB_DATA"
        )
    return None


def local_files_present(spec: TaskSpec, data_root: Path | None) -> bool:
    """True when the task has a local layout and all of its files exist under ``data_root``."""
    if not spec.local or data_root is None:
        return False
    return all((data_root / f).is_file() for split in spec.local.values() for f in split.files)


# ------------------------------------------------------------------------------------ loading


def load_task_records(
    name: str,
    *,
    source: str = "auto",
    data_root: str | Path | None = None,
    hub_path: str | None = None,
    files: Mapping[str, str | Path] | None = None,
    synthetic_sizes: Mapping[str, int] | None = None,
    synthetic_seed: int | None = None,
) -> dict[str, list[Record]]:
    """A task's rows in the HF field layout, per split, from the chosen source (see module doc)."""
    spec = get_task(name)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if source == "auto":
        source = _auto_source(spec, data_root)
    if source == "local":
        return _load_local(spec, resolve_data_root(data_root))
    if source == "files":
        return _load_files(spec, files)
    if source == "synthetic":
        return _load_synthetic(spec, synthetic_sizes, synthetic_seed)
    return _load_hub(spec, hub_path)


def task_input_files(
    name: str,
    *,
    source: str = "auto",
    data_root: str | Path | None = None,
    files: Mapping[str, str | Path] | None = None,
) -> list[Path]:
    """The local files that loading this task from ``source`` reads (none for synthetic and hub data)."""
    spec = get_task(name)
    if source == "auto":
        source = _auto_source(spec, data_root)
    if source == "local":
        root = resolve_data_root(data_root)
        return [root / f for split in spec.local.values() for f in split.files]
    if source == "files":
        return [Path(path) for path in (files or {}).values()]
    return []


def load_task_docs(name: str, **where: Any) -> dict[str, list[MCDoc]]:
    """A task's items as :class:`MCDoc` requests, per original split (``"train"``, ``"validation"``, ``"test"``);
    ``where`` are :func:`load_task_records`'s options (source, data_root, hub_path, files, synthetic_*).

    Each doc gets a stable ``doc_id`` ``"<split>-<row index>"``. Bad input raises one ValueError
    naming the file, line/row and field; an unknown task raises KeyError listing known tasks.
    """
    spec = get_task(name)
    records = load_task_records(name, **where)
    return {
        split: [spec.to_mcdoc(r.doc, f"{split}-{i}", r.origin) for i, r in enumerate(rows)]
        for split, rows in records.items()
    }


def _auto_source(spec: TaskSpec, data_root: str | Path | None) -> str:
    if spec.local and local_files_present(spec, resolve_data_root(data_root, required=data_root is not None)):
        return "local"
    if spec.synthetic is not None:
        return "synthetic"
    return "hub"


def _load_local(spec: TaskSpec, root: Path) -> dict[str, list[Record]]:
    if not spec.local:
        raise ValueError(f"task {spec.name} has no local data layout; use source='hub' or 'files'")
    missing = [str(root / f) for s in spec.local.values() for f in s.files if not (root / f).is_file()]
    if missing:
        raise ValueError(f"task {spec.name}: local data files missing: {', '.join(missing)}")
    return {split: s.reader(*(root / f for f in s.files)) for split, s in spec.local.items()}


def _load_files(spec: TaskSpec, files: Mapping[str, str | Path] | None) -> dict[str, list[Record]]:
    if not files:
        raise ValueError(f"task {spec.name}: source='files' needs files={{split: path}} (splits {', '.join(SPLITS)})")
    unknown = [s for s in files if s not in SPLITS]
    if unknown:
        raise ValueError(f"task {spec.name}: unknown split names {unknown} in files; use {', '.join(SPLITS)}")
    return {split: read_table_file(path) for split, path in files.items()}


def _load_synthetic(spec: TaskSpec, sizes: Mapping[str, int] | None, seed: int | None) -> dict[str, list[Record]]:
    if spec.synthetic is None:
        raise ValueError(f"task {spec.name} is not synthetic; use source 'local', 'hub' or 'files'")
    sizes = dict(spec.synthetic.sizes) if sizes is None else dict(sizes)
    seed = spec.synthetic.seed if seed is None else seed
    rows = spec.synthetic.generate(seed, sizes)
    return {
        split: [Record(doc, f"synthetic {spec.name} (seed {seed}) {split} item {i}") for i, doc in enumerate(docs)]
        for split, docs in rows.items()
    }


def _load_hub(spec: TaskSpec, hub_path: str | None) -> dict[str, list[Record]]:
    path = hub_path or spec.dataset_path
    if path is None:
        raise ValueError(f"task {spec.name} has no Hugging Face dataset; use source 'local', 'synthetic' or 'files'")
    import datasets

    dataset = datasets.load_dataset(path, spec.dataset_name)
    where = f"{path}" + (f"/{spec.dataset_name}" if spec.dataset_name else "")
    out = {}
    for split, hf_split in spec.splits.items():
        if hf_split not in dataset:
            raise ValueError(
                f"task {spec.name}: hub dataset {where} has no split {hf_split!r} (has {', '.join(dataset.keys())})"
            )
        out[split] = [
            Record(dict(row), f"hub {where} split {hf_split} row {i}") for i, row in enumerate(dataset[hf_split])
        ]
    return out
