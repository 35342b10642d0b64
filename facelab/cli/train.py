"""``facelab train expression``: train a timm architecture from scratch on expression data."""

from __future__ import annotations

from typing import Annotated

import typer

from facelab.train.expression import DEFAULT_BACKBONE, TrainConfig

_DEFAULTS = TrainConfig()


def expression(
    backbone: Annotated[str, typer.Option(help="timm architecture, trained from scratch")]
    = DEFAULT_BACKBONE,
    data: Annotated[str, typer.Option(help="dataset(s), comma-separated, e.g. fer2013,ckplus48")]
    = ",".join(_DEFAULTS.data),
    epochs: Annotated[int, typer.Option(help="maximum epochs")] = _DEFAULTS.epochs,
    batch_size: Annotated[int, typer.Option(help="images per step")] = _DEFAULTS.batch_size,
    lr: Annotated[float, typer.Option(help="peak learning rate (one-cycle, AdamW)")]
    = _DEFAULTS.lr,
    seed: Annotated[int, typer.Option(help="seed of split, initialisation, data order")]
    = _DEFAULTS.seed,
    img_size: Annotated[int, typer.Option(help="square grey input side")] = _DEFAULTS.img_size,
    patience: Annotated[int, typer.Option(help="early stop after this many epochs without a "
                                               "lower validation loss")] = _DEFAULTS.patience,
    out: Annotated[str | None, typer.Option(help="model name (file results/models/NAME."
                                                 "safetensors)")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many images per dataset "
                                                   "(quick runs)")] = None,
    root: Annotated[str | None, typer.Option(help="data root (default $FACELAB_DATA)")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's; "
                                                     "1 on a busy shared machine)")] = None,
) -> None:
    """Train an expression classifier from scratch; save weights + metadata as safetensors.

    The model then loads with ``create_model(NAME)`` like any registered model.
    \f

    The text above is the command's ``--help``; Typer hides what follows the form feed.
    Runs :func:`facelab.train.expression.train_expression` with a
    :class:`facelab.train.expression.TrainConfig` built from the options (their defaults
    are that class's) and prints the accuracy on the validation and held-out test
    splits.

    Parameters
    ----------
    backbone : str
        timm architecture, trained from scratch (no pretrained weights).
    data : str
        Dataset names, comma-separated.
    epochs : int
        Maximum epochs.
    batch_size : int
        Images per optimiser step.
    lr : float
        Peak learning rate of the one-cycle schedule (AdamW).
    seed : int
        Seed of the split, the initialisation and the data order.
    img_size : int
        Side of the square greyscale input, in pixels.
    patience : int
        Early stop after this many epochs without a lower validation loss.
    out : str, optional
        Model name (file ``results/models/NAME.safetensors``); a default name when
        omitted.
    limit : int, optional
        At most this many images per dataset (quick runs).
    root : str, optional
        Data root; ``$FACELAB_DATA`` when omitted.
    threads : int, optional
        Torch CPU threads; torch's default when omitted.
    """
    from facelab.train.expression import train_expression

    config = TrainConfig(backbone=backbone, data=tuple(data.split(",")), epochs=epochs,
                         batch_size=batch_size, lr=lr, seed=seed, img_size=img_size,
                         patience=patience, name=out, limit=limit,
                         threads=threads)
    result = train_expression(config, root=root)
    m = result.metrics
    lo, hi = m["test_accuracy_ci"]
    typer.echo(f"saved {result.path} ({result.name})")
    typer.echo(f"  {m['epochs_run']} epochs (best {m['best_epoch']}) in {result.seconds:.0f} s "
               f"wall, {m['cpu_seconds']:.0f} s CPU, {m['threads']} thread(s)")
    typer.echo(f"  validation accuracy {m['val_accuracy']:.3f} (n={m['val_n']})")
    typer.echo(f"  held-out test accuracy {m['test_accuracy']:.3f} (n={m['test_n']}, "
               f"95% CI {lo:.3f}-{hi:.3f})")
    typer.echo("  test recall: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                             m["test_recall"].items()))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``facelab`` app (called by
    :mod:`facelab.cli` for every module of the package).

    Parameters
    ----------
    app : typer.Typer
        The ``facelab`` application.
    """
    train_app = typer.Typer(help="Train facelab's own models (from scratch, offline).",
                            no_args_is_help=True)
    train_app.command("expression")(expression)
    app.add_typer(train_app, name="train")
