"""Progress bars that suit where the code runs, and third-party noise silenced at its source.

facelab's loops report progress through :func:`tqdm` here, never through ``tqdm.auto``
directly, so that one long loop is

- one live widget in JupyterLab / Jupyter Notebook / VS Code (``tqdm.notebook``; needs
  ``ipywidgets``),
- a normal bar in a terminal,
- **one final line** (``desc: 4,000/4,000 img in 00:35``) on stdout when nobody watches:
  a notebook executed headless by papermill, nbval or nbconvert, CI logs, a pipe. A
  headless kernel cannot draw a widget, and a text bar there turns into one stderr line
  per update (thousands of red lines in the exported report).

``FACELAB_PROGRESS`` (``widget``, ``bar``, ``final`` or ``off``) overrides the choice;
:func:`facelab.report.runner.run_audit` sets ``final`` for the notebooks it executes.

:func:`native_stderr_filtered` drops known, information-free lines that native libraries
write straight to file descriptor 2 (e.g. ai-edge-litert's ``INFO: Created TensorFlow Lite
XNNPACK delegate for CPU.``), only around the call that causes them; anything else written
there is passed on unchanged, so a real warning still shows.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence

from tqdm.std import tqdm as _std_tqdm

__all__ = ["tqdm", "progress_mode", "native_stderr_filtered", "MODES", "ENV_VAR",
           "NATIVE_NOISE"]

ENV_VAR = "FACELAB_PROGRESS"
MODES = ("widget", "bar", "final", "off")
#: Environment variables set by front ends that draw ipywidgets: jupyter_server sets
#: ``JPY_SESSION_NAME`` for kernels it starts (JupyterLab, Notebook); VS Code sets
#: ``VSCODE_PID``. papermill / nbval / nbconvert start kernels without them.
WIDGET_FRONTEND_VARS = ("JPY_SESSION_NAME", "VSCODE_PID")

#: Lines native code prints to fd 2 that tell a reader nothing (matched whole, stripped).
NATIVE_NOISE: tuple[re.Pattern, ...] = (
    # ai-edge-litert / TensorFlow Lite, once per process when an interpreter is built;
    # its minimal logger has no Python-visible level (TF_CPP_MIN_LOG_LEVEL is ignored)
    re.compile(r"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.?"),
)


def _in_kernel() -> bool:
    """True inside an IPython kernel (a notebook), False in a terminal or plain Python."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _has_ipywidgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def progress_mode() -> str:
    """How progress is shown here: ``widget``, ``bar``, ``final`` or ``off``.

    ``$FACELAB_PROGRESS`` wins when set to one of these. Otherwise: ``widget`` in a kernel
    started by a front end that draws widgets (and ``ipywidgets`` importable), ``final`` in
    any other kernel (papermill, nbval, nbconvert), ``bar`` when stderr is a terminal, and
    ``final`` otherwise (CI logs, pipes).

    Returns
    -------
    str
        One of :data:`MODES`.
    """
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in MODES:
        return value
    if _in_kernel():
        if any(os.environ.get(v) for v in WIDGET_FRONTEND_VARS) and _has_ipywidgets():
            return "widget"
        return "final"
    isatty = getattr(sys.stderr, "isatty", None)
    return "bar" if isatty is not None and isatty() else "final"


class _Sink:
    """A file-like object that drops what it is given (the bar is drawn nowhere)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class _FinalLine(_std_tqdm):
    """A tqdm that draws nothing while running and prints one summary line on close."""

    def __init__(self, *args, **kwargs):
        kwargs["file"] = _Sink()
        super().__init__(*args, **kwargs)

    def close(self) -> None:
        if self.disable:
            return
        n, total, unit = self.n, self.total, self.unit
        elapsed = self.format_interval(self._time() - self.start_t)
        desc = f"{self.desc}: " if self.desc else ""
        count = f"{n:,}/{total:,}" if total is not None else f"{n:,}"
        post = f" ({self.postfix})" if self.postfix else ""  # e.g. the last losses
        super().close()
        print(f"{desc}{count} {unit} in {elapsed}{post}", file=sys.stdout, flush=True)


def tqdm(iterable=None, *args, **kwargs):
    """A progress bar shown as suits the place (see :func:`progress_mode`).

    Parameters
    ----------
    iterable : iterable, optional
        What to iterate over, as for :class:`tqdm.tqdm`.
    *args, **kwargs
        Passed to :class:`tqdm.tqdm` (``desc``, ``total``, ``unit``, ...); ``disable=True``
        still turns the bar off entirely.

    Returns
    -------
    tqdm.tqdm
        A notebook widget, a terminal bar, a bar that prints one summary line when closed,
        or a disabled bar.
    """
    mode = progress_mode()
    if kwargs.get("disable") or mode == "off":
        kwargs["disable"] = True
        return _std_tqdm(iterable, *args, **kwargs)
    if mode == "widget":
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(iterable, *args, **kwargs)
    if mode == "bar":
        return _std_tqdm(iterable, *args, **kwargs)
    return _FinalLine(iterable, *args, **kwargs)


@contextlib.contextmanager
def native_stderr_filtered(patterns: Sequence[re.Pattern] = NATIVE_NOISE) -> Iterator[None]:
    """Drop known native noise from file descriptor 2 inside the block.

    Lines written to fd 2 (by C/C++ code as well as Python) that fully match one of
    ``patterns`` are dropped; every other line is written to ``sys.stderr`` when the block
    ends, so real warnings and errors still show.

    Use it around the one call that makes the noise (a model's constructor), not around a
    whole run. Falls back to doing nothing where fd 2 cannot be redirected.

    Parameters
    ----------
    patterns : sequence of re.Pattern
        Compiled patterns matched against each stripped line (default
        :data:`NATIVE_NOISE`).

    Yields
    ------
    None
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines()
                    if line.strip() and not any(p.fullmatch(line.strip()) for p in patterns)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
