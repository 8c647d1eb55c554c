"""The house's floors: a module imports only from its own floor or below, and no files import each other in a circle.

cli → sweep → experiments → report/analysis → train/metrics → methods/scoring → data/store →
config/models/scratch_model/precision/onednn →
registry/identity/interrupt/threads. Every import counts, also one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "forgetlab"

FLOORS = {
    "registry": 0, "identity": 0, "interrupt": 0, "stats": 0, "threads": 0,
    "config": 1, "models": 1, "scratch_model": 1, "precision": 1, "onednn": 1,
    "data": 2, "store": 2,
    "methods": 3, "scoring": 3,
    "train": 4, "metrics": 4,
    "report": 5, "analysis": 5, "attacks": 5,
    "experiments": 6,
    "sweep": 7,
    "cli": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def imports(path: Path) -> set[str]:
    """forgetlab modules imported anywhere in a file (resolved to the longest existing module name)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import submodule`` imports the submodule; ``from pkg import name`` the package
            names = [_existing(f"{node.module}.{alias.name}") for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("forgetlab."):
                found.add(_existing(name))
    return found


def _existing(name: str) -> str:
    parts = name.split(".")
    while parts:
        candidate = SRC.parent.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return name


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    return {name: {m for m in imports(path) if m in files and m != name} for name, path in files.items()}


def test_every_module_has_a_floor():
    assert [m for m in graph() if m != "forgetlab" and floor(m) is None] == []


def test_no_module_imports_from_a_floor_above_it():
    upward = [
        f"{module} (floor {floor(module)}) imports {target} (floor {floor(target)})"
        for module, targets in graph().items()
        for target in targets
        if floor(module) is not None and floor(target) is not None and floor(target) > floor(module)
    ]
    assert upward == []


def test_no_import_circles():
    edges = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph().items()}  # a package's __init__ may import its own modules
    circles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                circles.append(" → ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert circles == []
