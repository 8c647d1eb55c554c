"""What the report tests share: hand-made summaries of each experiment, finished runs made by hand or from the
golden files, and readings of a written report (its values, images, embedded summary)."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from forgetlab.store import RunStore, read_jsonl

ODD = "a<b>&c"  # a task name that must be escaped everywhere

VERSIONS = {"python": "3.11.7", "forgetlab": "0.1.0", "torch": "2.13.0+cpu", "numpy": "2.4.6"}


def _task(pt: float, ft: float, f: float, ftr: float, *, category: str = "full", extras: bool = True) -> dict[str, Any]:
    row: dict[str, Any] = {
        "acc_pretrained": pt, "acc_finetuned": ft, "acc_forget_test": f, "acc_forget_train": ftr,
        "forget_gap": f - 0.5, "forget_ratio": (ft - f) / (ft - 0.5), "category": category, "forget_set_fit": True,
        "acc_pretrained_ci": [pt - 0.05, pt + 0.05], "acc_finetuned_ci": [ft - 0.04, ft + 0.04],
        "acc_forget_test_ci": [f - 0.06, f + 0.06], "acc_forget_train_ci": None,
        "acc_norm_pretrained": pt + 0.01, "acc_norm_finetuned": ft, "acc_norm_forget_test": f,
        "steps": {"finetune": 40, "forget": 20}, "sizes": {"finetune": 200, "forget": 100, "validation": 50, "test": 100},
    }
    if extras:
        row["predictors"] = {"difficulty": ft, "confidence_pretrained": 0.5 + pt / 7, "confidence_finetuned": 0.6 + ft / 9,
                             "hidden_variance": 12.5 + 10 * pt, "hidden_layer": 3}
        row["item_predictors"] = {"confidence_finetuned": {"auc": 0.5123456789, "ci": [0.41, 0.61], "n_pos": 40, "n_neg": 35},
                                  "loss": {"auc": None, "ci": None, "n_pos": 0, "n_neg": 75}}
        row["order"] = {
            "forget": {"n": 30, "spearman_rho": -0.31234, "spearman_p": 0.000123, "spearman_ci": [-0.6, -0.01],
                       "n_never_learned": 4, "n_never_forgotten": 2, "threshold": 0.6,
                       "steps": [[i % 7, 20 - (i % 5)] for i in range(30)]},
            "test": {"n": 3, "spearman_rho": None, "spearman_p": None, "spearman_ci": None,
                     "n_never_learned": 1, "n_never_forgotten": 0, "threshold": 0.6, "steps": [[1, 3], [2, 2], [5, 1]]},
        }
        row["probes"] = {"layers": [0, 2, 4]}
        for k, model in enumerate(("pretrained", "finetuned", "forgotten")):
            row["probes"][model] = {
                str(layer): {"pair_acc": 0.55 + 0.05 * layer + 0.01 * k, "question_acc": None if layer == 0 else 0.6 + 0.04 * layer,
                             "n_pairs": 200, "n_questions": 100, "c": 1.0, "val_acc": 0.5 + 0.06 * layer - 0.001 * k}
                for layer in (0, 2, 4)
            }
    return row


def study_a_summary(*, extras: bool = True, run_id: str = "study_a-0123456789ab") -> dict[str, Any]:
    tasks = {
        "boolq": _task(0.61, 0.8333333333333334, 0.5, 0.49, category="full", extras=extras),
        "piqa": _task(0.7, 0.81, 0.79, 0.5, category="not_generalized", extras=extras),
        ODD: _task(0.55, 0.9, 0.7, 0.52, category="partial", extras=extras),
    }
    summary: dict[str, Any] = {"experiment": "forget_generalization", "run": run_id, "model": "tiny-llama", "tasks": tasks}
    if extras:
        summary["analysis"] = {"target": "forget_ratio", "correlations": {
            name: {"n": 3, "tasks": list(tasks), "pearson_r": 0.123456789, "pearson_p": 0.5, "pearson_ci": [-0.9, 0.95],
                   "spearman_rho": 0.5, "spearman_p": 0.6666666666666667, "spearman_ci": None}
            for name in ("difficulty", "confidence_pretrained", "confidence_finetuned", "hidden_variance")
        }}
    return summary


def cross_task_summary() -> dict[str, Any]:
    summary = study_a_summary(run_id="cross-fedcba987654")
    summary["experiment"] = "cross_task"
    summary["study_a_runs"] = {task: "study_a-0123456789ab" for task in summary["tasks"]}
    names = list(summary["tasks"])
    summary["cells"] = {a: {b: f"cell-{i}{j}" for j, b in enumerate(names)} for i, a in enumerate(names)}
    ratio = {a: {b: (None if (i, j) == (0, 2) else round(0.3 * i - 0.2 * j + 0.1, 6) + 1e-9) for j, b in enumerate(names)} for i, a in enumerate(names)}
    summary["crosstask"] = {
        "tasks": names,
        "reference": {b: 0.8 + 0.01 * j for j, b in enumerate(names)},
        "accuracy": {a: {b: 0.7 - 0.01 * i + 0.02 * j for j, b in enumerate(names)} for i, a in enumerate(names)},
        "forget_ratio": ratio,
        "row_order": [names[2], names[0], names[1]],
        "col_order": [names[1], names[2], names[0]],
        "variance_explained": {"rows": 0.1, "columns": 0.7, "residual": 0.2},
        "forget_fit": {a: {b: 0.97 - 0.01 * j for j, b in enumerate(names)} for a in names},
    }
    return summary


def generic_summary() -> dict[str, Any]:
    return {
        "experiment": "unlearn", "run": "smol-npo-f09bb86630b6", "model": "smollm2-135m", "method": "npo",
        "options": {"beta": 0.1}, "lora": False, "selected_step": 10,
        "selection": {"objective": "mia/loss_auc_gap", "history": [{"step": s, "objective": 0.5 - s / 100, "feasible": s > 0} for s in (0, 5, 10)],
                      "constraints": []},
        "curve": [0.1 * i for i in range(40)],
        "names": [f"item-{i}" for i in range(30)],
        "final": {"forget_loss": 0.6686081618996522, "mia_loss_auc": None, "odd.key": 3},
    }


def accuracy_rows(tasks: list[str], stages: tuple[str, ...] = ("finetune", "forget")) -> list[dict[str, Any]]:
    """``metrics.jsonl`` rows of Study A's trajectories: accuracy of two splits at three steps of each stage."""
    return [{"task": task, "stage": stage, "step": step, "split": split, "metric": "acc", "value": 0.5 + 0.1 * step / (1 + j)}
            for task in tasks for stage in stages for j, split in enumerate(("forget", "test")) for step in (0, 2, 4)]


def make_run(root: Path, summary: dict[str, Any], *, metrics: list[dict[str, Any]] | None = None) -> Path:
    """A finished run directory written by hand: config.yaml, summary.json and, given rows, metrics.jsonl."""
    run_dir = root / summary["run"]
    run_dir.mkdir(parents=True)
    resolved = {"config": {"experiment": summary["experiment"], "name": summary["run"].split("-")[0], "seed": 0,
                           "model": {"name": summary.get("model")}, "tasks": list(summary.get("tasks", {}))},
                "fingerprint": "0123456789ab" * 5, "seed": 0, "world_size": 1, "versions": VERSIONS,
                "command": "forgetlab run study_a --set forget.lr=1e-4"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if metrics is not None:
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in metrics))
    return run_dir


def catalog(root: Path, run_dir: Path, summary: dict[str, Any], status: str = "finished") -> None:
    """Enter a hand-made run directory under ``root`` in the catalog of ``root``."""
    store = RunStore(root)
    with store._db() as db:
        db.execute("INSERT INTO runs (id, name, experiment, fingerprint, status, created, updated, dir, summary) VALUES (?,?,?,?,?,?,?,?,?)",
                   (summary["run"], "x", summary["experiment"], "f", status, "2025-01-01", "2025-01-01", run_dir.name, json.dumps(summary)))


GOLDEN = Path(__file__).parent / "golden"
#: The golden run of each experiment (tests/golden/<recipe>/<label>): a real summary.json and metrics.jsonl.
GOLDEN_RUNS = {
    "forget_generalization": "cross_task/forget_generalization-synth_compare",
    "cross_task": "cross_task/cross_task",
    "id_vs_ood": "id_vs_ood/id_vs_ood",
    "unlearn": "unlearn/unlearn",
}


def golden_run(root: Path, experiment: str, **changes: Any) -> tuple[Path, dict[str, Any]]:
    """A finished run of ``experiment`` under ``root`` made from its golden files (read, never written), entered
    in the catalog; its run id is ``<experiment>-0123456789ab``, and ``changes`` replace top-level summary keys."""
    source = GOLDEN / GOLDEN_RUNS[experiment]
    summary = json.loads((source / "summary.json").read_text())
    summary.update({"run": f"{experiment}-0123456789ab", **changes})
    run_dir = make_run(root, summary, metrics=list(read_jsonl(source / "metrics.jsonl")))
    catalog(root, run_dir, summary)
    return run_dir, summary


# --- parsing the report -------------------------------------------------------------------------------


class ParsedReport(HTMLParser):
    """What a report holds: its values (data-key, data-value), images, ids, URLs, scripts and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: list[tuple[str, str]] = []
        self.images: list[str] = []
        self.ids: list[str] = []
        self.urls: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-key" in a:
            assert "data-value" in a, a
            self.values.append((a["data-key"] or "", a["data-value"] or ""))
        if tag == "img":
            self.images.append(a.get("src") or "")
        if a.get("id"):
            self.ids.append(a["id"] or "")
        for name in ("src", "href", "action", "poster", "data", "srcset"):
            if a.get(name):
                self.urls.append(a[name] or "")
        if tag == "script":
            self._script = a

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self.scripts.append((self._script, data))
        else:
            self.text.append(data)


def parse(path: Path) -> ParsedReport:
    parser = ParsedReport()
    parser.feed(path.read_text())
    parser.close()
    return parser


def resolve(summary: Any, key: str) -> Any:
    """Independent reading of a data-key: dots split, a backslash escapes the next character."""
    parts, current, i = [], "", 0
    while i < len(key):
        if key[i] == "\\":
            current += key[i + 1]
            i += 2
            continue
        if key[i] == ".":
            parts.append(current)
            current = ""
        else:
            current += key[i]
        i += 1
    parts.append(current)
    node = summary
    for part in parts:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            assert part in node, f"{key}: no {part!r}"
            node = node[part]
    return node


def assert_numbers_match(path: Path, summary: dict[str, Any]) -> ParsedReport:
    """Every value of the report carries a key whose place in ``summary`` holds exactly its value (and type)."""
    parsed = parse(path)
    assert parsed.values, "no values carry data-key"
    for key, value in parsed.values:
        expected = resolve(summary, key)
        got = json.loads(value)
        assert got == expected and type(got) is type(expected), (key, got, expected)
    return parsed


def assert_self_contained(path: Path, parsed: ParsedReport, *, images: bool = True) -> None:
    """Nothing is fetched: every URL is a data: PNG or an anchor, and every image a whole PNG (at least one with ``images``)."""
    text = path.read_text()
    for fragment in ('src="http', "src='http", 'href="http', "href='http", "url(", "@import", "@font-face", "//cdn", 'src="//'):
        assert fragment not in text, fragment
    for url in parsed.urls:
        assert url.startswith(("data:image/png;base64,", "#")), url[:60]
    assert parsed.images or not images
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR" and png.endswith(b"IEND\xaeB`\x82")


def embedded_summary(parsed: ParsedReport) -> Any:
    """The one summary embedded as JSON in the report."""
    blocks = [data for attrs, data in parsed.scripts if attrs.get("id") == "summary"]
    assert len(blocks) == 1 and [a.get("type") for a, _ in parsed.scripts if a.get("id") == "summary"] == ["application/json"]
    return json.loads(blocks[0])


def golden_runs(root: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """:func:`golden_run` of every experiment in one runs directory, the cross-task sweep's ``study_a_runs``
    naming the Study A run there (as a real sweep's name its per-task runs)."""
    runs = {experiment: golden_run(root, experiment) for experiment in GOLDEN_RUNS if experiment != "cross_task"}
    study_a = runs["forget_generalization"][0].name
    tasks = json.loads((GOLDEN / GOLDEN_RUNS["cross_task"] / "summary.json").read_text())["tasks"]
    runs["cross_task"] = golden_run(root, "cross_task", study_a_runs={task: study_a for task in tasks})
    return runs
