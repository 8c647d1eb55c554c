"""The HTML report: one self-contained file whose numbers are exactly summary.json's, sections only with data."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from forgetlab.cli import app
from forgetlab.metrics.forgetting import CATEGORIES
from forgetlab.report.html import CATEGORY_LABELS, key_of, split_key, write_report
from forgetlab.store import RunStore

runner = CliRunner()

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
    summary["study_a_run"] = "study_a-0123456789ab"
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


def _png_bytes() -> bytes:
    """A valid 2x2 PNG written by hand (the trajectory plots a run left in plots/)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def make_run(root: Path, summary: dict[str, Any], *, trajectories: int = 2) -> Path:
    """A finished run directory written by hand: config.yaml, summary.json, plots/*.png."""
    run_dir = root / summary["run"]
    run_dir.mkdir(parents=True)
    resolved = {"config": {"experiment": summary["experiment"], "name": summary["run"].split("-")[0], "seed": 0,
                           "model": {"name": summary.get("model")}, "tasks": list(summary.get("tasks", {}))},
                "fingerprint": "0123456789ab" * 5, "seed": 0, "world_size": 1, "versions": VERSIONS,
                "command": "forgetlab run study_a --set forget.lr=1e-4"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if trajectories:
        (run_dir / "plots").mkdir()
        for i in range(trajectories):
            (run_dir / "plots" / f"boolq_stage{i}_accuracy.png").write_bytes(_png_bytes())
    return run_dir


# --- parsing the report -------------------------------------------------------------------------------


class _Parsed(HTMLParser):
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


def parse(path: Path) -> _Parsed:
    parser = _Parsed()
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


def assert_numbers_match(path: Path, summary: dict[str, Any]) -> _Parsed:
    parsed = parse(path)
    assert parsed.values, "no values carry data-key"
    for key, value in parsed.values:
        expected = resolve(summary, key)
        got = json.loads(value)
        assert got == expected and type(got) is type(expected), (key, got, expected)
    return parsed


def assert_self_contained(path: Path, parsed: _Parsed) -> None:
    text = path.read_text()
    for fragment in ('src="http', "src='http", 'href="http', "href='http", "url(", "@import", "@font-face", "//cdn", 'src="//'):
        assert fragment not in text, fragment
    for url in parsed.urls:
        assert url.startswith(("data:image/png;base64,", "#")), url[:60]
    assert parsed.images
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR" and png.endswith(b"IEND\xaeB`\x82")


def embedded_summary(parsed: _Parsed) -> Any:
    blocks = [data for attrs, data in parsed.scripts if attrs.get("id") == "summary"]
    assert len(blocks) == 1 and [a.get("type") for a, _ in parsed.scripts if a.get("id") == "summary"] == ["application/json"]
    return json.loads(blocks[0])


# --- tests --------------------------------------------------------------------------------------------


def test_study_a_report_numbers_equal_summary(tmp_path):
    summary = study_a_summary()
    run_dir = make_run(tmp_path, summary)
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed)
    assert embedded_summary(parsed) == summary
    keys = {k for k, _ in parsed.values}
    for task in summary["tasks"]:
        for field in ("acc_pretrained", "acc_finetuned", "acc_forget_test", "acc_forget_train", "forget_gap", "forget_ratio", "category"):
            assert key_of(["tasks", task, field]) in keys
        assert key_of(["tasks", task, "acc_pretrained_ci", 0]) in keys
        assert key_of(["tasks", task, "item_predictors", "confidence_finetuned", "auc"]) in keys
        assert key_of(["tasks", task, "order", "forget", "spearman_rho"]) in keys
        # best layer by validation accuracy: 4 for every model
        assert key_of(["tasks", task, "probes", "forgotten", "4", "pair_acc"]) in keys
    assert key_of(["analysis", "correlations", "hidden_variance", "pearson_r"]) in keys
    assert key_of(["analysis", "correlations", "difficulty", "pearson_ci", 1]) in keys
    # shown rounded, exact in data-value
    assert 'data-key="tasks.boolq.acc_finetuned" data-value="0.8333333333333334">0.833<' in path.read_text()
    assert {"behaviour", "predictors", "items", "probes", "order", "trajectories", "summary", "config", "versions"} <= set(parsed.ids)
    assert "crosstask" not in parsed.ids
    pngs = sorted(p.name for p in (run_dir / "report").glob("*.png"))
    assert "behaviour.png" in pngs and "predictor_hidden_variance.png" in pngs and "probes_boolq.png" in pngs and "order_piqa.png" in pngs
    assert "predictor_hidden_layer.png" not in pngs
    # one image per report PNG plus the two trajectory plots
    assert len(parsed.images) == len(pngs) + 2
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")], "temporary files left"


def test_config_and_versions_present(tmp_path):
    run_dir = make_run(tmp_path, study_a_summary(extras=False))
    path = write_report(run_dir)
    text = path.read_text()
    parsed = parse(path)
    body = " ".join(parsed.text)
    for name, version in VERSIONS.items():
        assert name in body and version in body
    assert "forget.lr=1e-4" in body and "fingerprint: " + "0123456789ab" * 5 in body
    assert "<pre>" in text and "world_size: 1" in body


def test_sections_omitted_when_data_absent(tmp_path):
    summary = study_a_summary(extras=False)
    run_dir = make_run(tmp_path, summary, trajectories=0)
    path = write_report(run_dir)
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed)
    assert "behaviour" in parsed.ids
    for section in ("predictors", "items", "probes", "order", "crosstask", "trajectories"):
        assert section not in parsed.ids, section
    assert [p.name for p in (run_dir / "report").glob("*.png")] == ["behaviour.png"]
    assert len(parsed.images) == 1


def test_partial_analysis_keys(tmp_path):
    summary = study_a_summary()
    for row in summary["tasks"].values():
        del row["probes"], row["order"]
    del summary["analysis"]
    summary["tasks"]["piqa"]["forget_ratio"] = None  # guarded ratio
    run_dir = make_run(tmp_path, summary)
    path = write_report(run_dir)
    parsed = assert_numbers_match(path, summary)
    assert "predictors" in parsed.ids and "items" in parsed.ids
    assert "probes" not in parsed.ids and "order" not in parsed.ids
    assert ('tasks.piqa.forget_ratio', "null") in parsed.values


def test_cross_task_heatmap_and_tables(tmp_path):
    summary = cross_task_summary()
    run_dir = make_run(tmp_path, summary, trajectories=0)
    path = write_report(run_dir)
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed)
    assert "crosstask" in parsed.ids and (run_dir / "report" / "crosstask.png").is_file()
    keys = [k for k, _ in parsed.values]
    ct = summary["crosstask"]
    ratio_keys = [k for k in keys if k.startswith("crosstask.forget_ratio.")]
    expected = [key_of(["crosstask", "forget_ratio", a, b]) for a in ct["row_order"] for b in ct["col_order"]]
    assert ratio_keys[: len(expected)] == expected  # rows and columns in the clustered order (then the all-values table)
    for part in ("rows", "columns", "residual"):
        assert f"crosstask.variance_explained.{part}" in keys
    for b in ct["col_order"]:
        assert key_of(["crosstask", "reference", b]) in keys
        assert key_of(["crosstask", "forget_fit", ct["row_order"][0], b]) in keys


def test_not_learned_task_is_shown_and_listed(tmp_path):
    """A not-learned task: its category row, the correlations' excluded list and the matrix's not-learned columns."""
    summary = cross_task_summary()
    summary["tasks"]["piqa"].update(category="not_learned", forget_ratio=None, learned=False)
    summary["analysis"]["excluded"] = ["piqa"]
    summary["crosstask"]["not_learned"] = ["piqa"]
    for row in summary["crosstask"]["forget_ratio"].values():
        row["piqa"] = None
    path = write_report(make_run(tmp_path, summary, trajectories=0))
    parsed = assert_numbers_match(path, summary)
    keys = {k for k, _ in parsed.values}
    assert {"tasks.piqa.category", "analysis.excluded.0", "crosstask.not_learned.0"} <= keys
    text = path.read_text()
    assert '<tr class="cat-not_learned"><td>piqa</td>' in text and ".cat-not_learned {" in text
    assert "Left out of the correlations, not learned" in text and "No ratio in the columns of tasks not learned" in text
    assert set(CATEGORY_LABELS) == set(CATEGORIES) and all(f".cat-{c} {{" in text for c in CATEGORIES)  # a label and a colour each


def test_generic_report_flattens_summary(tmp_path):
    summary = generic_summary()
    run_dir = make_run(tmp_path, summary, trajectories=3)
    path = write_report(run_dir)
    parsed = assert_numbers_match(path, summary)
    assert_self_contained(path, parsed)
    keys = {k for k, _ in parsed.values}
    assert {"method", "options.beta", "lora", "selection.history.2.objective", "final.forget_loss", "final.mia_loss_auc"} <= keys
    assert key_of(["final", "odd.key"]) == "final.odd\\.key" and "final.odd\\.key" in keys
    assert not any(k.startswith(("curve", "names")) for k in keys)  # long lists summarised
    body = " ".join(parsed.text)
    assert "list of 40: min 0.000, mean 1.950, max 3.900" in body and "list of 30" in body
    assert len(parsed.images) == 3 and not (run_dir / "report").exists()
    assert {"summary", "trajectories", "config", "versions"} <= set(parsed.ids)
    assert "behaviour" not in parsed.ids


def test_escaping_of_names(tmp_path):
    summary = study_a_summary()
    summary["model"] = "</script><script>alert(1)</script>"
    run_dir = make_run(tmp_path, summary)
    path = write_report(run_dir)
    text = path.read_text()
    assert ODD not in text and "a&lt;b&gt;&amp;c" in text
    assert "<script>alert" not in text
    parsed = assert_numbers_match(path, summary)
    assert embedded_summary(parsed) == summary
    assert sum(1 for attrs, _ in parsed.scripts if attrs.get("id") == "summary") == 1
    assert any(ODD in t for t in parsed.text)  # shown, decoded, as text
    assert len({p.name for p in (run_dir / "report").glob("probes_*.png")}) == 3


def test_key_round_trip():
    for parts in (["tasks", "a.b", "x\\y", 0], ["plain"], ["", "odd"]):
        key = key_of(parts)
        assert split_key(key) == [str(p) for p in parts]
        assert resolve({"tasks": {"a.b": {"x\\y": [7]}}, "plain": 1, "": {"odd": 2}}, key) in (7, 1, 2)


def test_rewrite_removes_stale_plots(tmp_path):
    summary = study_a_summary()
    run_dir = make_run(tmp_path, summary)
    write_report(run_dir)
    assert (run_dir / "report" / "probes_boolq.png").is_file()
    for row in summary["tasks"].values():
        del row["probes"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    write_report(run_dir)
    assert not list((run_dir / "report").glob("probes_*.png"))


def test_unfinished_run_is_an_error(tmp_path):
    run_dir = make_run(tmp_path, study_a_summary(extras=False))
    (run_dir / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="summary.json"):
        write_report(run_dir)


# --- command line -------------------------------------------------------------------------------------


def test_cli_report_on_run_dir(tmp_path):
    run_dir = make_run(tmp_path, study_a_summary(extras=False))
    result = runner.invoke(app, ["report", str(run_dir), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert Path(last) == (run_dir / "report.html").resolve() and Path(last).is_file()


def _catalog(root: Path, run_dir: Path, summary: dict[str, Any], status: str = "finished") -> None:
    from forgetlab.store import RunStore

    store = RunStore(root)
    with store._db() as db:
        db.execute("INSERT INTO runs (id, name, experiment, fingerprint, status, created, updated, dir, summary) VALUES (?,?,?,?,?,?,?,?,?)",
                   (summary["run"], "x", summary["experiment"], "f", status, "2025-01-01", "2025-01-01", run_dir.name, json.dumps(summary)))


def test_cli_report_by_catalog_id_and_prefix(tmp_path):
    runs = tmp_path / "runs"
    summary = cross_task_summary()
    run_dir = make_run(runs, summary)
    _catalog(runs, run_dir, summary)
    for key in (summary["run"], summary["run"][:7]):
        result = runner.invoke(app, ["report", key, "--runs-dir", str(runs)])
        assert result.exit_code == 0, result.output
        assert Path(result.output.strip().splitlines()[-1]) == (run_dir / "report.html").resolve()
    assert_numbers_match(run_dir / "report.html", summary)


def test_cli_report_errors(tmp_path):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["report", "missing", "--runs-dir", str(runs)])
    assert result.exit_code == 2 and "not a runs directory" in " ".join(result.output.split())
    RunStore(runs)
    result = runner.invoke(app, ["report", "missing", "--runs-dir", str(runs)])
    assert result.exit_code == 2
    assert "expected one match" in " ".join(result.output.split())
    summary = study_a_summary(extras=False, run_id="running-000")
    run_dir = make_run(runs, summary)
    (run_dir / "summary.json").unlink()
    _catalog(runs, run_dir, summary, status="running")
    result = runner.invoke(app, ["report", "running", "--runs-dir", str(runs)])
    assert result.exit_code == 2 and "summary.json" in result.output
