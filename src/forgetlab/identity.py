"""What a result depends on besides its config: the version of the numbers, and the inputs' contents.

A run's identity (and so its id) is the hash of its resolved config, :data:`RESULTS_VERSION`, the
SHA-256 of every file it reads (data files, corpora, local model directories) and the versions of
the offline model packages it loads. Edit a data file and the same recipe is a new run; commit code
that does not change numbers and finished runs stay valid. The git commit is recorded beside each
result (:func:`code_version`) but is not part of its identity.

File digests are cached in ``<cache>/digests.sqlite`` keyed by path, size, mtime and inode, so a
large file is hashed once until it changes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from contextlib import closing
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

#: Bumped whenever a change alters the numbers an identical recipe produces, so that finished runs
#: made by older code are not returned as the answer. History:
#: 1 — the original pipelines;
#: 2 — Study A's ``not_learned`` category, RMU as published (trained layers, last-layer activation),
#:     Study B's reference model trained on as many steps and tokens as the original;
#: 3 — training packs each batch's rows side by side instead of padding them, projects onto the vocabulary
#:     only at labelled positions (both change the last bits of matrix products) and uses fused AdamW;
#: 4 — packed lines as wide as costs least (padding against attention), not always the longest row's width.
RESULTS_VERSION = 4

_CHUNK = 1 << 20


def cache_dir() -> Path:
    """forgetlab's cache (converted checkpoints, file digests): ``$FORGETLAB_CACHE`` or the user cache dir."""
    root = os.environ.get("FORGETLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "forgetlab"
    )
    return Path(root)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _digest_cache() -> sqlite3.Connection | None:
    """The digest cache, or None when the cache directory cannot be written (hashing still works)."""
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(cache_dir() / "digests.sqlite", timeout=30)
        db.execute(
            "CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, sha256 TEXT)"
        )
        return db
    except (OSError, sqlite3.Error):
        return None


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes; cached while its size, mtime and inode stay the same."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    db = _digest_cache()
    if db is None:
        return _sha256(path)
    with closing(db):
        row = db.execute("SELECT size, mtime_ns, inode, sha256 FROM digests WHERE path=?", (key[0],)).fetchone()
        if row is not None and tuple(row[:3]) == key[1:]:
            return row[3]
        digest = _sha256(path)
        try:
            with db:
                db.execute("INSERT OR REPLACE INTO digests VALUES (?,?,?,?,?)", (*key, digest))
        except sqlite3.Error:
            pass  # a cache that cannot be written only costs time
        return digest


def tree_digest(directory: str | Path) -> str:
    """SHA-256 over a directory's files (relative path and content digest of each, sorted; hidden files skipped)."""
    root = Path(directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        digest.update(f"{relative.as_posix()}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()


def input_digests(paths: Iterable[str | Path]) -> list[dict[str, str]]:
    """``[{path, sha256}]`` for each input file or directory, in the given order (duplicates dropped)."""
    out, seen = [], set()
    for path in paths:
        path = Path(path)
        if str(path) in seen:
            continue
        seen.add(str(path))
        if path.is_dir():
            out.append({"path": str(path), "sha256": tree_digest(path)})
        elif path.is_file():
            out.append({"path": str(path), "sha256": file_digest(path)})
        else:
            raise FileNotFoundError(f"input {path} does not exist")
    return out


def package_version(distribution: str) -> str:
    """An installed distribution's version, or ``"not installed"``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def code_version() -> dict[str, Any]:
    """forgetlab's version, :data:`RESULTS_VERSION`, and the git commit of its source tree when it is a checkout."""
    out: dict[str, Any] = {"forgetlab": package_version("forgetlab"), "results_version": RESULTS_VERSION}
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return out
    out["git_commit"] = commit
    out["git_dirty"] = bool(dirty)
    return out
