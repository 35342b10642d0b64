"""``facelab verify`` (1:1) and ``facelab search`` (1:N) commands.

Gallery folder layout for ``facelab search --gallery DIR``:

* ``DIR/<subject>/*.jpg``: one subfolder per subject, every image in it a template; and/or
* ``DIR/<subject>.jpg``: images directly in ``DIR``, the file stem is the subject id.

``--gallery`` may also be a ``.npz`` file written by :meth:`facelab.Gallery.save` (or by
``--save-gallery``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import typer

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def gallery_items(folder: Path) -> tuple[list[Path], list[str]]:
    """Image files and subject ids of a gallery folder (layout in the module doc).

    Files whose ending is not in :data:`IMAGE_SUFFIXES` are skipped; a subfolder is
    searched at any depth and every image in it belongs to the subfolder's subject.

    Parameters
    ----------
    folder : pathlib.Path
        The gallery folder.

    Returns
    -------
    paths : list of pathlib.Path
        Image files, subfolders and files in name order.
    subjects : list of str
        Subject id of each path (subfolder name, or file stem).
    """
    paths, subjects = [], []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            for f in sorted(entry.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    paths.append(f)
                    subjects.append(entry.name)
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            paths.append(entry)
            subjects.append(entry.stem)
    return paths, subjects


def _reference_scores(path: Path | None, target_fmr: float | None) -> np.ndarray | None:
    """The ``--reference`` impostor scores, checked where they enter: a file that cannot
    be read, is not numbers, holds none, or holds a non-finite score is a
    :class:`typer.BadParameter` naming the file, and so is ``--target-fmr`` without
    ``--reference`` or ``--reference`` without ``--target-fmr`` (it would be ignored)."""
    if target_fmr is not None and path is None:
        raise typer.BadParameter("--target-fmr needs --reference FILE: impostor similarity "
                                 "scores (pairs of different people, same model) to place the "
                                 "threshold on", param_hint="--target-fmr")
    if path is None:
        return None
    if target_fmr is None:
        raise typer.BadParameter(f"{path}: the scores are only used with --target-fmr (the "
                                 "threshold at that FMR on them)", param_hint="--reference")
    try:
        if path.suffix == ".npy":
            scores = np.load(path, allow_pickle=False).astype(float).ravel()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # numpy warns (not raises) on an empty file
                scores = np.loadtxt(path, delimiter=",", ndmin=1,
                                    comments="#").astype(float).ravel()
    except (OSError, ValueError, UserWarning) as exc:
        raise typer.BadParameter(f"{path}: cannot be read as scores ({exc})",
                                 param_hint="--reference") from None
    if scores.size == 0:
        raise typer.BadParameter(f"{path}: holds no score", param_hint="--reference")
    bad = ~np.isfinite(scores)
    if bad.any():
        raise typer.BadParameter(f"{path}: {int(bad.sum())} score(s) are not finite numbers "
                                 f"(first at position {int(np.argmax(bad))})",
                                 param_hint="--reference")
    return scores


_REFERENCE_HELP = ("Impostor similarity scores (same model) for --target-fmr: a .npy file or a "
                   "text/CSV file with one score per line.")


def verify_cmd(
    image_a: Path = typer.Argument(..., help="First image."),
    image_b: Path = typer.Argument(..., help="Second image."),
    model: str = typer.Option("sface", help="Embedder: sface or dlib_resnet."),
    detector: str = typer.Option("yunet", help="Face detector (largest face is used)."),
    threshold: float | None = typer.Option(None, help="Raw similarity threshold."),
    target_fmr: float | None = typer.Option(None, help="Set the threshold for this FMR on "
                                                       "--reference impostor scores."),
    reference: Path | None = typer.Option(None, help=_REFERENCE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Compare the largest face of two images (1:1 verification).
    \f

    The text above is the command's ``--help``; Typer hides what follows the form feed.
    Runs :func:`facelab.match.verification.verify` and prints the decision, the
    similarity, the threshold and how it was set.

    Parameters
    ----------
    image_a, image_b : pathlib.Path
        The two images.
    model : str
        ``--model``: embedder.
    detector : str
        ``--detector``: face detector; the largest face of each image is compared.
    threshold : float, optional
        ``--threshold``: similarity threshold; the model's default when neither it nor
        ``--target-fmr`` is given.
    target_fmr : float, optional
        ``--target-fmr``: set the threshold at this FMR on the ``--reference`` scores.
    reference : pathlib.Path, optional
        ``--reference``: impostor similarity scores of the same model, a ``.npy`` file
        or a text/CSV file with one score per line (``#`` comments).
    as_json : bool
        ``--json``: print :meth:`facelab.match.verification.Verification.to_dict` as
        JSON.

    Raises
    ------
    typer.BadParameter
        When the ``--reference`` file cannot be read, is not numbers, holds no score or a
        non-finite one (exit code 2, the message names the file).
    typer.Exit
        Code 2 when an image cannot be read or has no face
        (:class:`facelab.core.io.ImageError`), ``--model`` or ``--detector`` is not
        registered (:class:`facelab.models.registry.ModelError`), or the verification
        rejects its inputs (``ValueError``: inconsistent threshold options, a target FMR
        the reference cannot resolve).
    """
    from facelab.cli._errors import user_errors
    from facelab.core.io import ImageError
    from facelab.match.verification import verify
    from facelab.models.registry import ModelError

    scores = _reference_scores(reference, target_fmr)
    with user_errors(ImageError, ModelError, ValueError):
        v = verify(str(image_a), str(image_b), model=model, detector=detector,
                   threshold=threshold, target_fmr=target_fmr, reference=scores)
    if as_json:
        typer.echo(json.dumps(v.to_dict(), indent=2))
        return
    typer.echo(f"{v.decision}: similarity {v.score:.4f} "
               f"{'>=' if v.same else '<'} threshold {v.threshold:.4f} ({v.model}, {v.metric})")
    typer.echo(f"threshold: {v.threshold_how}")
    typer.echo("A similarity is not a probability that the two faces are the same person.")


def search_cmd(
    probes: list[Path] = typer.Argument(..., help="Probe images."),
    gallery: Path = typer.Option(..., help="Gallery folder (subfolder per subject, or files "
                                           "named <subject>.jpg) or a saved .npz gallery."),
    k: int = typer.Option(5, help="Candidates (subjects) per probe."),
    model: str = typer.Option("sface", help="Embedder (ignored for a saved .npz gallery, which "
                                            "records its model)."),
    detector: str = typer.Option("yunet", help="Face detector (largest face is used)."),
    threshold: float | None = typer.Option(None, help="Raw similarity threshold."),
    target_fmr: float | None = typer.Option(None, help="Set the threshold for this FMR on "
                                                       "--reference impostor scores."),
    reference: Path | None = typer.Option(None, help=_REFERENCE_HELP),
    index: str = typer.Option("auto", help="exact, ivf, hnsw or auto."),
    save_gallery: Path | None = typer.Option(None, help="Also save the enrolled gallery "
                                                        "(.npz)."),
    csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
) -> None:
    """Search probe images against a gallery (1:N identification candidate lists).
    \f

    The text above is the command's ``--help``; Typer hides what follows the form feed.
    Enrols a gallery folder (:func:`gallery_items`, images without a usable face are
    listed as not enrolled) or loads a saved one, then prints
    :meth:`facelab.match.gallery.Gallery.search` candidates per probe and, on stderr,
    the threshold and how it was set.

    Parameters
    ----------
    probes : list of pathlib.Path
        Probe images.
    gallery : pathlib.Path
        ``--gallery``: gallery folder, or a ``.npz`` file of
        :meth:`facelab.match.gallery.Gallery.save`.
    k : int
        ``--k``: candidates (subjects) per probe.
    model : str
        ``--model``: embedder of a gallery folder (a saved gallery records its own).
    detector : str
        ``--detector``: face detector; the largest face of each image is used.
    threshold : float, optional
        ``--threshold``: similarity threshold.
    target_fmr : float, optional
        ``--target-fmr``: set the threshold at this FMR on the ``--reference`` scores.
    reference : pathlib.Path, optional
        ``--reference``: impostor similarity scores of the same model (``.npy``, or text
        with one score per line).
    index : {"auto", "exact", "ivf", "hnsw"}
        ``--index``: nearest-neighbour index of the gallery.
    save_gallery : pathlib.Path, optional
        ``--save-gallery``: also save the enrolled gallery (``.npz``).
    csv : bool
        ``--csv``: print CSV instead of a table.

    Raises
    ------
    typer.BadParameter
        When the ``--reference`` file cannot be read, is not numbers, holds no score or a
        non-finite one (exit code 2, the message names the file).
    typer.Exit
        Code 2 when the gallery folder holds no image, ``--gallery`` is neither a folder
        nor a ``.npz`` file, ``--model`` or ``--detector`` is not registered
        (:class:`facelab.models.registry.ModelError`), or the search rejects its inputs
        (``ValueError``).
    """
    import pandas as pd

    from facelab.cli._errors import user_errors
    from facelab.match.gallery import Gallery
    from facelab.models.registry import ModelError

    scores = _reference_scores(reference, target_fmr)
    if gallery.is_file() and gallery.suffix == ".npz":
        with user_errors(ModelError, ValueError):
            g = Gallery.load(gallery, index=index, detector=detector)
    elif gallery.is_dir():
        paths, subjects = gallery_items(gallery)
        if not paths:
            typer.echo(f"error: no images in gallery folder {gallery}", err=True)
            raise typer.Exit(2)
        with user_errors(ModelError, ValueError):
            g = Gallery(model, index=index, detector=detector)
            report = g.enrol([str(p) for p in paths], subjects)
        failed = report[~report["enrolled"]]
        typer.echo(f"enrolled {int(report['enrolled'].sum())}/{len(report)} images of "
                   f"{len(g.subjects)} subjects", err=True)
        for row in failed.itertuples():
            typer.echo(f"  not enrolled: {row.source}: {row.reason}", err=True)
    else:
        typer.echo(f"error: gallery {gallery} is neither a folder nor a .npz file", err=True)
        raise typer.Exit(2)
    if save_gallery is not None:
        typer.echo(f"saved gallery to {g.save(save_gallery)}", err=True)
    with user_errors(ModelError, ValueError):
        res = g.search([str(p) for p in probes], k=k, threshold=threshold,
                       target_fmr=target_fmr, reference=scores)
    cols = ["probe", "candidate_rank", "subject", "score", "above_threshold", "template_source",
            "error"]
    if csv:
        typer.echo(res[cols].to_csv(index=False), nl=False)
    else:
        with pd.option_context("display.width", 200, "display.max_colwidth", 60):
            typer.echo(res[cols].to_string(index=False))
    typer.echo(f"threshold {res['threshold'].iloc[0]:.4f}: {res.attrs['threshold_how']}",
               err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``facelab`` app (called by
    :mod:`facelab.cli` for every module of the package).

    Parameters
    ----------
    app : typer.Typer
        The ``facelab`` application.
    """
    app.command("verify")(verify_cmd)
    app.command("search")(search_cmd)
