"""The run store: one directory per run, a SQLite catalog of runs, atomic writes, resumable stages.

A run directory holds ``config.yaml`` (resolved config, identity, inputs, seed, world size, versions,
code commit), ``metrics.jsonl`` (one line per number: task, stage, step, split, metric, value),
``examples.jsonl`` (per-item results), ``summary.json`` (headline numbers), ``timings.json`` (wall-clock
seconds, kept apart so that identical runs have byte-identical results) and ``stages/`` (one JSON per
finished stage, which is what makes a killed run resume where it stopped). ``metrics.jsonl`` and
``examples.jsonl`` are rebuilt atomically from the finished stages, so they never hold half a stage.

Only one process works on a run at a time: it holds an OS file lock on ``<run>/.lock`` (released by
the kernel when the process dies). The catalog stores run directories relative to the runs directory
(a runs directory can be moved) and is reconciled with the disk when read: a ``running`` run whose
lock is free was killed (``interrupted``), a run whose directory is gone is ``missing``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import platform
import shutil
import socket
import sqlite3
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from forgetlab.config import ExperimentConfig, check_run_name

TRACKED_PACKAGES = ("forgetlab", "torch", "transformers", "accelerate", "peft", "datasets", "numpy", "scipy", "scikit-learn", "tokenizers", "gguf")
TEMP_SUFFIX = ".tmp"
STATUSES = ("running", "finished", "failed", "interrupted", "missing")

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
    summary TEXT,
    pid INTEGER,
    host TEXT
)
"""


class StoreError(RuntimeError):
    """The runs directory or its catalog cannot be used; the message names the file."""


class RunLocked(RuntimeError):
    """Another process is working on this run."""

    def __init__(self, run_id: str, holder: str) -> None:
        self.run_id, self.holder = run_id, holder
        super().__init__(f"run {run_id} is already running ({holder}); pass --wait to wait for it")


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write a file so that readers see the old content or the new one, never a part.

    The file keeps mkstemp's 0600 unless ``mode`` is given (e.g. 0o644 for a report meant for reading).
    The temporary file ends in ``.tmp`` and is removed when the write fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
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


def read_json(path: Path) -> Any:
    """A JSON file's content; a damaged file is a :class:`StoreError` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StoreError(
            f"{path}: damaged, not valid JSON ({error}); delete it and run the recipe again to rebuild it from the saved stages"
        ) from None


#: An attack run of run R (``forgetlab attack R``) is named ``R-attacks``, so its id is ``R-attacks-<hex>``.
ATTACK_RUNS = "-attacks"


def attack_runs(run_dir: Path) -> list[Path]:
    """The finished attack runs of the run in ``run_dir`` (its siblings named after it), sorted."""
    return sorted(p for p in run_dir.parent.glob(f"{run_dir.name}{ATTACK_RUNS}-*") if (p / "summary.json").is_file())


def recorded_config(run_dir: Path) -> dict[str, Any]:
    """The resolved recipe a run recorded in its ``config.yaml``."""
    path = run_dir / "config.yaml"
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{run_dir}: no config.yaml (not a run directory)") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise StoreError(f"{path}: damaged, no 'config' mapping")
    return record["config"]


def remove_temporaries(folder: Path) -> int:
    """Delete every ``*.tmp`` file or folder under ``folder`` (half-written by a failed or killed process).

    Never raises (it runs while a failure is being recorded); returns how many entries it removed.
    """
    removed = 0
    try:
        found = sorted(folder.rglob(f"*{TEMP_SUFFIX}"), key=lambda p: len(p.parts))
    except OSError:
        return 0
    for path in found:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            removed += 1
        except OSError:
            continue
    return removed


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


class RunLock:
    """An exclusive ``flock`` on a run's ``.lock`` file; the file also says who holds it (pid and host)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, wait: bool, run_id: str) -> None:
        """Take the lock; if another process holds it, raise :class:`RunLocked` (or block with ``wait``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise RunLocked(run_id, self.holder()) from None
                print(f"waiting for run {run_id} ({self.holder()}) to finish ...", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def held_elsewhere(self) -> bool:
        """Whether some process (this one included, through another descriptor) holds the lock now."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


@dataclass
class Run:
    """A run directory and the stages already finished in it."""

    id: str
    dir: Path
    status: str
    error: str | None = None
    lock: RunLock | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def path(self, *parts: str) -> Path:
        """A path inside the run directory; anything that would resolve outside it is refused."""
        target = self.dir.joinpath(*parts)
        if not target.resolve().is_relative_to(self.dir.resolve()):
            raise ValueError(f"run {self.id}: {'/'.join(parts)!r} would be written outside the run directory")
        return target

    def stage_path(self, key: str) -> Path:
        return self.path("stages", f"{key}.json")

    def stage(self, key: str) -> dict[str, Any] | None:
        """The saved payload of a finished stage, or None."""
        path = self.stage_path(key)
        return read_json(path) if path.is_file() else None

    def weights_path(self, key: str) -> Path:
        """Where the weights kept under stage key ``key`` live: ``stages/<key>.safetensors`` (beside its JSON)."""
        return self.path("stages", f"{key}.safetensors")

    def kept_weights(self, key: str) -> Path:
        """The weights kept under ``key``; FileNotFoundError naming the run when it did not keep them."""
        path = self.weights_path(key)
        if not path.is_file():
            raise FileNotFoundError(f"run {self.id}: no weights kept under {key!r} (expected {path})")
        return path

    def save_stage(self, key: str, payload: dict[str, Any]) -> None:
        """Record a finished stage (atomically) and refresh metrics.jsonl/examples.jsonl."""
        atomic_write_json(self.stage_path(key), payload)
        order = self.stage_order()
        if key not in order:
            atomic_write_json(self.stage_path("order"), order := [*order, key])
        metrics, examples = [], []
        for payload in map(self.stage, order):
            metrics.extend((payload or {}).get("metrics", []))
            examples.extend((payload or {}).get("examples", []))
        atomic_write_text(self.dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))
        atomic_write_text(self.dir / "examples.jsonl", "".join(json.dumps(e) + "\n" for e in examples))

    def stage_order(self) -> list[str]:
        """The keys of the finished stages, in the order they finished (``stages/order.json``)."""
        return read_json(self.stage_path("order")) if self.stage_path("order").is_file() else []

    def stage_seconds(self) -> dict[str, float]:
        """The wall-clock seconds of every finished stage, in order (each from the attempt that computed it)."""
        payloads = {key: self.stage(key) or {} for key in self.stage_order()}
        return {key: float(p["seconds"]) for key, p in payloads.items() if isinstance(p.get("seconds"), (int, float))}

    def save_timings(self, timings: dict[str, Any]) -> None:
        """Wall-clock seconds of the run's parts, kept in ``timings.json`` apart from ``summary.json``
        so that identical runs have byte-identical results."""
        atomic_write_json(self.dir / "timings.json", timings)

    def summary(self) -> dict[str, Any] | None:
        path = self.dir / "summary.json"
        return read_json(path) if path.is_file() else None

    def release(self) -> None:
        """Give up the run's lock (the kernel also does this when the process ends)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def run_id_for(name: str, fingerprint: str) -> str:
    """A run's id: its name and the first 12 hex digits of its identity's fingerprint."""
    return f"{name}-{fingerprint[:12]}"


class RunStore:
    """Run directories under ``root`` plus ``root/catalog.sqlite``.

    ``create=False`` (for reading: list, show, report) refuses a folder that holds no catalog instead
    of making one.
    """

    def __init__(self, root: str | Path, *, create: bool = True) -> None:
        self.root = Path(root)
        self.catalog = self.root / "catalog.sqlite"
        if not create and not self.catalog.is_file():
            raise StoreError(f"{self.root}: not a runs directory (no catalog.sqlite); check --runs-dir or FORGETLAB_RUNS")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"{self.root}: cannot create the runs directory: {error.strerror}") from None
        with self._db() as db:
            # The rollback journal, not WAL: WAL needs shared memory that NFS-like filesystems do not give, and a
            # sweep's workers on several machines share one runs directory; writers wait up to 60 s for the lock.
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute(SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
            for column, kind in (("pid", "INTEGER"), ("host", "TEXT")):
                if column not in columns:
                    db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A catalog connection in a transaction; SQLite errors become a StoreError naming the catalog."""
        try:
            db = sqlite3.connect(self.catalog, timeout=60)
            try:
                db.row_factory = sqlite3.Row
                with db:
                    yield db
            finally:
                db.close()
        except sqlite3.DatabaseError as error:
            hint = "; it is not a forgetlab catalog or it is damaged: move it aside" if "not a database" in str(error) else ""
            raise StoreError(f"{self.catalog}: {error}{hint}") from None

    def run_dir(self, run_id: str) -> Path:
        check_run_name(run_id, "run id")
        return self.root / run_id

    def open(
        self, config: ExperimentConfig, fingerprint: str, record: dict[str, Any], *, wait: bool = False
    ) -> Run:
        """The run of this config and identity: the finished one if it exists, else a new or resumed one,
        locked by this process (:class:`RunLocked` if another process has it, unless ``wait``)."""
        run_id = run_id_for(config.name, fingerprint)
        run_dir = self.run_dir(run_id)
        finished = self._finished(run_id)
        if finished is not None:
            return finished
        lock = RunLock(run_dir / ".lock")
        lock.acquire(wait=wait, run_id=run_id)
        try:
            finished = self._finished(run_id)  # it may have finished while we waited
            if finished is not None:
                lock.release()
                return finished
            remove_temporaries(run_dir)  # left by a process that was killed
            atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(dict(record, fingerprint=fingerprint), sort_keys=False))
            now = _now()
            with self._db() as db:
                db.execute(
                    "INSERT INTO runs (id, name, experiment, fingerprint, status, created, updated, dir, pid, host) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET status='running', summary=NULL, "
                    "updated=excluded.updated, dir=excluded.dir, pid=excluded.pid, host=excluded.host",
                    (run_id, config.name, config.experiment, fingerprint, "running", now, now, run_id, os.getpid(), socket.gethostname()),
                )
        except BaseException:
            lock.release()
            raise
        return Run(run_id, run_dir, "running", lock=lock)

    def _finished(self, run_id: str) -> Run | None:
        existing = self.get(run_id)
        if existing is not None and existing.finished and (existing.dir / "summary.json").is_file():
            return existing
        return None

    def finish(self, run: Run, summary: dict[str, Any]) -> None:
        """Write summary.json and mark the run finished (in that order: a crash between leaves it resumable)."""
        atomic_write_json(run.dir / "summary.json", summary)
        self._set_status(run.id, "finished", json.dumps(summary, allow_nan=False))
        run.status = "finished"

    def fail(self, run: Run, reason: str, *, status: str = "failed") -> list[str]:
        """Record that a run stopped without a result (``failed`` or ``interrupted``); its finished stages stay.

        Needs no free disk space to do the essential part: it first deletes half-written temporary
        files, then marks the catalog. Returns what went wrong while recording (never raises an Exception).
        """
        problems = []
        remove_temporaries(run.dir)
        try:
            self._set_status(run.id, status, json.dumps({"error": reason}))
        except (StoreError, OSError) as error:
            problems.append(f"could not mark run {run.id} {status} in the catalog: {error}")
        run.status, run.error = status, reason
        return problems

    def _set_status(self, run_id: str, status: str, summary: str | None) -> None:
        with self._db() as db:
            db.execute("UPDATE runs SET status=?, updated=?, summary=? WHERE id=?", (status, _now(), summary, run_id))

    def _run(self, row: sqlite3.Row) -> Run:
        error = None
        if row["status"] in ("failed", "interrupted") and row["summary"]:
            with contextlib.suppress(ValueError, TypeError):
                error = json.loads(row["summary"]).get("error")
        return Run(row["id"], self.root / row["id"], row["status"], error=error)

    def get(self, run_id: str) -> Run | None:
        self.reconcile(run_id)
        with self._db() as db:
            row = db.execute("SELECT id, status, summary FROM runs WHERE id=?", (run_id,)).fetchone()
        return self._run(row) if row else None

    def finished_run(self, run_id: str) -> Run:
        """The finished run ``run_id``, for reading another run's results; StoreError when it is not in the
        catalog or has not finished (its stages and weights may be partial)."""
        run = self.get(check_run_name(run_id, "run id"))
        if run is None:
            raise StoreError(f"run {run_id}: not in {self.catalog}")
        if not run.finished:
            raise StoreError(f"run {run_id} is {run.status}, not finished: its results cannot be used yet")
        return run

    def find(self, key: str) -> Run:
        """A run by id, unique id prefix, or directory path."""
        path = Path(key)
        if (path / "config.yaml").is_file():
            key = path.resolve().name
        self.reconcile()
        with self._db() as db:
            rows = db.execute(
                "SELECT id, status, summary FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id", (len(key), key)
            ).fetchall()
        exact = [r for r in rows if r["id"] == key]
        if exact:
            rows = exact
        ids = [r["id"] for r in rows]  # a prefix of a run's id also matches its attack runs: the run is meant
        rows = [r for r in rows if not any(r["id"].startswith(f"{other}{ATTACK_RUNS}-") for other in ids)] or rows
        if len(rows) != 1:
            found = ", ".join(r["id"] for r in rows) or "none"
            raise KeyError(f"run {key!r}: expected one match in {self.root}, found {found}")
        return self._run(rows[0])

    def list(self) -> list[dict[str, Any]]:
        self.reconcile()
        with self._db() as db:
            rows = db.execute("SELECT id, name, experiment, status, created, updated, dir FROM runs ORDER BY created").fetchall()
        return [dict(r) for r in rows]

    def reconcile(self, run_id: str | None = None) -> None:
        """Bring catalog statuses in line with the disk (all runs, or one): a ``running`` run whose lock is
        free was killed → ``interrupted``; a run whose directory is gone → ``missing`` (and back when it returns)."""
        with self._db() as db:
            query = "SELECT id, status FROM runs" + (" WHERE id=?" if run_id else "")
            rows = db.execute(query, (run_id,) if run_id else ()).fetchall()
        for row in rows:
            status = self._observed_status(row["id"], row["status"])
            if status != row["status"]:
                with self._db() as db:
                    db.execute(
                        "UPDATE runs SET status=?, updated=? WHERE id=? AND status=?", (status, _now(), row["id"], row["status"])
                    )

    def _observed_status(self, run_id: str, status: str) -> str:
        run_dir = self.root / run_id
        if not run_dir.is_dir():
            return "missing"
        if status == "running" and not RunLock(run_dir / ".lock").held_elsewhere():
            return "interrupted"
        if status in ("missing", "finished"):
            return "finished" if (run_dir / "summary.json").is_file() else "interrupted"
        return status


def read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with open(path) as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def describe_os_error(error: OSError) -> str:
    """One line for a file-system error: the file and what went wrong (e.g. 'No space left on device')."""
    what = error.strerror or errno.errorcode.get(error.errno or 0, "") or str(error)
    return f"{error.filename}: {what}" if error.filename else what
