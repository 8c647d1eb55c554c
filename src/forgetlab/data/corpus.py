"""(prompt, target) corpora for generative unlearning (Study B), from any source, in one registry.

A corpus is a set of splits (``train``/``validation``/``test``), each a list of :class:`Pair`:
``log p(target | prompt)`` is what training fits and what every metric scores (through
:class:`forgetlab.scoring.Scorer`, so the tokenisation is lm-eval's ``encode_pair``).

Loaders return raw ``(source, target)`` text per split; :func:`load_corpus` cleans the rows and
renders them with the spec's templates. The default templates are the paper's translation setting
for a decoder-only model::

    prompt = "translate German to English: {source}\\nEnglish:"     target = " {target}"

(T5 reads ``"translate German to English: <de>"`` with its encoder; a decoder-only LM needs the
``"\\nEnglish:"`` separator to know where the answer starts.)

Built-in corpora (:data:`CORPORA`; register more with ``CORPORA.register(name)``):

* ``multi30k``: the Multi30k task-1 German→English files (``multi30k_de_en/{train,val,test_2016_flickr}.{de,en}.gz``)
  under the data root (``root``, else env ``FORGETLAB_DATA``, else ``../shared/data``);
* ``wmt14``: the Hugging Face hub dataset (``wmt14``, ``de-en``) through ``datasets``, imported
  lazily and streamed (the first ``hub_max_rows`` rows of each split), for users with a network;
* ``synthetic_translation``: German→English sentences generated in code from a small lexicon
  (determiner + subject, verb, adjective + object, place; correct German accusative forms), so the
  pipeline runs offline on a fresh machine with no files;
* ``files``: user files per split (jsonl/json/tsv/csv/parquet) with ``source_field``/``target_field``
  columns, or HF's ``{"translation": {"de": ..., "en": ...}}`` layout.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from forgetlab.config import Spec
from forgetlab.data.records import open_text, read_table_file
from forgetlab.data.types import Pair
from forgetlab.data.tasks import resolve_data_root
from forgetlab.registry import Registry

SPLITS = ("train", "validation", "test")
TRANSLATION_PREFIX = "translate German to English: "

RawSplits = dict[str, list[tuple[str, str]]]


class CorpusSpec(Spec):
    """Which (prompt, target) corpus, where it comes from, and how its rows become pairs."""

    name: str = Field("multi30k", description="a registered corpus: multi30k, wmt14, synthetic_translation, files")
    root: str | None = Field(None, description="data root for local files (default $FORGETLAB_DATA or ../shared/data)")
    hub_path: str = "wmt14"
    hub_name: str | None = "de-en"
    hub_splits: dict[str, str] = Field(default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"})
    hub_max_rows: int = Field(50_000, ge=1, description="rows read (streamed) from each hub split")
    files: dict[str, str] | None = Field(None, description="split -> file, for the 'files' corpus")
    source_field: str = "de"
    target_field: str = "en"
    prompt_template: str = TRANSLATION_PREFIX + "{source}\nEnglish:"
    target_template: str = " {target}"
    max_chars: int | None = Field(120, ge=1, description="drop pairs whose source or target is longer")
    synthetic_sizes: dict[str, int] = Field(default_factory=lambda: {"train": 6000, "validation": 500, "test": 500})
    synthetic_seed: int = 0


@dataclass
class Corpus:
    """A cleaned corpus: pairs per split, plus what the cleaning dropped."""

    name: str
    splits: dict[str, list[Pair]]
    dropped: dict[str, int]

    def split(self, name: str) -> list[Pair]:
        if name not in self.splits:
            raise ValueError(f"corpus {self.name!r} has no {name!r} split (it has {', '.join(self.splits)})")
        return self.splits[name]


ReadSplits = Callable[[CorpusSpec], RawSplits]


@dataclass(frozen=True)
class RegisteredCorpus:
    """A registered corpus: how to read its raw splits, and which local files that reads (for a run's identity)."""

    read: ReadSplits
    files: Callable[[CorpusSpec], list[Path]] = lambda spec: []


CORPORA: Registry[RegisteredCorpus] = Registry("corpus")


def corpus_input_files(spec: CorpusSpec) -> list[Path]:
    """The local files loading this corpus reads (none for generated and hub corpora)."""
    return CORPORA.get(spec.name).files(spec)


def load_corpus(spec: CorpusSpec) -> Corpus:
    """Load, clean (strip, length cap, de-duplicate, remove train/eval overlap) and render a corpus."""
    raw = CORPORA.get(spec.name).read(spec)
    missing = [s for s in SPLITS if not raw.get(s)]
    if missing:
        raise ValueError(f"corpus {spec.name!r}: split(s) {missing} are empty or missing")
    cleaned, dropped = clean_splits(raw, spec.max_chars)
    splits = {split: [render(spec, f"{split}-{i}", s, t) for i, s, t in rows] for split, rows in cleaned.items()}
    return Corpus(spec.name, splits, dropped)


def render(spec: CorpusSpec, pair_id: str, source: str, target: str) -> Pair:
    """Fill the spec's templates with one row's source and target text."""
    return Pair(pair_id, spec.prompt_template.format(source=source), spec.target_template.format(target=target))


def clean_splits(raw: RawSplits, max_chars: int | None) -> tuple[dict[str, list[tuple[int, str, str]]], dict[str, int]]:
    """Rows as ``(original index, source, target)``; drops empty, over-long and duplicate sources.

    A source seen in an earlier split of ``test, validation, train`` order is dropped from the later
    one, so no evaluation sentence is ever trained on.
    """
    seen: set[str] = set()
    out: dict[str, list[tuple[int, str, str]]] = {}
    dropped: dict[str, int] = {}
    for split in ("test", "validation", "train"):
        kept = []
        for index, (source, target) in enumerate(raw[split]):
            source, target = " ".join(source.split()), " ".join(target.split())
            too_long = max_chars is not None and max(len(source), len(target)) > max_chars
            if not source or not target or too_long or source in seen:
                continue
            seen.add(source)
            kept.append((index, source, target))
        out[split] = kept
        dropped[split] = len(raw[split]) - len(kept)
    return {s: out[s] for s in SPLITS}, {s: dropped[s] for s in SPLITS}


# --- multi30k (local files) --------------------------------------------------------------------------

MULTI30K_FILES = {"train": "train", "validation": "val", "test": "test_2016_flickr"}


def _read_gz_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ValueError(f"Multi30k file not found: {path}")
    with open_text(path) as handle:
        return [line.rstrip("\n") for line in handle]


def multi30k_files(spec: CorpusSpec) -> list[Path]:
    """The six gzip files of Multi30k task 1 under ``<root>/multi30k_de_en``."""
    folder = resolve_data_root(spec.root) / "multi30k_de_en"
    return [folder / f"{stem}.{lang}.gz" for stem in MULTI30K_FILES.values() for lang in ("de", "en")]


def multi30k(spec: CorpusSpec) -> RawSplits:
    """Multi30k task 1 (German→English), line-aligned gzip files under ``<root>/multi30k_de_en``."""
    folder = resolve_data_root(spec.root) / "multi30k_de_en"
    splits: RawSplits = {}
    for split, stem in MULTI30K_FILES.items():
        de, en = (_read_gz_lines(folder / f"{stem}.{lang}.gz") for lang in ("de", "en"))
        if len(de) != len(en):
            raise ValueError(f"{folder}/{stem}: {len(de)} German lines but {len(en)} English lines")
        splits[split] = list(zip(de, en))
    return splits


CORPORA.register("multi30k")(RegisteredCorpus(read=multi30k, files=multi30k_files))


# --- wmt14 (Hugging Face hub) -----------------------------------------------------------------------


def _row_pair(row: dict[str, Any], spec: CorpusSpec, origin: str) -> tuple[str, str]:
    """(source, target) from a flat row or from HF's nested ``translation`` dict."""
    fields = row.get("translation") if isinstance(row.get("translation"), dict) else row
    try:
        return str(fields[spec.source_field]), str(fields[spec.target_field])
    except KeyError:
        raise ValueError(
            f"{origin}: expected fields {spec.source_field!r} and {spec.target_field!r} "
            f"(flat or under 'translation'), found {sorted(fields)}"
        ) from None


def wmt14(spec: CorpusSpec) -> RawSplits:
    """WMT'14 (or any translation dataset on the hub), streamed: the first ``hub_max_rows`` rows per split."""
    try:
        import datasets
    except ImportError as error:  # pragma: no cover - datasets is a dependency
        raise ValueError("the wmt14 corpus needs the 'datasets' package") from error
    splits: RawSplits = {}
    for split in SPLITS:
        hub_split = spec.hub_splits.get(split, split)
        rows = datasets.load_dataset(spec.hub_path, spec.hub_name, split=hub_split, streaming=True)
        origin = f"{spec.hub_path}/{spec.hub_name or ''} {hub_split}"
        splits[split] = [_row_pair(dict(r), spec, origin) for r in itertools.islice(rows, spec.hub_max_rows)]
    return splits


CORPORA.register("wmt14")(RegisteredCorpus(read=wmt14))


# --- user files ---------------------------------------------------------------------------------------


def files(spec: CorpusSpec) -> RawSplits:
    """One table file per split with ``source_field``/``target_field`` (or a ``translation`` dict)."""
    if not spec.files:
        raise ValueError("corpus 'files' needs corpus.files: {train: path, validation: path, test: path}")
    return {
        split: [_row_pair(rec.doc, spec, rec.origin) for rec in read_table_file(spec.files[split])]
        for split in SPLITS
        if split in spec.files
    }


CORPORA.register("files")(RegisteredCorpus(read=files, files=lambda spec: [Path(p) for p in (spec.files or {}).values()]))


# --- synthetic German→English -------------------------------------------------------------------------

SUBJECTS = (
    ("Ein Mann", "A man"), ("Eine Frau", "A woman"), ("Ein Junge", "A boy"), ("Ein Mädchen", "A girl"),
    ("Ein Hund", "A dog"), ("Ein Kind", "A child"), ("Ein Arbeiter", "A worker"), ("Eine Sängerin", "A singer"),
    ("Ein alter Mann", "An old man"), ("Eine junge Frau", "A young woman"),
)
VERBS = (
    ("hält", "holds"), ("trägt", "carries"), ("sieht", "sees"), ("kauft", "buys"),
    ("wirft", "throws"), ("malt", "paints"), ("sucht", "looks for"), ("findet", "finds"),
)
ADJECTIVES = (
    ("rot", "red"), ("blau", "blue"), ("grün", "green"), ("groß", "big"),
    ("klein", "small"), ("alt", "old"), ("neu", "new"), ("gelb", "yellow"),
)
# (gender, German noun, English noun); accusative indefinite: einen -en / eine -e / ein -es
NOUNS = (
    ("m", "Ball", "ball"), ("m", "Hut", "hat"), ("m", "Stuhl", "chair"), ("m", "Korb", "basket"),
    ("f", "Tasche", "bag"), ("f", "Kiste", "box"), ("f", "Blume", "flower"), ("f", "Jacke", "jacket"),
    ("n", "Fahrrad", "bicycle"), ("n", "Buch", "book"), ("n", "Bild", "picture"), ("n", "Boot", "boat"),
)
PLACES = (
    ("im Park", "in the park"), ("auf der Straße", "on the street"), ("am Strand", "at the beach"),
    ("in der Küche", "in the kitchen"), ("vor dem Haus", "in front of the house"), ("im Schnee", "in the snow"),
)
_ACCUSATIVE = {"m": ("einen", "en"), "f": ("eine", "e"), "n": ("ein", "es")}


def synthetic_sentence(subject: int, verb: int, adjective: int, noun: int, place: int) -> tuple[str, str]:
    """One German sentence and its English translation from lexicon indices."""
    (de_s, en_s), (de_v, en_v), (de_a, en_a) = SUBJECTS[subject], VERBS[verb], ADJECTIVES[adjective]
    gender, de_n, en_n = NOUNS[noun]
    de_p, en_p = PLACES[place]
    article, ending = _ACCUSATIVE[gender]
    return f"{de_s} {de_v} {article} {de_a}{ending} {de_n} {de_p}.", f"{en_s} {en_v} a {en_a} {en_n} {en_p}."


def synthetic_translation_pairs(sizes: dict[str, int], seed: int) -> RawSplits:
    """Distinct sentence pairs per split (disjoint across splits), the same for the same seed."""
    shape = (len(SUBJECTS), len(VERBS), len(ADJECTIVES), len(NOUNS), len(PLACES))
    capacity = 1
    for n in shape:
        capacity *= n
    total = sum(sizes.get(s, 0) for s in SPLITS)
    if total > capacity:
        raise ValueError(f"synthetic_translation: {total} pairs requested, only {capacity} distinct sentences exist")
    codes = random.Random(f"synthetic_translation:{seed}").sample(range(capacity), total)
    out: RawSplits = {}
    start = 0
    for split in SPLITS:
        n = sizes.get(split, 0)
        out[split] = [synthetic_sentence(*_unravel(code, shape)) for code in codes[start : start + n]]
        start += n
    return out


def _unravel(code: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    digits = []
    for n in reversed(shape):
        code, digit = divmod(code, n)
        digits.append(digit)
    return tuple(reversed(digits))


def synthetic_translation(spec: CorpusSpec) -> RawSplits:
    """German→English sentence pairs generated in code (offline, no files)."""
    return synthetic_translation_pairs(spec.synthetic_sizes, spec.synthetic_seed)


CORPORA.register("synthetic_translation")(RegisteredCorpus(read=synthetic_translation))
