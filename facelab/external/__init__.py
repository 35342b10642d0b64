"""Results another face system exported: import them (and export facelab's own) so the
same metrics and audit notebooks run on any system's outputs, with no model run by
facelab.

One module per format family:

=====================  ====================================================================
module                 formats
=====================  ====================================================================
``scores``             verification CSV ``probe,reference,score[,mated]``; bob.measure
                       4- and 5-column score files
``candidates``         1:N candidate lists ``probe,rank,candidate,score``
``predictions``        per-image predictions CSV: boxes, gender, age, expression
``rekognition``        Amazon Rekognition DetectFaces, CompareFaces, SearchFacesByImage JSON
``deepface``           deepface ``verify`` dicts, ``find`` DataFrames, ``analyze`` dicts
=====================  ====================================================================

Every number is checked where it enters (:mod:`facelab.core.validation`): a bad entry stops
the import with an :class:`~facelab.core.validation.InputError` naming the file and line (or
JSON path), or, with ``errors="drop"``, is left out and counted with its reason.
:func:`load_scores` and :func:`load_candidates` take the ``-p scores ...`` /
``-p candidates ...`` values of ``facelab audit``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from facelab.external._common import IdResolver, ScoreScale
from facelab.external.candidates import ImportedCandidates, read_candidates, write_candidates
from facelab.external.deepface import (
    read_deepface_analyze,
    read_deepface_find,
    read_deepface_verify,
    write_deepface_analyze,
    write_deepface_find,
    write_deepface_verify,
)
from facelab.external.predictions import (
    ImportedPredictions,
    read_predictions,
    write_predictions,
)
from facelab.external.rekognition import (
    read_compare_faces,
    read_detect_faces,
    read_search_faces,
    write_compare_faces,
    write_detect_faces,
    write_search_faces,
)
from facelab.external.scores import (
    ImportedScores,
    read_bob_scores,
    read_scores,
    write_bob_scores,
    write_scores,
)

__all__ = [
    "ScoreScale", "IdResolver", "ImportedScores", "ImportedCandidates", "ImportedPredictions",
    "read_scores", "read_bob_scores", "read_candidates", "read_predictions",
    "read_detect_faces", "read_compare_faces", "read_search_faces",
    "read_deepface_verify", "read_deepface_find", "read_deepface_analyze",
    "write_scores", "write_bob_scores", "write_candidates", "write_predictions",
    "write_detect_faces", "write_compare_faces", "write_search_faces",
    "write_deepface_verify", "write_deepface_find", "write_deepface_analyze",
    "load_scores", "load_candidates", "load_predictions", "SCORE_FORMATS",
    "CANDIDATE_FORMATS", "PREDICTION_FORMATS",
]

SCORE_FORMATS = ("csv", "bob", "rekognition", "deepface")
CANDIDATE_FORMATS = ("csv", "rekognition", "deepface")
PREDICTION_FORMATS = ("csv", "rekognition", "deepface")


def _spec(spec: Any) -> dict:
    if isinstance(spec, str | os.PathLike):
        return {"path": str(spec)}
    if isinstance(spec, Mapping):
        d = dict(spec)
        if "path" not in d:
            raise ValueError(f"an import spec needs a path; got {sorted(d)}")
        return d
    raise TypeError(f"give a path or a mapping {{path, format, scale, ...}}; got {spec!r}")


def _guess(path: str, formats: tuple[str, ...]) -> str:
    p = Path(path)
    if p.suffix.lower() in (".txt", ".scores", ".tsv") or p.name.endswith((".4col", ".5col")):
        return "bob" if "bob" in formats else "csv"
    if p.suffix.lower() == ".json":
        return "deepface"
    if p.is_dir():
        return "rekognition" if any(p.rglob("*.json")) else "deepface"
    return "csv"


def load_scores(spec: Any) -> ImportedScores:
    """Verification scores from a path or a mapping (the ``-p scores`` value).

    Parameters
    ----------
    spec : str, os.PathLike or mapping
        A path (format from its extension: ``.csv`` CSV, ``.txt``/``.scores`` bob,
        ``.json`` deepface verify records; a CompareFaces index is a CSV with a ``response``
        column: give ``format: rekognition``), or ``{path, format, scale: {direction, low,
        high, name}, errors: raise|drop, system, default_threshold, similarity_threshold,
        censored}``.

    Returns
    -------
    ImportedScores
        One row per comparison with the score turned into a similarity (higher = more
        alike), the system's scale and threshold, and the counted drops.

    Raises
    ------
    ValueError
        For a mapping without ``path`` or an unknown format.
    TypeError
        When ``spec`` is neither a path nor a mapping.
    facelab.core.validation.InputError
        For a bad value in the file (named by file and line/row) with ``errors: raise``.
    """
    d = _spec(spec)
    fmt = d.pop("format", None) or _guess(d["path"], SCORE_FORMATS)
    path = d.pop("path")
    if fmt not in SCORE_FORMATS:
        raise ValueError(f"unknown score format {fmt!r}; known: {SCORE_FORMATS}")
    reader = {"csv": read_scores, "bob": read_bob_scores, "rekognition": read_compare_faces,
              "deepface": read_deepface_verify}[fmt]
    return reader(path, **d)


def load_candidates(spec: Any) -> ImportedCandidates:
    """Candidate lists from a path or a mapping (the ``-p candidates`` value).

    Parameters
    ----------
    spec : str, os.PathLike or mapping
        A CSV file, a folder of SearchFacesByImage JSON (``format: rekognition``, with
        ``face_match_threshold``, ``max_faces``) or of ``DeepFace.find`` CSVs (``format:
        deepface``, with ``metric``).

    Returns
    -------
    ImportedCandidates
        One row per (probe, candidate) with rank and similarity, and the counted drops.

    Raises
    ------
    ValueError
        For a mapping without ``path`` or an unknown format.
    TypeError
        When ``spec`` is neither a path nor a mapping.
    facelab.core.validation.InputError
        For a bad value in the file (named by file and line/row) with ``errors: raise``.
    """
    d = _spec(spec)
    fmt = d.pop("format", None) or _guess(d["path"], CANDIDATE_FORMATS)
    path = d.pop("path")
    if fmt not in CANDIDATE_FORMATS:
        raise ValueError(f"unknown candidate format {fmt!r}; known: {CANDIDATE_FORMATS}")
    reader = {"csv": read_candidates, "rekognition": read_search_faces,
              "deepface": read_deepface_find}[fmt]
    return reader(path, **d)


def load_predictions(spec: Any) -> ImportedPredictions:
    """Per-image predictions from a path or a mapping.

    Parameters
    ----------
    spec : str, os.PathLike or mapping
        A CSV, a folder of DetectFaces JSON (``format: rekognition``) or of
        ``DeepFace.analyze`` JSON (``format: deepface``).

    Returns
    -------
    ImportedPredictions
        One row per (image, face): box in pixels, detection confidence, attributes; the
        counted drops.

    Raises
    ------
    ValueError
        For a mapping without ``path`` or an unknown format.
    TypeError
        When ``spec`` is neither a path nor a mapping.
    facelab.core.validation.InputError
        For a bad value in the file (named by file and line/row) with ``errors: raise``.
    """
    d = _spec(spec)
    fmt = d.pop("format", None) or ("csv" if str(d["path"]).endswith(".csv") else None)
    path = d.pop("path")
    if fmt not in PREDICTION_FORMATS:
        raise ValueError(f"give the prediction format, one of {PREDICTION_FORMATS}")
    reader = {"csv": read_predictions, "rekognition": read_detect_faces,
              "deepface": read_deepface_analyze}[fmt]
    return reader(path, **d)
