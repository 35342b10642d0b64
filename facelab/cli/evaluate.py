"""``facelab eval``: standard benchmark protocols (``facelab eval lfw --model sface``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

eval_app = typer.Typer(help="Standard benchmark protocols on the shared data.",
                       no_args_is_help=True)


@eval_app.command("lfw")
def lfw_cmd(
    model: str = typer.Option("sface", "--model", "-m",
                              help="Embedder (facelab.list_models('embedder'))."),
    detector: str = typer.Option("yunet", "--detector", help="Face detector."),
    root: Path | None = typer.Option(None, "--root", help="LFW folder or data root "
                                     "(default: $FACELAB_DATA/lfw)."),
    pairs_file: str = typer.Option("pairs.txt", "--pairs", help="View 2 pairs file."),
    failures: str = typer.Option("error", "--failures",
                                 help="Pairs with an image without a face: 'error' (count "
                                      "as wrong) or 'exclude'."),
    target_fmr: float = typer.Option(1e-3, "--target-fmr", help="FMR of the TAR point."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
    out: Path | None = typer.Option(None, "--out", help="Also write the JSON here."),
) -> None:
    """The LFW View 2 protocol: 10-fold accuracy (threshold chosen on 9 folds, applied to
    the 10th; mean and std), AUC and TAR at a target FMR on all 6,000 pairs with subject
    bootstrap intervals, failures to acquire counted, next to the published figure.
    \f

    The text above is the command's ``--help``; Typer hides what follows the form feed.
    Protocol: Huang et al. 2007, "Labeled Faces in the Wild", View 2 (10 folds of 300
    same and 300 different pairs, ``pairs.txt``); computed by
    :func:`facelab.studies.evaluation.lfw_view2`.

    Parameters
    ----------
    model : str
        ``--model``: registered embedder.
    detector : str
        ``--detector``: face detector.
    root : pathlib.Path, optional
        ``--root``: LFW folder or data root; ``$FACELAB_DATA/lfw`` when omitted.
    pairs_file : str
        ``--pairs``: the View 2 pairs file, in the LFW folder.
    failures : {"error", "exclude"}
        ``--failures``: a pair with an image without a face counts as a wrong decision,
        or is left out (and counted).
    target_fmr : float
        ``--target-fmr``: FMR of the reported TAR point.
    n_boot : int
        ``--n-boot``: bootstrap resamples of the intervals.
    seed : int
        ``--seed``: seed of the bootstrap.
    as_json : bool
        ``--json``: print the summary as JSON (and no progress bar) instead of text.
    out : pathlib.Path, optional
        ``--out``: also write the JSON summary here.

    Raises
    ------
    typer.BadParameter
        When ``--failures`` is not one of the policies.
    """
    from facelab.studies.evaluation import FAILURE_POLICIES, lfw_view2

    if failures not in FAILURE_POLICIES:
        raise typer.BadParameter(f"--failures must be one of {FAILURE_POLICIES}")
    result = lfw_view2(model, detector=detector, root=root, pairs_file=pairs_file,
                       failures=failures, target_fmr=target_fmr, n_boot=n_boot, seed=seed,
                       progress=not as_json)
    summary = result.summary()
    if out is not None:
        out.write_text(json.dumps(summary, indent=2))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        for line in result.lines():
            typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``facelab`` app (called by
    :mod:`facelab.cli` for every module of the package).

    Parameters
    ----------
    app : typer.Typer
        The ``facelab`` application.
    """
    app.add_typer(eval_app, name="eval")
