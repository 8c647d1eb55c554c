"""The run store: one directory per run, a SQLite catalog of runs, atomic writes, resumable stages.

A run directory holds ``config.yaml`` (resolved, with versions, seed and world size),
``metrics.jsonl`` (one line per number: task, stage, step, split, metric, value), ``examples.jsonl``
(per-item results), ``summary.json`` (headline numbers) and ``stages/`` (one JSON per finished stage,
which is what makes a killed run resume where it stopped). ``metrics.jsonl`` and ``examples.jsonl``
are rebuilt atomically from the finished stages, so they never hold half a stage.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sqlite3
import sys
import tempfile
from contextlib import closing
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import yaml

from forgetlab.config import ExperimentConfig

TRACKED_PACKAGES = ("forgetlab", "torch", "transformers", "accelerate", "peft", "datasets", "numpy", "scipy", "scikit-learn", "tokenizers", "gguf")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    experiment TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    dir TEXT NOT NULL,
    summary TEXT
)
"""


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write a file so that readers see the old content or the new one, never a part.

    The file keeps mkstemp's 0600 unless ``mode`` is given (e.g. 0o644 for a report meant for reading).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Run:
    """A run directory and the stages already finished in it."""

    id: str
    dir: Path
    status: str

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def stage_path(self, key: str) -> Path:
        return self.dir / "stages" / f"{key}.json"

    def stage(self, key: str) -> dict[str, Any] | None:
        """The saved payload of a finished stage, or None."""
        path = self.stage_path(key)
        return json.loads(path.read_text()) if path.is_file() else None

    def save_stage(self, key: str, payload: dict[str, Any]) -> None:
        """Record a finished stage (atomically) and refresh metrics.jsonl/examples.jsonl."""
        atomic_write_json(self.stage_path(key), payload)
        order_path = self.dir / "stages" / "order.json"
        order = json.loads(order_path.read_text()) if order_path.is_file() else []
        if key not in order:
            order.append(key)
            atomic_write_json(order_path, order)
        self._rebuild_tables(order)

    def _rebuild_tables(self, order: list[str]) -> None:
        metrics, examples = [], []
        for key in order:
            payload = self.stage(key) or {}
            metrics.extend(payload.get("metrics", []))
            examples.extend(payload.get("examples", []))
        atomic_write_text(self.dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))
        atomic_write_text(self.dir / "examples.jsonl", "".join(json.dumps(e) + "\n" for e in examples))

    def save_timings(self, timings: dict[str, Any]) -> None:
        """Wall-clock seconds of the run's parts, kept in ``timings.json`` apart from ``summary.json``
        so that identical runs have byte-identical results."""
        atomic_write_json(self.dir / "timings.json", timings)

    def summary(self) -> dict[str, Any] | None:
        path = self.dir / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else None


class RunStore:
    """Run directories under ``root`` plus ``root/catalog.sqlite``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.root / "catalog.sqlite", timeout=60)
        db.row_factory = sqlite3.Row
        return db

    @staticmethod
    def run_id(config: ExperimentConfig) -> str:
        return f"{config.name}-{config.fingerprint()[:12]}"

    def open(self, config: ExperimentConfig, *, world_size: int = 1, command: str = "") -> Run:
        """The run of this config: the finished one if it exists, else a new or resumed one."""
        run_id = self.run_id(config)
        run_dir = self.root / run_id
        existing = self.get(run_id)
        if existing is not None and existing.finished and (run_dir / "summary.json").is_file():
            return existing
        resolved = {
            "config": config.model_dump(mode="json"),
            "fingerprint": config.fingerprint(),
            "seed": config.seed,
            "world_size": world_size,
            "versions": package_versions(),
            "command": command,
        }
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
        now = _now()
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT INTO runs (id, name, experiment, fingerprint, status, created, updated, dir) VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET status='running', updated=excluded.updated",
                (run_id, config.name, config.experiment, config.fingerprint(), "running", now, now, str(run_dir.resolve())),
            )
        return Run(run_id, run_dir, "running")

    def finish(self, run: Run, summary: dict[str, Any]) -> None:
        """Write summary.json and mark the run finished (in that order: a crash between leaves it resumable)."""
        atomic_write_json(run.dir / "summary.json", summary)
        self._set_status(run.id, "finished", json.dumps(summary, allow_nan=False))
        run.status = "finished"

    def fail(self, run: Run, reason: str) -> None:
        """Mark a run failed; its finished stages stay, so running it again resumes."""
        self._set_status(run.id, "failed", json.dumps({"error": reason}))
        run.status = "failed"

    def _set_status(self, run_id: str, status: str, summary: str | None) -> None:
        with closing(self._connect()) as db, db:
            db.execute("UPDATE runs SET status=?, updated=?, summary=? WHERE id=?", (status, _now(), summary, run_id))

    def get(self, run_id: str) -> Run | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT id, dir, status FROM runs WHERE id=?", (run_id,)).fetchone()
        return Run(row["id"], Path(row["dir"]), row["status"]) if row else None

    def find(self, key: str) -> Run:
        """A run by id, unique id prefix, or directory path."""
        path = Path(key)
        if (path / "config.yaml").is_file():
            key = path.resolve().name
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, dir, status FROM runs WHERE id LIKE ? ORDER BY id", (key + "%",)).fetchall()
        exact = [r for r in rows if r["id"] == key]
        if exact:
            rows = exact
        if len(rows) != 1:
            found = ", ".join(r["id"] for r in rows) or "none"
            raise KeyError(f"run {key!r}: expected one match in {self.root}, found {found}")
        return Run(rows[0]["id"], Path(rows[0]["dir"]), rows[0]["status"])

    def list(self) -> list[dict[str, Any]]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, name, experiment, status, created, updated, dir FROM runs ORDER BY created").fetchall()
        return [dict(r) for r in rows]


def read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with open(path) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
