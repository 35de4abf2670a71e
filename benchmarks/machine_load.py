"""A loaded machine for benchmarks: `with busy(n):` runs n busy Python processes (one spinning loop each, like
another user's job on a shared core) and kills them on the way out."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager


@contextmanager
def busy(n: int):
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()
