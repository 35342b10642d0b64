"""Errors of the user's input, shown as one line and an exit code, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer


@contextmanager
def user_errors(*errors: type[BaseException], code: int = 2) -> Iterator[None]:
    """Turn the given exceptions, raised inside the block, into ``error: <message>`` on
    stderr and exit code ``code``.

    Used by the commands that load models and images named on the command line
    (``analyze``, ``verify``, ``search``), so an unknown ``--model`` or an unreadable
    image reads the same everywhere.

    Parameters
    ----------
    *errors : type of BaseException
        Exception classes that mean "the user's input is wrong" (e.g.
        :class:`facelab.models.registry.ModelError`).
    code : int
        Exit code when one is caught.

    Yields
    ------
    None
        Runs the block.

    Raises
    ------
    typer.Exit
        With ``code`` when the block raises one of ``errors``.
    """
    try:
        yield
    except errors as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code) from exc
