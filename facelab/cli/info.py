"""``facelab info``: versions, registered models, data root and the datasets found there."""

from __future__ import annotations

import typer

from facelab.core.provenance import package_versions


def info() -> None:
    """Print versions, every registered model with its weights and licence, and the data."""
    from facelab.core.config import DataRootError, data_root
    from facelab.models.registry import list_models

    typer.echo("== versions")
    for k, v in package_versions().items():
        typer.echo(f"  {k:24s} {v}")
    typer.echo("\n== models (weights come from installed packages; nothing is downloaded)")
    for row in list_models().itertuples():
        star = "*" if row.default else " "
        typer.echo(f" {star}{row.kind:10s} {row.name:18s} {row.package}: {row.weights}")
        typer.echo(f"  {'':10s} {'':18s} licence: {row.licence}")
    typer.echo("  (* = default of its kind)")
    from facelab.models.registry import ENTRY_POINT_GROUP, plugins

    found = plugins()
    typer.echo(f"\n== model plugins (entry points {ENTRY_POINT_GROUP!r})")
    if found.empty:
        typer.echo("  none installed")
    for row in found.itertuples():
        what = f"error: {row.error}" if row.error else f"models: {row.models or '(none)'}"
        typer.echo(f"  {row.entry_point:18s} {row.distribution:24s} {what}")
    typer.echo("\n== data")
    try:
        root = data_root()
    except DataRootError as exc:
        typer.echo(f"  {exc}")
        return
    typer.echo(f"  data root: {root}")
    from facelab.data.datasets import find_datasets

    found = find_datasets(root)
    if found.empty:
        typer.echo("  no supported dataset found there (see data/README.md)")
    for row in found.itertuples():
        typer.echo(f"  {row.dataset:16s} {row.images:7d} images  {row.path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``facelab`` app (called by
    :mod:`facelab.cli` for every module of the package).

    Parameters
    ----------
    app : typer.Typer
        The ``facelab`` application.
    """
    app.command("info")(info)
