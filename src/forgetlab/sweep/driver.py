"""Running a sweep's plan on a backend: cells in the order their needs allow, finished ones skipped, dead
workers' cells started again, one live progress line.

The driver keeps nothing that the catalog does not: a cell is done when its run is finished in the catalog.
Killing the driver loses no finished cell (each is its own run) and duplicates none: a rerun finds finished
cells, and a cell still being run by an orphaned worker is waited for (the run's lock), not started twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from forgetlab.store import RunStore
from forgetlab.sweep.backends import Backend, Job
from forgetlab.sweep.plan import Cell, Plan

@dataclass
class CellState:
    """Where one cell stands in this sweep."""

    cell: Cell
    status: str = "waiting"
    attempts: int = 0
    message: str = ""
    started: float | None = None
    seconds: float | None = None  # wall time of the attempt that finished it here (None: found finished)


@dataclass
class SweepState:
    """Every cell's state, the running jobs, and when the sweep started."""

    cells: dict[str, CellState]
    capacity: int
    total: int | None = None  # cells the sweep will have (a search adds its trials as it goes)
    started: float = field(default_factory=time.time)
    jobs: dict[str, Job] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for s in self.cells.values() if s.status == status)

    def eta_seconds(self) -> float | None:
        """Seconds left, from the mean wall time of the cells finished here and the cells that may run at once."""
        timed = [s.seconds for s in self.cells.values() if s.seconds is not None]
        left = self.count("waiting") + self.count("running") + max(0, (self.total or 0) - len(self.cells))
        if not timed or not left:
            return None if left else 0.0
        return sum(timed) / len(timed) * left / max(1, min(self.capacity, left))

    def line(self, name: str) -> str:
        """``sweep NAME: 3/9 finished, 2 running, 0 failed, 4 waiting · ETA 12 min``."""
        total = max(len(self.cells), self.total or 0)
        parts = [f"{self.count('finished')}/{total} finished", f"{self.count('running')} running", f"{self.count('failed')} failed"]
        parts += [f"{self.count(s)} {s}" for s in ("blocked", "waiting") if self.count(s)]
        eta = self.eta_seconds()
        elapsed = time.time() - self.started
        timing = f"{elapsed / 60:.1f} min" + (f", ETA {eta / 60:.1f} min" if eta else "")
        return f"sweep {name}: {', '.join(parts)} · {timing}"


def found_state(plan: Plan, store: RunStore) -> SweepState:
    """Every cell as the catalog has it now (finished, running elsewhere, failed, or not started: waiting);
    nothing is started."""
    cells = {}
    for cell in plan.cells:
        run = store.get(cell.key)
        status = run.status if run is not None and run.status in ("finished", "running", "failed") else "waiting"
        cells[cell.key] = CellState(cell, status, message=(run.error or "") if run is not None else "")
    return SweepState(cells, capacity=0)


class Scheduler:
    """Starts ready cells on the backend up to its capacity, polls them, and records how each ended."""

    def __init__(self, plan: Plan, store: RunStore, backend: Backend, retries: int,
                 show: Callable[[SweepState], None] = lambda state: None, poll_seconds: float = 0.5,
                 state: SweepState | None = None) -> None:
        self.plan, self.store, self.backend, self.retries = plan, store, backend, retries
        self.show, self.poll_seconds = show, poll_seconds
        self.state = state or SweepState({}, backend.capacity())  # a search's batches share one state
        for cell in plan.cells:
            self.state.cells.setdefault(cell.key, CellState(cell))

    def run(self) -> SweepState:
        """Run every cell that is not finished; returns the final state (failed cells included)."""
        for cell in self.plan.cells:
            state = self.state.cells[cell.key]
            if state.status == "waiting" and self._finished_in_catalog(cell.key):
                state.status = "finished"
        try:
            while self._step():
                self.show(self.state)
                time.sleep(self.poll_seconds)
        except BaseException:
            for job in self.state.jobs.values():
                job.cancel()
            raise
        self.show(self.state)
        return self.state

    def _step(self) -> bool:
        """One round: block cells whose needs failed, start ready ones, collect ended ones; False when all is done."""
        cells = self.state.cells
        for state in cells.values():
            failed = [n for n in state.cell.needs if cells[n].status in ("failed", "blocked")]
            if state.status == "waiting" and failed:
                state.status, state.message = "blocked", f"needs {failed[0]}, which did not finish"
        ready = [s.cell for s in cells.values() if s.status == "waiting" and all(cells[n].status == "finished" for n in s.cell.needs)]
        free = self.backend.capacity() - len(self.state.jobs)
        if ready and free > 0:
            for job in self.backend.submit(ready[:free]):
                self.state.jobs[job.cell.key] = job
                state = cells[job.cell.key]
                state.status, state.attempts, state.started = "running", state.attempts + 1, time.time()
        for key, job in list(self.state.jobs.items()):
            if job.done():
                del self.state.jobs[key]
                self.backend.ended(job)
                self._ended(cells[key], job)
        return bool(self.state.jobs) or any(s.status == "waiting" for s in cells.values())

    def _ended(self, state: CellState, job: Job) -> None:
        outcome = job.outcome()
        if outcome.ok and self._finished_in_catalog(state.cell.key):
            state.status, state.message = "finished", ""
            state.seconds = time.time() - (state.started or time.time())
        elif outcome.ok:
            state.status = "failed"
            state.message = f"the worker ended without a finished run {state.cell.key} in {self.store.catalog}"
        elif outcome.died and state.attempts <= self.retries:
            state.status, state.message = "waiting", f"worker died ({outcome.message}); starting it again"
        else:
            state.status, state.message = "failed", outcome.message

    def _finished_in_catalog(self, key: str) -> bool:
        run = self.store.get(key)
        return run is not None and run.finished
