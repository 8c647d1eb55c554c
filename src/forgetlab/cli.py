"""The ``forgetlab`` command line: run recipes, list and show runs, list what is registered."""

from __future__ import annotations

import json
import os
import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Make language models forget, and measure whether they did.")
out = Console()
err = Console(stderr=True)

DEFAULT_RECIPE = "quickstart"


def runs_dir_default() -> str:
    return os.environ.get("FORGETLAB_RUNS", "runs")


def builtin_recipes() -> dict[str, Path]:
    """Recipes shipped inside the package (``forgetlab run quickstart``)."""
    folder = resources.files("forgetlab") / "configs"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def resolve_recipe(config: str) -> Path:
    path = Path(config)
    if path.is_file():
        return path
    recipes = builtin_recipes()
    if config in recipes:
        return recipes[config]
    raise FileNotFoundError(f"config {config!r}: no such file, and not a built-in recipe ({', '.join(sorted(recipes))})")


def _fail(error: BaseException) -> None:
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@app.command()
def run(
    config: str = typer.Argument(DEFAULT_RECIPE, help="YAML recipe, or the name of a built-in one"),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="override a key: --set forget.lr=1e-4"),
    runs_dir: str = typer.Option(None, "--runs-dir", help="where runs are stored [env FORGETLAB_RUNS, default ./runs]"),
) -> None:
    """Run a recipe (or find its finished run, or resume it); the last line printed is the run directory."""
    from forgetlab.config import load_config
    from forgetlab.experiments import run_experiment
    from forgetlab.train import DivergenceError

    try:
        cfg = load_config(resolve_recipe(config), set_ or [])
        finished = run_experiment(cfg, runs_dir or runs_dir_default(), command=shlex.join(sys.argv))
    except (ValueError, KeyError, FileNotFoundError, DivergenceError, OSError) as error:
        _fail(error)
        return
    summary = finished.summary() or {}
    _print_task_table(summary)
    _print_crosstask(summary)
    print(finished.dir.resolve())


def _print_task_table(summary: dict) -> None:
    tasks = summary.get("tasks")
    if not tasks:
        return
    table = Table(title=f"run {summary.get('run', '')}")
    columns = ("acc_pretrained", "acc_finetuned", "acc_forget_test", "acc_forget_train", "forget_gap", "forget_ratio", "category")
    table.add_column("task")
    for column in columns:
        table.add_column(column, justify="right")
    for name, row in tasks.items():
        table.add_row(name, *(_fmt(row.get(c)) for c in columns))
    out.print(table)


def _print_crosstask(summary: dict) -> None:
    matrix = summary.get("crosstask")
    if not matrix:
        return
    table = Table(title="forget ratio: rows forgot, columns scored (relative to the model fine-tuned on the column)")
    table.add_column("forgot ↓  scored →")
    for b in matrix["col_order"]:
        table.add_column(b, justify="right")
    for a in matrix["row_order"]:
        table.add_row(a, *(_fmt(matrix["forget_ratio"][a][b]) for b in matrix["col_order"]))
    out.print(table)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "—" if value is None else str(value)


@app.command("list")
def list_runs(runs_dir: str = typer.Option(None, "--runs-dir")) -> None:
    """The runs in the catalog."""
    from forgetlab.store import RunStore

    table = Table()
    for column in ("id", "experiment", "status", "updated"):
        table.add_column(column)
    for row in RunStore(runs_dir or runs_dir_default()).list():
        table.add_row(row["id"], row["experiment"], row["status"], row["updated"])
    out.print(table)


@app.command()
def show(run_id: str, runs_dir: str = typer.Option(None, "--runs-dir")) -> None:
    """One run: its status, directory and summary."""
    from forgetlab.store import RunStore

    try:
        found = RunStore(runs_dir or runs_dir_default()).find(run_id)
    except KeyError as error:
        _fail(error)
        return
    out.print(f"[bold]{found.id}[/] ({found.status})  {found.dir}")
    summary = found.summary()
    if summary:
        _print_task_table(summary)
        out.print_json(json.dumps(summary))


@app.command()
def report(
    run_key: str = typer.Argument(..., metavar="RUN", help="run id, unique id prefix, or run directory"),
    runs_dir: str = typer.Option(None, "--runs-dir", help="where runs are stored [env FORGETLAB_RUNS, default ./runs]"),
) -> None:
    """Write a finished run's plots and one self-contained HTML report; the last line printed is its path."""
    from forgetlab.report.html import write_report
    from forgetlab.store import RunStore

    path = Path(run_key)
    try:
        if (path / "config.yaml").is_file() and (path / "summary.json").is_file():
            run_dir = path
        else:
            run_dir = RunStore(runs_dir or runs_dir_default()).find(run_key).dir
        html_path = write_report(run_dir)
    except (KeyError, ValueError, FileNotFoundError, OSError) as error:
        _fail(error)
        return
    print(html_path.resolve())


@app.command()
def tasks() -> None:
    """The registered multiple-choice tasks."""
    from forgetlab.data.tasks import get_task, task_names

    for name in task_names():
        out.print(f"{name} ({get_task(name).domain})")


@app.command()
def methods() -> None:
    """The registered training/unlearning methods."""
    from forgetlab.methods import METHODS

    for name in METHODS.names():
        out.print(f"{name}: {(METHODS.get(name).__doc__ or '').strip().splitlines()[0]}")


@app.command()
def models() -> None:
    """The built-in model aliases (any hub id or local directory works too)."""
    from forgetlab.models import MODEL_ALIASES

    for name in MODEL_ALIASES.names():
        out.print(f"{name}: {(MODEL_ALIASES.get(name).__doc__ or '').strip()}")


@app.command()
def recipes() -> None:
    """The built-in recipes."""
    for name, path in sorted(builtin_recipes().items()):
        out.print(f"{name}: {path}")


if __name__ == "__main__":
    app()
