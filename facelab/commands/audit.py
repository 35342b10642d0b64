"""``facelab audit``: execute audit notebooks with papermill into results/<run-id>/."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml


def audit(
    names: list[str] = typer.Argument(None, help="Audits to run (e.g. 02 or verification); "
                                               "all when omitted."),
    param: list[tuple[str, str]] = typer.Option(
        None, "-p", "--parameter", help="Notebook parameter: -p NAME VALUE (YAML-parsed)."),
    params_file: Path = typer.Option(None, "-f", "--parameters-file",
                                     help="YAML file of parameters."),
    results: Path = typer.Option(None, "--results", help="Results root (default results/)."),
    keep_going: bool = typer.Option(True, help="Run the remaining audits after a failure."),
) -> None:
    """Run the audit notebooks; each lands in its own results/<run-id>/ folder."""
    from facelab.audit import run_audits

    parameters: dict = {}
    if params_file:
        parameters.update(yaml.safe_load(params_file.read_text()) or {})
    for key, value in param or []:
        parameters[key] = yaml.safe_load(value)
    rows = run_audits(names or None, parameters=parameters, results_root=results,
                      keep_going=keep_going)
    failed = 0
    for row in rows:
        where = row.get("run_dir") or row.get("error")
        typer.echo(f"{row['status']:7s} {row['audit']:32s} {row['seconds']:7.1f}s  {where}")
        failed += row["status"] != "ok"
    if not rows:
        typer.echo("no audit notebooks found in notebooks/")
    raise typer.Exit(code=1 if failed else 0)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
