"""``facelab analyze IMAGE``: every face in one image, as text or JSON, optionally drawn."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _none(value: str) -> str | None:
    return None if value.lower() in ("none", "") else value


def analyze_cmd(
    image: Path = typer.Argument(..., help="Image file to analyse."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON."),
    out: Path | None = typer.Option(None, "--out", help="Write an annotated image here."),
    detector: str = typer.Option("yunet", "--detector", help="Registered detector name."),
    expression: str = typer.Option("fer-mini-xception", "--expression",
                                   help="Expression model name, or 'none'."),
    attributes: str = typer.Option("age-gender", "--attributes",
                                   help="Attribute (gender/age) model name, or 'none'."),
    min_score: float | None = typer.Option(None, "--min-score",
                                           help="Drop faces scored below this."),
) -> None:
    """Detect faces and print box, confidence, pose, quality, emotions, gender and age.
    \f

    The text above is the command's ``--help``; Typer hides what follows the form feed.
    Emotions and gender describe the face's appearance, not inner state or identity (the
    note is printed after the faces). Runs :func:`facelab.extraction.analysis.analyze`.

    Parameters
    ----------
    image : pathlib.Path
        Image file (anything :func:`facelab.core.io.load_image` reads).
    as_json : bool
        ``--json``: print :meth:`facelab.extraction.analysis.FaceAnalysis.to_dict` of
        every face as a JSON list instead of text.
    out : pathlib.Path, optional
        ``--out``: also write the image with boxes, landmarks and captions
        (:func:`facelab.viz.draw.draw_analyses`); the format follows the file ending
        (OpenCV ``imwrite``), parent folders are created.
    detector : str
        ``--detector``: registered detector name.
    expression : str
        ``--expression``: expression model name, or ``"none"`` (or empty) to skip it.
    attributes : str
        ``--attributes``: gender/age model name, or ``"none"`` (or empty) to skip it.
    min_score : float, optional
        ``--min-score``: drop faces whose detection score (in [0, 1]) is below this.

    Raises
    ------
    typer.Exit
        Code 1 when the image cannot be read, a model cannot be loaded, or the annotated
        image cannot be written.
    """
    from facelab.cli._errors import user_errors
    from facelab.core.io import ImageError, load_image
    from facelab.core.types import APPEARANCE_NOTE
    from facelab.extraction.analysis import analyze
    from facelab.models.registry import ModelError

    with user_errors(ImageError, ModelError, code=1):
        rgb = load_image(image)
        records = analyze(rgb, detector=detector, expression=_none(expression),
                          attributes=_none(attributes), min_score=min_score)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records], indent=2))
    else:
        typer.echo(f"{image}: {len(records)} face(s)")
        for r in records:
            d = r.to_dict()
            typer.echo(f"  face {d['face_index']}: box {d['box']} confidence {d['confidence']}")
            if d["pose"]:
                typer.echo(f"    pose     yaw {d['pose']['yaw']} pitch {d['pose']['pitch']} "
                           f"roll {d['pose']['roll']} (degrees, from landmarks)")
            q = d["quality"]
            typer.echo(f"    quality  brightness {q['brightness']} sharpness {q['sharpness']}")
            if d["emotions"]:
                emo = ", ".join(f"{e['type']} {e['confidence']:.2f}" for e in d["emotions"])
                typer.echo(f"    emotions {emo}")
            if d["gender"]:
                typer.echo(f"    gender   {d['gender']['value']} "
                           f"({d['gender']['confidence']:.2f})")
            if d["age"]:
                a = d["age"]
                typer.echo(f"    age      {a['estimate']} (range {a['low']}-{a['high']})")
        if records:
            typer.echo(f"note: {APPEARANCE_NOTE}")
    if out is not None:
        import cv2

        from facelab.viz.draw import draw_analyses

        drawn = draw_analyses(rgb, records)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
            typer.echo(f"error: could not write {out}", err=True)
            raise typer.Exit(code=1)
        typer.echo(f"annotated image written to {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``facelab`` app (called by
    :mod:`facelab.cli` for every module of the package).

    Parameters
    ----------
    app : typer.Typer
        The ``facelab`` application.
    """
    app.command("analyze")(analyze_cmd)
