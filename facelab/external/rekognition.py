"""Amazon Rekognition JSON responses: DetectFaces, CompareFaces, SearchFacesByImage.

Field names and ranges follow the public API reference (Amazon Rekognition Developer
Guide, API version 2016-06-27: https://docs.aws.amazon.com/rekognition/latest/APIReference/):

* ``DetectFaces`` -> ``FaceDetails[]``: ``BoundingBox{Width, Height, Left, Top}`` as
  ratios of the image width/height (0-1; ``Left``/``Top`` may be slightly negative or the
  box may extend past 1 for faces cut by the frame), ``Confidence`` (0-100),
  ``Gender{Value: Male|Female, Confidence}``, ``AgeRange{Low, High}`` (integers, years),
  ``Emotions[{Type, Confidence}]`` with ``Type`` one of HAPPY, SAD, ANGRY, CONFUSED,
  DISGUSTED, SURPRISED, CALM, UNKNOWN, FEAR. Rekognition's own documentation says these
  are predictions of *appearance*, not of a person's internal emotional state or gender
  identity.
* ``CompareFaces`` -> ``SourceImageFace``, ``FaceMatches[{Similarity (0-100), Face}]``,
  ``UnmatchedFaces[]``. Only faces with ``Similarity >= SimilarityThreshold`` (a request
  parameter, default 80) appear in ``FaceMatches``; the others are in ``UnmatchedFaces``
  with no similarity. Request with ``SimilarityThreshold=0`` to get every similarity.
* ``SearchFacesByImage`` -> ``SearchedFaceBoundingBox``, ``FaceMatches[{Similarity,
  Face{FaceId, ExternalImageId, ...}}]``, at most ``MaxFaces`` matches with
  ``Similarity >= FaceMatchThreshold`` (default 80).

One JSON document per image (DetectFaces, SearchFacesByImage) or per pair (CompareFaces).
An error response (``{"__type": ..., "Message": ...}``, e.g. no face in the source
image) is a failure to acquire: counted with its message, never a score.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.validation import Drops, InputError, check_columns
from facelab.external._common import JsonDoc, ScoreScale, json_files, read_table, to_bool
from facelab.external.candidates import ImportedCandidates, check_candidate_table
from facelab.external.predictions import ImportedPredictions, check_prediction_table
from facelab.external.scores import ImportedScores, _finish

__all__ = ["SIMILARITY", "EMOTION_TYPES", "read_detect_faces", "read_compare_faces",
           "read_search_faces", "write_detect_faces", "write_compare_faces",
           "write_search_faces", "to_percent", "from_percent", "DEFAULT_THRESHOLD"]

#: Rekognition's similarity scale (CompareFaces, SearchFacesByImage).
SIMILARITY = ScoreScale("higher", 0.0, 100.0, "Rekognition Similarity (percent)")
#: Default ``SimilarityThreshold`` / ``FaceMatchThreshold`` of the service (the threshold
#: of the ACLU's 2018 test).
DEFAULT_THRESHOLD = 80.0
#: ``Emotions[].Type`` values of the API reference -> facelab expression names (None:
#: no facelab equivalent; kept as their own probability column).
EMOTION_TYPES = {"HAPPY": "happy", "SAD": "sad", "ANGRY": "angry", "CONFUSED": None,
                 "DISGUSTED": "disgust", "SURPRISED": "surprise", "CALM": "neutral",
                 "UNKNOWN": None, "FEAR": "fear"}
_GENDERS = {"Male": "male", "Female": "female"}


def to_percent(similarity: np.ndarray) -> np.ndarray:
    """A cosine similarity in [-1, 1] on Rekognition's 0-100 scale: ``50 (s + 1)``. Exact
    and invertible in float64 for float32 cosines (used by the exporters).

    Parameters
    ----------
    similarity : numpy.ndarray
        Cosine similarities in [-1, 1].

    Returns
    -------
    numpy.ndarray
        float64 in [0, 100].
    """
    return 50.0 * (np.asarray(similarity, dtype=float) + 1.0)


def from_percent(percent: np.ndarray | float) -> np.ndarray | float:
    """Inverse of :func:`to_percent`.

    Parameters
    ----------
    percent : numpy.ndarray or float
        Values on Rekognition's 0-100 scale.

    Returns
    -------
    numpy.ndarray or float
        float64 cosine similarities in [-1, 1].
    """
    return np.asarray(percent, dtype=float) / 50.0 - 1.0


def _error(doc: JsonDoc) -> str:
    d = doc.data
    if isinstance(d, Mapping) and ("__type" in d or "Error" in d or "Message" in d):
        kind = d.get("__type") or (d.get("Error") or {}).get("Code", "error")
        msg = d.get("Message") or d.get("message") or (d.get("Error") or {}).get("Message", "")
        return f"service error {kind}: {msg}".strip()
    return ""


# ----------------------------------------------------------------------------- DetectFaces
def read_detect_faces(source: Any, *, errors: str = "raise", system: str = "Rekognition "
                      "DetectFaces") -> ImportedPredictions:
    """Per-face predictions from DetectFaces responses (``Attributes=["ALL"]``).

    Parameters
    ----------
    source
        Folder of ``<image id>.json`` files, mapping ``{image id: path or parsed dict}``
        or list of paths.
    errors : {"raise", "drop"}
        Stop at the first bad entry (naming its file and line/row), or count it in the
        result's ``drops``.
    system : str
        Name of the system shown in reports.

    Returns
    -------
    ImportedPredictions
        One row per face: the box as ratios (``box_left, box_top, box_width,
        box_height``), ``detection_score`` (``Confidence`` / 100), ``gender`` and
        ``gender_confidence`` (/ 100), ``p_female``, ``age_low``, ``age_high``, ``age``
        (their midpoint), ``expression`` (the top ``Emotions`` type, mapped by
        :data:`EMOTION_TYPES`) and ``p_<type>`` per emotion type (/ 100). An image whose
        ``FaceDetails`` is empty has one row with ``face = -1`` (no face found).

    Raises
    ------
    InputError
        Missing or mistyped fields, numbers outside the documented ranges, unknown
        ``Gender.Value`` or ``Emotions[].Type``, naming the file and JSON path.
    """
    rows = []
    drops = Drops(str(source)[:200])
    for image, item in json_files(source):
        doc = JsonDoc(item if not isinstance(item, Mapping) else item, name=str(
            item if not isinstance(item, Mapping) else image))
        err = _error(doc)
        if err:
            if errors == "raise":
                raise InputError(doc.name, err)
            drops.add("top level", err, doc.name)
            continue
        faces = doc.get(doc.data, "FaceDetails", path="", kind="list")
        if not faces:
            rows.append({"image": image, "face": -1, "where": doc.name})
            continue
        for i, f in enumerate(faces):
            p = f"FaceDetails[{i}]"
            row: dict[str, Any] = {"image": image, "face": i, "where": f"{doc.name}: {p}"}
            box = doc.get(f, "BoundingBox", path=p, kind="object")
            for key in ("Width", "Height"):
                row[f"box_{key.lower()}"] = doc.get(box, key, path=f"{p}.BoundingBox",
                                                    kind="number", low=0.0, high=1.0)
            for key in ("Left", "Top"):
                row[f"box_{key.lower()}"] = doc.get(box, key, path=f"{p}.BoundingBox",
                                                    kind="number", low=-1.0, high=1.0)
            row["detection_score"] = doc.get(f, "Confidence", path=p, kind="number", low=0,
                                             high=100) / 100.0
            g = doc.get(f, "Gender", path=p, kind="object", required=False)
            if g is not None:
                value = doc.get(g, "Value", path=f"{p}.Gender", kind="string")
                if value not in _GENDERS:
                    raise InputError(doc.name, f"Gender.Value {value!r} is not one of "
                                               f"{list(_GENDERS)}", f"{p}.Gender.Value")
                conf = doc.get(g, "Confidence", path=f"{p}.Gender", kind="number", low=0,
                               high=100) / 100.0
                row.update(gender=_GENDERS[value], gender_confidence=conf,
                           p_female=conf if value == "Female" else 1.0 - conf)
            a = doc.get(f, "AgeRange", path=p, kind="object", required=False)
            if a is not None:
                low = doc.get(a, "Low", path=f"{p}.AgeRange", kind="number", low=0, high=150)
                high = doc.get(a, "High", path=f"{p}.AgeRange", kind="number", low=0,
                               high=150)
                if low > high:
                    raise InputError(doc.name, f"AgeRange.Low {low:g} > High {high:g}",
                                     f"{p}.AgeRange")
                row.update(age_low=low, age_high=high, age=(low + high) / 2.0)
            emotions = doc.get(f, "Emotions", path=p, kind="list", required=False) or []
            best, best_conf = None, -1.0
            for j, e in enumerate(emotions):
                ep = f"{p}.Emotions[{j}]"
                t = doc.get(e, "Type", path=ep, kind="string")
                if t not in EMOTION_TYPES:
                    raise InputError(doc.name, f"Emotions Type {t!r} is not one of "
                                               f"{list(EMOTION_TYPES)}", f"{ep}.Type")
                c = doc.get(e, "Confidence", path=ep, kind="number", low=0, high=100) / 100.0
                row[f"p_{t.lower()}"] = c
                if c > best_conf:
                    best, best_conf = t, c
            if best is not None:
                row["expression"] = EMOTION_TYPES[best] or best.lower()
                row["expression_confidence"] = best_conf
            rows.append(row)
    table = pd.DataFrame(rows)
    table = check_prediction_table(table, source=str(source)[:200])
    return ImportedPredictions(table, str(source)[:200], drops, system=system,
                               box_units="ratio")


def write_detect_faces(predictions: pd.DataFrame, folder: str | os.PathLike) -> Path:
    """Write a predictions table (:data:`facelab.external.predictions.PREDICTION_COLUMNS`,
    boxes in pixels with ``image_width``/``image_height``) as one DetectFaces response per
    image, ``<folder>/<image id>.json`` (ids with ``/`` make sub-folders). Ages are written
    as ``AgeRange{Low: floor(age), High: ceil(age)}`` (the API gives integers).

    Parameters
    ----------
    predictions : DataFrame
        Predictions with ``image_width``/``image_height`` (pixels).
    folder : str or os.PathLike
        Where the responses go.

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    folder = Path(folder)
    for image, part in predictions.groupby("image", sort=True):
        faces = []
        for r in part[part["face"] >= 0].itertuples(index=False):
            w, h = float(r.image_width), float(r.image_height)
            face: dict[str, Any] = {
                "BoundingBox": {"Width": (r.box_x2 - r.box_x1) / w,
                                "Height": (r.box_y2 - r.box_y1) / h,
                                "Left": r.box_x1 / w, "Top": r.box_y1 / h},
                "Confidence": 100.0 * float(r.detection_score)}
            if isinstance(r.gender, str):
                face["Gender"] = {"Value": "Female" if r.gender == "female" else "Male",
                                  "Confidence": 100.0 * float(r.gender_confidence)}
            if np.isfinite(getattr(r, "age", np.nan)):
                face["AgeRange"] = {"Low": int(np.floor(r.age)), "High": int(np.ceil(r.age))}
            emotions = []
            back = {v: k for k, v in EMOTION_TYPES.items() if v}
            for col in part.columns:
                if col.startswith("p_") and col[2:] in back:
                    v = getattr(r, col)
                    if np.isfinite(v):
                        emotions.append({"Type": back[col[2:]], "Confidence": 100.0 * float(v)})
            if emotions:
                face["Emotions"] = sorted(emotions, key=lambda e: -e["Confidence"])
            faces.append(face)
        path = folder / f"{image}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"FaceDetails": faces}, indent=1), encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------- CompareFaces
def read_compare_faces(index: str | os.PathLike, *, errors: str = "raise",
                       similarity_threshold: float = DEFAULT_THRESHOLD, censored: str = "raise",
                       system: str = "Rekognition CompareFaces") -> ImportedScores:
    """Verification scores from CompareFaces responses, one JSON per pair.

    Parameters
    ----------
    index
        CSV ``probe,reference,response[,mated]``: the source image (probe), the target
        image (reference) and the JSON file of the response (relative to the CSV).
    similarity_threshold
        The ``SimilarityThreshold`` the requests were made with (default 80, the
        service's default). Responses only give a similarity at or above it.
    censored
        What to do with a pair whose target face is only in ``UnmatchedFaces`` (its
        similarity is below ``similarity_threshold`` and not given): ``"raise"`` (default;
        request with ``SimilarityThreshold=0`` to get every similarity), or ``"keep"``:
        the pair is kept as a non-match with the scale's lowest value (0) and
        ``censored=True``, and no threshold below ``similarity_threshold`` can be used.
    errors : {"raise", "drop"}
        Stop at the first bad entry (naming its file and line/row), or count it in the
        result's ``drops``.
    system : str
        Name of the system shown in reports.

    Returns
    -------
    ImportedScores
        ``score`` = the highest ``FaceMatches[].Similarity`` (0-100). A response without
        any target face, or an error response, is a failure to acquire: counted in
        ``drops`` with its reason.

    Raises
    ------
    facelab.core.validation.InputError
        Missing columns or fields, similarities outside 0-100, a censored pair with
        ``censored="raise"``, naming file and JSON path.
    """
    src = str(index)
    frame, wheres = read_table(index)

    check_columns(frame, ["probe", "reference", "response"], source=src,
                  hint="Expected probe,reference,response[,mated].")
    base = Path(index).parent
    drops = Drops(src)
    rows, kept_wheres, flags = [], [], []
    for r, w in zip(frame.to_dict(orient="records"), wheres, strict=True):
        doc = JsonDoc(base / r["response"])
        err = _error(doc)
        if err:
            if errors == "raise":
                raise InputError(doc.name, err)
            drops.add(w, err, src)
            continue
        matches = doc.get(doc.data, "FaceMatches", path="", kind="list", required=False) or []
        unmatched = doc.get(doc.data, "UnmatchedFaces", path="", kind="list",
                            required=False) or []
        sims = [doc.get(m, "Similarity", path=f"FaceMatches[{i}]", kind="number",
                        low=SIMILARITY.low, high=SIMILARITY.high)
                for i, m in enumerate(matches)]
        if any(s < similarity_threshold for s in sims):
            raise InputError(doc.name, f"a FaceMatches Similarity is below the declared "
                                       f"SimilarityThreshold {similarity_threshold:g}: give "
                                       "the threshold the requests used", "FaceMatches")
        if sims:
            score, cens = max(sims), False
        elif unmatched:
            if censored != "keep":
                raise InputError(doc.name, f"no FaceMatches: the similarity is below the "
                                           f"request's SimilarityThreshold "
                                           f"{similarity_threshold:g} and not given. Request "
                                           "with SimilarityThreshold=0, or import with "
                                           "censored='keep'", "FaceMatches")
            score, cens = SIMILARITY.low, True
        else:
            drops.add(w, "no face found in the target image (failure to acquire)", src)
            continue
        rows.append({"probe": str(r["probe"]), "reference": str(r["reference"]),
                     "score": repr(score), "reference_is": "image", "probe_subject": pd.NA,
                     "mated": r.get("mated", pd.NA)})
        kept_wheres.append(f"{w} ({doc.name})")
        flags.append(cens)
    out = pd.DataFrame(rows)
    if "mated" in frame.columns and len(out):

        out["mated"] = pd.array(to_bool(out["mated"], source=src, column="mated",
                                        wheres=kept_wheres), dtype="boolean")
    else:
        out["mated"] = pd.array([pd.NA] * len(out), dtype="boolean")
    if len(out) == 0:
        raise InputError(src, "no usable CompareFaces response")
    out["censored"] = flags
    table = _finish(out, kept_wheres, source=src, scale=SIMILARITY, errors=errors,
                    drops=drops)
    table["censored"] = table["where"].map(dict(zip(kept_wheres, flags, strict=True)))
    return ImportedScores(table, SIMILARITY, src, drops, system=system,
                          default_threshold=DEFAULT_THRESHOLD,
                          default_how="the service's default similarity threshold 80 "
                                      "(the ACLU test's setting)",
                          censored_below=similarity_threshold if any(flags) else None)


def write_compare_faces(scored: pd.DataFrame, folder: str | os.PathLike, *,
                        transform=to_percent) -> Path:
    """Write scored pairs as CompareFaces responses made with ``SimilarityThreshold=0``
    (every similarity given): ``<folder>/responses/<n>.json`` and the index
    ``<folder>/pairs.csv`` (``probe,reference,response``). Returns the index path.

    Parameters
    ----------
    scored : DataFrame
        :func:`facelab.studies.verification.score_pairs` output.
    folder : str or os.PathLike
        Where ``responses/`` and ``pairs.csv`` go.
    transform : callable, optional
        Maps facelab similarities onto the written scale (e.g. :func:`to_percent`).

    Returns
    -------
    pathlib.Path
        The index ``<folder>/pairs.csv``.
    """
    folder = Path(folder)
    (folder / "responses").mkdir(parents=True, exist_ok=True)
    sims = transform(scored["score"].to_numpy(dtype=float))
    rows = []
    for i, (a, b, s) in enumerate(zip(scored["index_a"], scored["index_b"], sims, strict=True)):
        name = f"responses/{i:07d}.json"
        face = {"BoundingBox": {"Width": 0.5, "Height": 0.5, "Left": 0.25, "Top": 0.25},
                "Confidence": 99.9}
        doc = {"SourceImageFace": face, "FaceMatches": [{"Similarity": float(s), "Face": face}],
               "UnmatchedFaces": []}
        (folder / name).write_text(json.dumps(doc), encoding="utf-8")
        rows.append({"probe": a, "reference": b, "response": name})
    pd.DataFrame(rows).to_csv(folder / "pairs.csv", index=False)
    return folder / "pairs.csv"


# ----------------------------------------------------------------------------- SearchFaces
def read_search_faces(source: Any, *, errors: str = "raise",
                      face_match_threshold: float = DEFAULT_THRESHOLD,
                      max_faces: int | None = None,
                      system: str = "Rekognition SearchFacesByImage") -> ImportedCandidates:
    """Candidate lists from SearchFacesByImage responses, one JSON per probe image.

    Parameters
    ----------
    source
        Folder of ``<probe id>.json`` files (the id is the path inside the folder without
        ``.json``), mapping ``{probe id: path or parsed dict}`` or list of paths.
    face_match_threshold, max_faces
        The request's ``FaceMatchThreshold`` (default 80) and ``MaxFaces``: the system
        returned only candidates at or above the threshold, so no lower threshold can be
        evaluated (``censored_below``).
    errors : {"raise", "drop"}
        Stop at the first bad entry (naming its file and line/row), or count it in the
        result's ``drops``.
    system : str
        Name of the system shown in reports.

    Returns
    -------
    ImportedCandidates
        Candidate = ``Face.ExternalImageId`` (the id given when the gallery was indexed),
        rank by descending ``Similarity``. Several indexed faces of one ExternalImageId:
        the best is kept and the others counted in ``drops``. A response with no
        ``FaceMatches`` is a search that returned nothing.

    Raises
    ------
    InputError
        Missing ``FaceMatches``, ``Similarity`` or ``ExternalImageId``, similarities
        outside 0-100 or below ``face_match_threshold``, naming file and JSON path.
    """
    rows, probes = [], []
    drops = Drops(str(source)[:200])
    for probe, item in json_files(source):
        doc = JsonDoc(item, name=str(item) if not isinstance(item, Mapping) else probe)
        err = _error(doc)
        if err:
            if errors == "raise":
                raise InputError(doc.name, err)
            drops.add("top level", f"{err} (probe not searched)", doc.name)
            continue
        probes.append(str(probe))
        matches = doc.get(doc.data, "FaceMatches", path="", kind="list")
        cands: dict[str, tuple[float, str]] = {}
        for i, m in enumerate(matches):
            p = f"FaceMatches[{i}]"
            s = doc.get(m, "Similarity", path=p, kind="number", low=0, high=100)
            if s < face_match_threshold:
                raise InputError(doc.name, f"Similarity {s:g} is below the declared "
                                           f"FaceMatchThreshold {face_match_threshold:g}",
                                 f"{p}.Similarity")
            face = doc.get(m, "Face", path=p, kind="object")
            ext = doc.get(face, "ExternalImageId", path=f"{p}.Face", kind="string")
            if ext in cands:
                drops.add(f"{p}", f"another indexed face of {ext!r} (best kept)", doc.name)
                if s <= cands[ext][0]:
                    continue
            cands[ext] = (s, f"{doc.name}: {p}")
        order = sorted(cands.items(), key=lambda kv: -kv[1][0])
        for rank, (ext, (s, w)) in enumerate(order, start=1):
            rows.append({"probe": str(probe), "rank": str(rank), "candidate": ext,
                         "score": repr(s), "where": w})
    table = pd.DataFrame(rows, columns=["probe", "rank", "candidate", "score", "where"])
    table = check_candidate_table(table, source=str(source)[:200], scale=SIMILARITY,
                                  errors=errors, drops=drops)
    return ImportedCandidates(table, probes, SIMILARITY, str(source)[:200], drops,
                              system=system, censored_below=face_match_threshold,
                              max_candidates=max_faces, default_threshold=DEFAULT_THRESHOLD,
                              default_how="the service's default FaceMatchThreshold 80 (the "
                                          "ACLU test's setting)")


def external_image_id(gallery_id: str) -> str:
    """A gallery id written as an ``ExternalImageId`` (pattern ``[a-zA-Z0-9_.\\-:]+``):
    ``/`` becomes ``:`` and other characters outside the pattern ``_``."""
    import re

    return re.sub(r"[^a-zA-Z0-9_.\-:]", "_", str(gallery_id).replace("/", ":"))


def write_search_faces(results: pd.DataFrame, folder: str | os.PathLike, *,
                       probes: list | None = None, transform=to_percent,
                       face_match_threshold: float = 0.0) -> Path:
    """Write search results (``probe, candidate_rank, subject, score``) as one
    SearchFacesByImage response per probe, ``<folder>/<probe id>.json``, as if requested
    with ``FaceMatchThreshold=face_match_threshold`` (candidates below it are left out,
    as the service does).

    Parameters
    ----------
    results : DataFrame
        ``probe, candidate_rank, subject, score``.
    folder : str or os.PathLike
        Where the responses go.
    probes : list, optional
        Every search (those without a candidate get an empty response).
    transform : callable, optional
        Maps facelab similarities onto the written scale (e.g. :func:`to_percent`).
    face_match_threshold : float
        On the 0-100 scale; candidates below it are left out.

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    folder = Path(folder)
    res = results.dropna(subset=["score"])
    all_probes = list(probes) if probes is not None else pd.unique(res["probe"]).tolist()
    groups = dict(list(res.groupby("probe", sort=False)))
    for probe in all_probes:
        part = groups.get(probe)
        matches = []
        if part is not None:
            part = part.sort_values("candidate_rank")
            for s, subj in zip(transform(part["score"].to_numpy(dtype=float)), part["subject"],
                               strict=True):
                if s >= face_match_threshold:
                    matches.append({"Similarity": float(s), "Face": {
                        "FaceId": f"face-{external_image_id(subj)}",
                        "ExternalImageId": external_image_id(subj), "Confidence": 99.9}})
        path = folder / f"{probe}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"FaceMatches": matches, "FaceModelVersion": "exported"}),
                        encoding="utf-8")
    return folder
