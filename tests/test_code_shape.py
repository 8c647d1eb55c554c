"""The code's shape: no source file over 500 lines and no function over 60 lines. ``STILL_TOO_LONG`` lists what is still being reshaped; it may only shrink — an entry that no longer
needs its place must be removed."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "forgetlab"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60

STILL_TOO_LONG: set[str] = set()


def too_long() -> set[str]:
    found = set()
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        text = path.read_text()
        if len(text.splitlines()) > MAX_FILE_LINES:
            found.add(name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                found.add(f"{name}:{node.name}")
    return found


def test_no_file_or_function_is_too_long():
    found = too_long()
    assert sorted(found - STILL_TOO_LONG) == [], "new files or functions over the limits"
    assert sorted(STILL_TOO_LONG - found) == [], "reshaped: remove these from STILL_TOO_LONG"
