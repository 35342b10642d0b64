"""``facelab audit [NAME ...] [-p KEY VALUE ...] [-f params.yaml]``: execute audit notebooks
with papermill into ``results/<run-id>/``."""

from __future__ import annotations

import re
from pathlib import Path

import typer
import yaml

USAGE = ("usage: facelab audit [NAME ...] [-p KEY VALUE ...] [-f params.yaml] [--force] "
         "[--results DIR] [--stop-on-failure]")


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _yaml_value(text: str):
    """A ``-p`` value read as YAML; ``1e-3`` is a number (PyYAML's YAML 1.1 reads a
    float without a dot before the exponent as a string)."""
    value = yaml.safe_load(text)
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    return value


def parse_audit_args(args: list[str]) -> tuple[list[str], dict, Path | None, bool, bool]:
    """Split ``facelab audit`` arguments into names, parameters (``-p`` values are YAML:
    ``-p limit 200``, ``-p target_fmr 1e-4``, ``-p detectors '[yunet, haar]'``), the
    results root, whether to stop at the first failure and whether to run audits that are
    up to date.

    ``-f`` files are read in order (later ones win), their relative paths made absolute
    against the file's folder (:func:`facelab.report.runner.absolute_paths`); ``-p``
    values win over the files. A ``-p`` value written like ``1e-3`` is a float (PyYAML
    reads it as a string).

    Parameters
    ----------
    args : list of str
        The arguments after ``facelab audit``.

    Returns
    -------
    names : list of str
        Audit names, in order.
    parameters : dict
        ``{name: value}`` notebook parameters.
    results : pathlib.Path or None
        ``--results`` folder.
    stop : bool
        ``--stop-on-failure``.
    force : bool
        ``--force``.

    Raises
    ------
    typer.BadParameter
        An unknown option, an option without its value, a ``-p`` value that is not YAML,
        or a parameters file that cannot be read, is not YAML or is not a mapping.
    """
    names, params, results, stop, force = [], {}, None, False, False
    files: list[Path] = []
    it = iter(args)
    for arg in it:
        try:
            if arg in ("-p", "--parameter"):
                key, value = next(it), next(it)
                try:
                    params[key] = _yaml_value(value)
                except yaml.YAMLError as exc:
                    raise typer.BadParameter(f"-p {key}: not a YAML value ({exc})") from None
            elif arg in ("-f", "--parameters-file"):
                files.append(Path(next(it)))
            elif arg == "--results":
                results = Path(next(it))
            elif arg == "--stop-on-failure":
                stop = True
            elif arg == "--force":
                force = True
            elif arg.startswith("-"):
                raise typer.BadParameter(f"unknown option {arg}. {USAGE}")
            else:
                names.append(arg)
        except StopIteration:
            raise typer.BadParameter(f"{arg} needs a value. {USAGE}") from None
    from facelab.report.runner import absolute_paths

    merged: dict = {}
    for f in files:
        try:
            values = yaml.safe_load(f.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise typer.BadParameter(f"parameters file {f}: {exc}") from None
        if not isinstance(values, dict):
            raise typer.BadParameter(f"parameters file {f}: expected a mapping of parameter "
                                     f"names to values, got {type(values).__name__}")
        # relative paths in the file (CSV manifests, model cards) start from its folder
        merged.update(absolute_paths(values, f.resolve().parent))
    merged.update(params)
    return names, merged, results, stop, force


def audit(ctx: typer.Context) -> None:
    """Run the audit notebooks (all when no NAME is given); each lands in its own
    results/<run-id>/ folder with the executed notebook, HTML, metrics.json, figures,
    provenance.json and model_card.md.

    \b
    facelab audit NAME... -p KEY VALUE... -f params.yaml --results DIR --stop-on-failure
    NAME: a number (02), a full stem or a unique part of it (verification).
    -p KEY VALUE: a notebook parameter, VALUE read as YAML
      (-p limit 200, -p target_fmr 1e-2, -p datasets '{csv: my.csv}').
    -f FILE: parameters from a YAML file (paths relative to the file).
    --results DIR: where run folders go ($FACELAB_RESULTS, else ./results).
    --stop-on-failure: stop at the first failed audit.
    --force: run every audit, also those whose last run is up to date.

    An audit whose last ok run had the same notebook, parameters, facelab code,
    installed packages, data files and machine is not run again ("up to date",
    with that run's folder).

    Each notebook's parameters cell lists its parameters and their defaults.
    \f

    The text above is the command's ``--help``; Typer hides what follows the form feed.
    Prints :func:`facelab.report.datastatus.status_lines`, runs
    :func:`facelab.report.runner.run_audits` and prints one status line per audit.

    Parameters
    ----------
    ctx : typer.Context
        Its ``args`` are the command's arguments, parsed by :func:`parse_audit_args`.

    Raises
    ------
    typer.BadParameter
        When the arguments are malformed or an audit name matches no notebook or several.
    typer.Exit
        Always, at the end: code 1 when an audit failed or was skipped because an audit
        it needs failed (status other than ``ok``, ``needs data`` and ``up to date``),
        else 0. With ``--stop-on-failure`` the rows up to the failed audit are printed,
        then the line saying where it stopped.
    """
    from facelab.core.config import results_dir
    from facelab.report.audits import check_parameters, resolve_audits
    from facelab.report.datastatus import NEEDS_DATA, status_lines
    from facelab.report.runner import UP_TO_DATE, run_audits

    names, parameters, results, stop, force = parse_audit_args(list(ctx.args))
    try:  # a mistyped audit or parameter name, a value of the wrong kind: one line
        check_parameters(resolve_audits(names or None), parameters)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for line in status_lines():  # which datasets are here and which audits they feed
        typer.echo(line)
    stopped = None
    try:
        rows = run_audits(names or None, parameters=parameters, results_root=results,
                          keep_going=not stop, force=force)
    except Exception as exc:  # --stop-on-failure: the rows so far, then one line
        if not hasattr(exc, "facelab_rows"):
            raise
        rows, stopped = exc.facelab_rows, exc
    failed = needs = 0
    for row in rows:
        typer.echo(f"{row['status']:10s} {row['audit']:32s} {row['seconds']:7.1f}s  "
                   f"{row.get('run_dir') or ''}")
        if row.get("error"):
            typer.echo(f"{'':10s} {row['error']}")
        failed += row["status"] not in ("ok", NEEDS_DATA, UP_TO_DATE)
        needs += row["status"] == NEEDS_DATA
    if not rows:
        typer.echo("no audit notebooks found in notebooks/")
    fresh = sum(row["status"] == UP_TO_DATE for row in rows)
    if fresh:
        typer.echo(f"{fresh} audit(s) up to date: nothing they depend on changed since the run "
                   "folder shown (`--force` runs them again).")
    if needs:
        typer.echo(f"{needs} audit(s) need data they could not find: each run folder's "
                   "report says what is missing and how to get it (`facelab data status`).")
    if stopped is not None:
        typer.echo("stopped at the first failure (--stop-on-failure): the audits after it "
                   "were not started")
    typer.echo(f"all runs: {(results or results_dir()) / 'index.html'}")
    raise typer.Exit(code=1 if failed or stopped is not None else 0)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``facelab`` app (called by
    :mod:`facelab.cli` for every module of the package).

    Parameters
    ----------
    app : typer.Typer
        The ``facelab`` application.
    """
    app.command("audit", context_settings={"allow_extra_args": True,
                                           "ignore_unknown_options": True})(audit)
