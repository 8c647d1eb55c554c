"""The ``forgetlab`` command line: run recipes, list and show runs, list what is registered."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, List, Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Make language models forget, and measure whether they did.")
out = Console()
err = Console(stderr=True)

if TYPE_CHECKING:  # the commands import what they use when they run (a fast --help)
    from forgetlab.sweep import Plan
    from forgetlab.sweep.driver import SweepState

DEFAULT_RECIPE = "quickstart"


def runs_dir_default() -> str:
    return os.environ.get("FORGETLAB_RUNS", "runs")


EXIT_BAD_INPUT = 2  # a user error: bad config, data, name, runs directory ...
EXIT_LOCKED = 75  # another process is running the same run (EX_TEMPFAIL: try again later, or --wait)
EXIT_INTERNAL = 1  # a bug in forgetlab: one line here, the traceback with --debug


class _Options:
    debug = False


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="show the traceback of an error")) -> None:
    """Make language models forget, and measure whether they did."""
    _Options.debug = debug or os.environ.get("FORGETLAB_DEBUG", "") not in ("", "0")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _message(error: BaseException) -> str:
    from forgetlab.store import describe_os_error

    if isinstance(error, KeyError) and error.args:
        return _one_line(error.args[0])
    if isinstance(error, OSError) and error.filename:
        return _one_line(describe_os_error(error))
    return _one_line(str(error)) or type(error).__name__


def _exit(code: int, message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=code)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """One line and a distinct exit code for every error (the traceback only with --debug)."""
    from forgetlab.store import RunLocked, StoreError
    from forgetlab.train import DivergenceError

    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt as error:
        if _Options.debug:
            raise
        signum = int(getattr(error, "signum", signal.SIGINT))
        err.print(f"interrupted ({signal.Signals(signum).name}): finished work is kept; run the same command again to resume")
        raise typer.Exit(code=128 + signum) from None
    except RunLocked as error:
        _exit(EXIT_LOCKED, _message(error))
    except (ValueError, KeyError, OSError, StoreError, DivergenceError) as error:
        if _Options.debug:
            raise
        _exit(EXIT_BAD_INPUT, _message(error))
    except Exception as error:  # noqa: BLE001  (a bug: say it in one line, keep the traceback for --debug)
        if _Options.debug:
            raise
        _exit(EXIT_INTERNAL, f"internal error: {type(error).__name__}: {_message(error)} (run `forgetlab --debug ...` for the traceback)")


@app.command()
def run(
    config: str = typer.Argument(DEFAULT_RECIPE, help="YAML recipe, or the name of a built-in one"),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="override a key: --set forget.lr=1e-4"),
    runs_dir: str = typer.Option(None, "--runs-dir", help="where runs are stored [env FORGETLAB_RUNS, default ./runs]"),
    wait: bool = typer.Option(False, "--wait", help="if another process is running this run, wait for it instead of exiting"),
) -> None:
    """Run a recipe (or find its finished run, or resume it); the last line printed is the run directory.

    Exit codes: 0 done, 2 bad input, 75 the run is already running elsewhere, 130/143 interrupted, 1 a bug.
    """
    from forgetlab.experiments import load_config, run_experiment
    from forgetlab.experiments.recipes import resolve_recipe
    from forgetlab.interrupt import handle_sigterm

    with _errors(), handle_sigterm():
        cfg = load_config(resolve_recipe(config), set_ or [])
        finished = run_experiment(cfg, runs_dir or runs_dir_default(), command=shlex.join(sys.argv), wait=wait)
        summary = finished.summary() or {}
    _print_task_table(summary)
    _print_crosstask(summary)
    print(finished.dir.resolve())


@app.command()
def attack(
    run_key: str = typer.Argument(..., metavar="RUN", help="the finished run to attack: id, unique id prefix, or run directory"),
    recipe: Optional[str] = typer.Argument(None, help="YAML with attacks: [...] and attack_data: {...} (default: int8 and int4 "
                                           "quantization, relearning 1-20 steps on other items of the forgotten kind, the logit lens)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="override a key: --set attacks.1.options.lr=1e-5"),
    runs_dir: str = typer.Option(None, "--runs-dir", help="where runs are stored [env FORGETLAB_RUNS, default ./runs]"),
    wait: bool = typer.Option(False, "--wait", help="if another process is running this attack run, wait for it"),
) -> None:
    """Recovery attacks on a finished run, as a child run that references it (the run itself is never
    rewritten; its report links to the attack run); the last line printed is the attack run's directory."""
    from forgetlab.config import apply_overrides, read_recipe
    from forgetlab.experiments import run_experiment
    from forgetlab.experiments.attack import attack_recipe, attack_run_config, link_from_source
    from forgetlab.interrupt import handle_sigterm
    from forgetlab.store import RunStore

    with _errors(), handle_sigterm():
        store = RunStore(runs_dir or runs_dir_default(), create=False)
        source = store.finished_run(store.find(run_key).id)
        raw = apply_overrides(attack_recipe(read_recipe(recipe) if recipe else None), set_ or [])
        cfg = attack_run_config(source, raw, origin=recipe or "the default attacks")
        finished = run_experiment(cfg, store.root, command=shlex.join(sys.argv), wait=wait)
        link_from_source(finished, cfg)
    print(finished.dir.resolve())


EXIT_CELLS_FAILED = 3  # a sweep ran, but some cells failed (finished cells are kept; run it again to retry)


@app.command()
def sweep(
    sweep_file: str = typer.Argument(..., metavar="SWEEP", help="sweep file (a base recipe and axes), or a recipe whose "
                                     "runs fan out (a cross_task matrix's cells)"),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="override a key of the base recipe: --set forget.lr=1e-4"),
    backend: Optional[str] = typer.Option(None, "--backend", help="local, ray or slurm [default: the sweep file's, else local]"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="local backend: cells at once [default: CPUs // cpu_threads]"),
    address: Optional[str] = typer.Option(None, "--address", help="ray backend: auto or ray://host:port [default: a local Ray instance]"),
    runs_dir: str = typer.Option(None, "--runs-dir", help="where runs are stored [env FORGETLAB_RUNS, default ./runs]"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the cells (and the runs they start) without running them"),
    results_only: bool = typer.Option(False, "--results-only", help="write results.json, results.md and report.html "
                                      "from the cells finished so far (while the sweep runs elsewhere, or after it was "
                                      "stopped); start nothing"),
) -> None:
    """Run every cell of a sweep (skipping finished ones, resuming interrupted ones), in the order their needs
    allow; then the mean over seeds with bootstrap intervals, results.json and report.html in the sweep's folder
    (the last line printed).

    Exit codes: 0 done, 2 bad input, 3 some cells failed (the others are kept), 130/143 interrupted.
    """
    from forgetlab.interrupt import handle_sigterm
    from forgetlab.sweep import prepare_sweep, run_sweep, sweep_results

    with _errors(), handle_sigterm():
        planned = prepare_sweep(sweep_file, set_ or [], backend=backend, workers=workers, address=address)
        if dry_run:
            _print_plan(planned)
            return
        if results_only:
            outcome = sweep_results(planned, runs_dir or runs_dir_default())
            err.print(outcome.state.line(planned.id).split(" · ")[0], highlight=False, soft_wrap=True)
            _print_groups(outcome.results)
            print(outcome.folder.resolve())
            return
        with _SweepProgress(planned.id) as progress:
            outcome = run_sweep(planned, runs_dir or runs_dir_default(), progress.show)
    _print_groups(outcome.results)
    _print_best(outcome.results.get("search"))
    for key in outcome.failed:
        state = outcome.state.cells[key]
        err.print(f"[red]{state.status}:[/] {escape(state.cell.label)} ({key}): {escape(state.message)}", highlight=False, soft_wrap=True)
    print(outcome.folder.resolve())
    if outcome.failed:
        raise typer.Exit(code=EXIT_CELLS_FAILED)


class _SweepProgress:
    """One live line for the sweep and one per running cell (its worker's latest progress) on a terminal;
    elsewhere a plain line whenever the counts change."""

    def __init__(self, name: str) -> None:
        from rich.live import Live

        self.name, self.last = name, ""
        self.live = Live(console=err, refresh_per_second=2, transient=False) if err.is_terminal else None

    def __enter__(self) -> "_SweepProgress":
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def show(self, state: SweepState) -> None:
        from rich.text import Text

        line = state.line(self.name)
        if self.live is not None:
            running = [f"  {job.cell.label}: {job.progress()[-90:]}" for job in state.jobs.values()]
            self.live.update(Text("\n".join([line, *running]), no_wrap=True, overflow="ellipsis"))
            return
        counts = line.split(" · ")[0]
        if counts != self.last:
            self.last = counts
            print(line, file=sys.stderr, flush=True)


def _print_plan(planned: Plan) -> None:
    table = Table(title=f"sweep {planned.id}: {len(planned.cells)} runs", box=box.SIMPLE_HEAD)
    for column in ("run", "cell", "needs"):
        table.add_column(column, overflow="fold")
    for cell in planned.cells:
        table.add_row(cell.key, cell.label, ", ".join(cell.needs) or "—")
    out.print(table)


def _print_groups(results: dict) -> None:
    groups = results.get("groups") or []
    if not groups:
        return
    from forgetlab.sweep.aggregate import condition_axes, group_metrics
    from forgetlab.sweep.plan import shown

    axes, metrics = condition_axes(results["axes"]), group_metrics(groups)
    if not metrics:
        return
    table = Table(title=f"sweep {results['sweep']}: mean over seeds [95 % bootstrap interval]", box=box.SIMPLE_HEAD, padding=(0, 1))
    for column in [*axes, "n", *metrics]:
        table.add_column(column, overflow="fold")
    for group in groups:
        found = group["metrics"]
        cells = [_fmt(value) if isinstance(value := group["axes"][a], float) or value is None else shown(value) for a in axes]
        cells.append(str(len(group["runs"])))
        cells += [_mean_ci(found[m]) if m in found else "—" for m in metrics]
        table.add_row(*cells)
    out.print(table)


def _print_best(search: dict | None) -> None:
    if not search:
        return
    best = search["best"]
    if best is None:
        out.print(f"search: no feasible trial among {len(search['trials'])}")
        return
    params = " ".join(f"{k}={_fmt(v)}" for k, v in best["params"].items())
    out.print(f"best trial {best['number']} of {len(search['trials'])}: {params} → {search['objective']} = {_fmt(best['value'])}"
              f" (run {best['run']})", highlight=False, markup=False)


def _mean_ci(found: dict) -> str:
    ci = found.get("ci")
    return f"{found['mean']:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")


#: Study A's summary columns and their headers: short words that wrap, so the table reads at 80 columns.
TASK_COLUMNS = {
    "acc_pretrained": "pre-\ntrained", "acc_finetuned": "fine-\ntuned", "acc_forget_test": "forgot\ntest",
    "acc_forget_train": "forgot\ntrain", "forget_gap": "forget\ngap", "forget_ratio": "forget\nratio", "category": "category",
}


def _print_task_table(summary: dict) -> None:
    tasks = summary.get("tasks")
    if not tasks:
        return
    table = Table(title=f"run {summary.get('run', '')}", caption="accuracy on the test set, and on the forget set (train)",
                  box=box.SIMPLE_HEAD, padding=0, pad_edge=False)
    table.add_column("task", overflow="fold")
    for header in TASK_COLUMNS.values():
        table.add_column(header, justify="right", overflow="fold")
    for name, row in tasks.items():
        table.add_row(name, *(_fmt(row.get(key)) for key in TASK_COLUMNS))
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
    """The runs in the catalog (statuses checked against the disk: interrupted, missing)."""
    from forgetlab.store import RunStore

    with _errors():
        rows = RunStore(runs_dir or runs_dir_default(), create=False).list()
    table = Table()
    for column in ("id", "experiment", "status", "updated"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["id"], row["experiment"], row["status"], row["updated"])
    out.print(table)


@app.command()
def show(run_id: str, runs_dir: str = typer.Option(None, "--runs-dir")) -> None:
    """One run: its status, directory and summary (or the error that stopped it)."""
    from forgetlab.store import RunLock, RunStore

    with _errors():
        found = RunStore(runs_dir or runs_dir_default(), create=False).find(run_id)
        summary = found.summary() if found.status == "finished" else None
    out.print(f"{found.id} ({found.status})  {found.dir}", highlight=False, markup=False)
    if found.status == "running":
        out.print(f"held by {RunLock(found.dir / '.lock').holder()}", highlight=False, markup=False)
    if found.error:
        out.print(f"error: {found.error}", highlight=False, markup=False, soft_wrap=True)
    if summary:
        _print_task_table(summary)
        out.print_json(json.dumps(summary))


@app.command()
def report(
    run_key: str = typer.Argument(..., metavar="RUN", help="run id, unique id prefix, or run directory"),
    runs_dir: str = typer.Option(None, "--runs-dir", help="where runs are stored [env FORGETLAB_RUNS, default ./runs]"),
) -> None:
    """Redraw every figure and table of a finished run (of any experiment) into one self-contained HTML report;
    the last line printed is its path."""
    from forgetlab.experiments import write_run_report
    from forgetlab.store import RunStore

    path = Path(run_key)
    with _errors():
        if (path / "config.yaml").is_file() and (path / "summary.json").is_file():
            run_dir = path
        else:
            run_dir = RunStore(runs_dir or runs_dir_default(), create=False).find(run_key).dir
        html_path = write_run_report(run_dir)
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
        out.print(f"{name}: {MODEL_ALIASES.get(name).doc}")


@app.command()
def recipes() -> None:
    """The built-in recipes."""
    from forgetlab.experiments.recipes import builtin_recipes

    for name, path in sorted(builtin_recipes().items()):
        out.print(f"{name}: {path}")


if __name__ == "__main__":
    app()
