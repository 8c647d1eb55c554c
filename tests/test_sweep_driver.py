"""The scheduler on a scripted backend: needs before the cells that need them, never more cells at once than the
backend takes, finished cells skipped, dead workers' cells started again, failures blocking what needs them."""

from __future__ import annotations

from pathlib import Path

from forgetlab.store import RunStore
from forgetlab.sweep import prepare_sweep
from forgetlab.sweep.backends import Backend, Job, Outcome
from forgetlab.sweep.driver import Scheduler

GOLDEN_CROSS_TASK = "tests/golden/recipes/cross_task.yaml"


def finish_in_catalog(store: RunStore, cell) -> None:
    """What a worker leaves behind: the cell's run, finished, in the catalog."""
    name, digits = cell.key.rsplit("-", 1)
    run = store.open(cell.config, digits + "0" * 52, {"config": {}})
    store.finish(run, {"run": cell.key})
    run.release()


class ScriptedJob(Job):
    def __init__(self, cell, backend, outcome: Outcome) -> None:
        super().__init__(cell)
        self.backend, self.result, self.polls = backend, outcome, 0

    def done(self) -> bool:
        self.polls += 1
        if self.polls < 2:
            return False
        if self.result.ok:
            finish_in_catalog(self.backend.store, self.cell)
        return True

    def outcome(self) -> Outcome:
        return self.result


class ScriptedBackend(Backend):
    """Each cell ends the way ``script`` says (a list of outcomes per cell label: one per attempt), else ok."""

    def __init__(self, store: RunStore, capacity: int, script: dict[str, list[Outcome]] | None = None) -> None:
        self.store, self.slots, self.script = store, capacity, script or {}
        self.started: list[str] = []
        self.running: set[str] = set()
        self.most_at_once = 0

    @classmethod
    def from_spec(cls, spec, folder, runs_dir, threads):
        raise NotImplementedError  # built by the tests directly

    def capacity(self) -> int:
        return self.slots

    def submit(self, cells):
        jobs = []
        for cell in cells:
            self.started.append(cell.label)
            self.running.add(cell.key)
            self.most_at_once = max(self.most_at_once, len(self.running))
            planned = self.script.get(cell.label, [])
            jobs.append(ScriptedJob(cell, self, planned.pop(0) if planned else Outcome(True)))
        return jobs

    def ended(self, job: Job) -> None:
        self.running.discard(job.cell.key)


COMPARE, ARITH = "Study A: synth_compare", "Study A: synth_arith"  # the golden cross-task recipe's per-task runs


def run(plan, store, backend, retries=1):
    return Scheduler(plan, store, backend, retries, poll_seconds=0).run()


def test_needs_run_first_and_capacity_is_never_exceeded(tmp_path: Path):
    plan, store = prepare_sweep(GOLDEN_CROSS_TASK), RunStore(tmp_path)
    backend = ScriptedBackend(store, capacity=2)
    state = run(plan, store, backend)
    assert backend.started[:2] == [COMPARE, ARITH] and backend.started[-1] == "base"
    assert sorted(backend.started[2:4]) == ["forget synth_arith, score synth_compare", "forget synth_compare, score synth_arith"]
    assert backend.most_at_once == 2  # the two Study A runs, then the two forgetting cells, ran together, never more
    assert state.count("finished") == 5


def test_finished_cells_are_not_started_again(tmp_path: Path):
    plan, store = prepare_sweep(GOLDEN_CROSS_TASK), RunStore(tmp_path)
    finish_in_catalog(store, plan.cells[0])
    backend = ScriptedBackend(store, capacity=4)
    run(plan, store, backend)
    assert COMPARE not in backend.started and len(backend.started) == 4
    again = ScriptedBackend(store, capacity=4)
    assert run(plan, store, again).count("finished") == 5 and again.started == []


def test_a_dead_worker_is_retried_and_an_error_blocks_what_needs_the_cell(tmp_path: Path):
    plan, store = prepare_sweep(GOLDEN_CROSS_TASK), RunStore(tmp_path)
    died = Outcome(False, "killed by SIGKILL", died=True)
    backend = ScriptedBackend(store, 4, {COMPARE: [died], "forget synth_arith, score synth_compare": [Outcome(False, "ValueError: bad")]})
    state = run(plan, store, backend, retries=1)
    assert backend.started.count(COMPARE) == 2  # died once, started again, finished
    failed = [s for s in state.cells.values() if s.status == "failed"]
    assert [s.message for s in failed] == ["ValueError: bad"] and failed[0].attempts == 1  # an error is not retried
    blocked = [s for s in state.cells.values() if s.status == "blocked"]
    assert [s.cell.label for s in blocked] == ["base"] and "did not finish" in blocked[0].message
    assert state.count("finished") == 3  # both Study A runs and the other cell


def test_a_worker_that_dies_more_often_than_the_retries_fails_the_cell(tmp_path: Path):
    plan, store = prepare_sweep(GOLDEN_CROSS_TASK), RunStore(tmp_path)
    died = Outcome(False, "killed by SIGKILL", died=True)
    backend = ScriptedBackend(store, 4, {COMPARE: [died, died]})
    state = run(plan, store, backend, retries=1)
    assert backend.started == [COMPARE, ARITH, COMPARE]
    assert state.count("failed") == 1 and state.count("blocked") == 3 and state.count("finished") == 1


def test_a_worker_that_ends_well_without_its_run_is_a_failure(tmp_path: Path):
    plan, store = prepare_sweep(GOLDEN_CROSS_TASK), RunStore(tmp_path)

    class Forgetful(ScriptedBackend):
        def submit(self, cells):
            jobs = super().submit(cells)
            for job in jobs:
                job.done = lambda: True  # ends "ok" without finishing its run in the catalog
            return jobs

    state = run(plan, store, Forgetful(store, 4))
    study_a = state.cells[plan.cells[0].key]
    assert study_a.status == "failed" and "without a finished run" in study_a.message
