"""The ``facelab`` command. Each group of commands lives in ``facelab/cli/``."""

from __future__ import annotations

import importlib
import pkgutil

import typer

app = typer.Typer(
    help="facelab: audit face detection, matching, expression and attribute models offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _load_commands() -> None:
    import facelab.cli as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{pkg.__name__}.{info.name}")
            module.register(app)


_load_commands()


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":
    main()
