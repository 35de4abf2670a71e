"""Stopping a run by signal: `Interrupted` (what vae-run turns into one line and exit status 128 + signal) and
`stop_signals_to`, which gives SIGINT and SIGTERM to a handler for the length of a block (the training loop's,
which checkpoints first; the final evaluation's, which says how to finish)."""

from __future__ import annotations

import contextlib
import signal
import threading


class Interrupted(Exception):
    """SIGINT/SIGTERM stopped the run; the message says what was kept and the command that goes on."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


@contextlib.contextmanager
def stop_signals_to(handler):
    """SIGINT and SIGTERM go to `handler` inside the block, and back to what they were after it (where signals can
    be handled at all: in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
