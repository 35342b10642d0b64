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
    bootstrap intervals, failures to acquire counted, next to the published figure."""
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
    app.add_typer(eval_app, name="eval")
