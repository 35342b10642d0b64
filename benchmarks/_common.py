"""What every benchmark shares: the machine's load, a best-of timer and the load lines of
a result file (issue 16: a ratio is reported with the load it was taken at)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable


def uptime() -> str:
    """``uptime`` as printed by the command (load averages over 1, 5, 15 minutes)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """The shortest wall time (seconds) of ``repeat`` calls of ``fn``."""
    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def load_lines(up_start: str, up_end: str) -> list[str]:
    """The Markdown lines giving the load at the start and the end of a benchmark."""
    return [f"`uptime` at start: `{up_start}`", "", f"`uptime` at end: `{up_end}`", ""]
