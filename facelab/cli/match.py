"""``facelab verify`` (1:1) and ``facelab search`` (1:N) commands.

Gallery folder layout for ``facelab search --gallery DIR``:

* ``DIR/<subject>/*.jpg``: one subfolder per subject, every image in it a template; and/or
* ``DIR/<subject>.jpg``: images directly in ``DIR``, the file stem is the subject id.

``--gallery`` may also be a ``.npz`` file written by :meth:`facelab.Gallery.save` (or by
``--save-gallery``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}


def gallery_items(folder: Path) -> tuple[list[Path], list[str]]:
    """Image files and subject ids of a gallery folder (layout in the module doc)."""
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


def _reference_scores(path: Path | None) -> np.ndarray | None:
    if path is None:
        return None
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False).astype(float).ravel()
    return np.loadtxt(path, delimiter=",", ndmin=1, comments="#").astype(float).ravel()


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
    """Compare the largest face of two images (1:1 verification)."""
    from facelab.core.io import ImageError
    from facelab.match.verification import verify

    try:
        v = verify(str(image_a), str(image_b), model=model, detector=detector,
                   threshold=threshold, target_fmr=target_fmr,
                   reference=_reference_scores(reference))
    except (ImageError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
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
    """Search probe images against a gallery (1:N identification candidate lists)."""
    import pandas as pd

    from facelab.match.gallery import Gallery

    if gallery.is_file() and gallery.suffix == ".npz":
        g = Gallery.load(gallery, index=index, detector=detector)
    elif gallery.is_dir():
        paths, subjects = gallery_items(gallery)
        if not paths:
            typer.echo(f"error: no images in gallery folder {gallery}", err=True)
            raise typer.Exit(2)
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
    try:
        res = g.search([str(p) for p in probes], k=k, threshold=threshold,
                       target_fmr=target_fmr, reference=_reference_scores(reference))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
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
    app.command("verify")(verify_cmd)
    app.command("search")(search_cmd)
