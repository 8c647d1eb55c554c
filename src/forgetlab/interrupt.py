"""Stopping a run cleanly when it is told to: SIGTERM (a cluster scheduler's pre-emption) and Ctrl-C.

Inside :func:`handle_sigterm`, SIGTERM raises :class:`Interrupted` (a ``KeyboardInterrupt``, so no
``except Exception`` swallows it). Inside :func:`deferred` — one iteration of a training loop — it is
only noted, and the loop calls :func:`pending` at the end of the iteration, saves a checkpoint and
raises, so that the run resumes from exactly that step.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; its finished work is kept and running it again resumes it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


class _State:
    deferring = 0
    requested: int | None = None


def _on_sigterm(signum: int, frame: object) -> None:
    if _State.deferring and _State.requested is None:
        _State.requested = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def handle_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`Interrupted` for the duration (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _State.requested = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A region a SIGTERM must not cut in half: the signal is only noted (see :func:`pending`)."""
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1


def pending() -> int | None:
    """The signal number noted during a deferred region (and forget it), or None."""
    signum, _State.requested = _State.requested, None
    return signum
