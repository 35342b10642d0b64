"""deepface outputs (https://github.com/serengil/deepface, ``deepface/DeepFace.py``):

* ``DeepFace.verify(img1_path, img2_path)`` -> dict ``{"verified": bool, "distance": float,
  "threshold": float, "model": str, "detector_backend": str, "similarity_metric": str,
  "facial_areas": {...}, "time": float}``. The result does not repeat the image paths:
  save each as ``{"img1_path": ..., "img2_path": ..., **result}`` (a JSON list of them, or
  one JSON per pair). ``verified`` is ``distance <= threshold``.
* ``DeepFace.find(img_path, db_path)`` -> a list of DataFrames, one per face found in the
  probe, with columns ``identity`` (path of the matched database image), ``distance``
  and ``threshold`` (deepface >= 0.0.80; older releases name the distance column
  ``<model>_<metric>``), sorted by ascending distance. Save each probe's first DataFrame
  as CSV: ``<folder>/<probe id>.csv``.
* ``DeepFace.analyze(img_path)`` -> a list of dicts, one per face: ``region{x, y, w, h}``
  (pixels), ``face_confidence`` (0-1), ``age``, ``dominant_gender`` (``Woman``/``Man``),
  ``gender{Woman, Man}`` and ``emotion{angry, disgust, fear, happy, sad, surprise,
  neutral}`` in percent, ``dominant_emotion``. One JSON per image.

Distances: cosine distance ``1 - cos`` lies in [0, 2]; ``euclidean_l2`` in [0, 2];
``euclidean`` in [0, inf). Lower = more alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.validation import Drops, InputError
from facelab.external._common import JsonDoc, ScoreScale, json_files, read_table
from facelab.external.candidates import ImportedCandidates, check_candidate_table
from facelab.external.predictions import ImportedPredictions, check_prediction_table
from facelab.external.scores import ImportedScores, _finish

__all__ = ["distance_scale", "read_deepface_verify", "read_deepface_find",
           "read_deepface_analyze", "write_deepface_verify", "write_deepface_find",
           "write_deepface_analyze", "EMOTIONS"]

#: deepface's emotion classes (its ``Emotion`` model's labels).
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
_RANGES = {"cosine": (0.0, 2.0), "euclidean_l2": (0.0, 2.0), "euclidean": (0.0, np.inf),
           "angular": (0.0, 1.0)}


def distance_scale(metric: str, model: str = "") -> ScoreScale:
    """The :class:`ScoreScale` of a deepface distance metric (lower = more alike).

    Parameters
    ----------
    metric : {"cosine", "euclidean", "euclidean_l2", ...}
        deepface's ``distance_metric`` (its documented range sets the scale's range).
    model : str
        deepface model name, used in the scale's name.

    Returns
    -------
    ScoreScale
        ``direction="lower"`` with the metric's range.

    Raises
    ------
    ValueError
        For a metric deepface does not have.
    """
    if metric not in _RANGES:
        raise ValueError(f"unknown deepface distance metric {metric!r}; known: {list(_RANGES)}")
    low, high = _RANGES[metric]
    name = f"deepface {model} {metric} distance".replace("  ", " ")
    return ScoreScale("lower", low, high, name)


def _records(source: Any) -> list[tuple[str, dict]]:
    """(where, record) from a JSON file holding a list, a folder of JSON files, a list
    of dicts or a mapping."""
    if isinstance(source, list | tuple) and all(isinstance(r, Mapping) for r in source):
        return [(f"record {i}", dict(r)) for i, r in enumerate(source)]
    if isinstance(source, str | os.PathLike) and Path(source).is_file():
        doc = JsonDoc(source)
        data = doc.data if isinstance(doc.data, list) else [doc.data]
        return [(f"{doc.name}: [{i}]", r) for i, r in enumerate(data)]
    out = []
    for key, item in json_files(source):
        doc = JsonDoc(item, name=str(item) if not isinstance(item, Mapping) else key)
        out.append((doc.name, doc.data))
    return out


def read_deepface_verify(source: Any, *, errors: str = "raise", system: str = ""
                         ) -> ImportedScores:
    """Verification scores from saved ``DeepFace.verify`` results.

    Every record needs ``img1_path``, ``img2_path``, ``distance``, ``threshold``,
    ``verified`` and ``similarity_metric`` (``model`` is used in the name). The scale is
    the metric's distance (lower = more alike, :func:`distance_scale`); the records'
    common ``threshold`` becomes the system's default threshold.

    Parameters
    ----------
    source : str, os.PathLike, list of dict or mapping
        A JSON file holding a list of records, a folder of JSON files, or parsed records.
    errors : {"raise", "drop"}
        Stop at the first bad entry (naming its file and line/row), or count it in the
        result's ``drops``.
    system : str
        Name of the system shown in reports.

    Returns
    -------
    ImportedScores
        One row per pair, ``score`` = deepface's distance, default threshold = the
        records' ``threshold``.

    Raises
    ------
    InputError
        Missing fields, non-finite or out-of-range distances, records disagreeing on the
        metric, model or threshold, ``verified`` inconsistent with ``distance <=
        threshold``, duplicate pairs; naming the record.
    """
    rows, wheres = [], []
    metric = model = threshold = None
    src = str(source)[:200]
    for w, r in _records(source):
        doc = JsonDoc(r, name=w)
        for key in ("img1_path", "img2_path"):
            doc.get(r, key, path="", kind="string")
        d = doc.get(r, "distance", path="", kind="number")
        t = doc.get(r, "threshold", path="", kind="number")
        m = doc.get(r, "similarity_metric", path="", kind="string")
        mod = str(r.get("model", ""))
        ver = doc.get(r, "verified", path="", kind="any")
        for name, seen, now in (("similarity_metric", metric, m), ("model", model, mod),
                                ("threshold", threshold, t)):
            if seen is not None and seen != now:
                raise InputError(w, f"{name} {now!r} differs from the earlier records' "
                                    f"{seen!r}: import one model and metric at a time")
        metric, model, threshold = m, mod, t
        if bool(ver) != (d <= t):
            raise InputError(w, f"verified={ver!r} but distance {d!r} "
                                f"{'<=' if d <= t else '>'} threshold {t!r}")
        rows.append({"probe": str(r["img1_path"]), "reference": str(r["img2_path"]),
                     "score": repr(d), "reference_is": "image", "probe_subject": pd.NA,
                     "mated": pd.NA})
        wheres.append(w)
    if not rows:
        raise InputError(src, "no deepface verify record")
    scale = distance_scale(metric, model)
    out = pd.DataFrame(rows)
    out["mated"] = pd.array([pd.NA] * len(out), dtype="boolean")
    table = _finish(out, wheres, source=src, scale=scale, errors=errors, drops=Drops(src))
    return ImportedScores(table, scale, src, Drops(src), system=system or f"deepface {model}",
                          default_threshold=threshold,
                          default_how=f"deepface's threshold {threshold:g} for {model} with "
                                      f"{metric} distance (its `verified` decision)")


def write_deepface_verify(scored: pd.DataFrame, path: str | os.PathLike, *,
                          threshold: float, model: str = "SFace",
                          metric: str = "cosine") -> Path:
    """Write scored pairs as a JSON list of ``DeepFace.verify`` results; the facelab
    cosine similarity ``s`` becomes deepface's cosine distance ``1 - s``; ``threshold``
    is on the distance scale.

    Parameters
    ----------
    scored : DataFrame
        :func:`facelab.studies.verification.score_pairs` output (``index_a``, ``index_b``,
        ``score`` cosine similarity).
    path : str or os.PathLike
        The JSON file to write (folders are created).
    threshold : float
        deepface's decision threshold on the distance scale.
    model, metric : str
        Written as ``model`` and ``similarity_metric``.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    recs = []
    for a, b, s in zip(scored["index_a"], scored["index_b"], scored["score"], strict=True):
        d = 1.0 - float(s)
        recs.append({"img1_path": str(a), "img2_path": str(b), "verified": bool(d <= threshold),
                     "distance": d, "threshold": threshold, "model": model,
                     "detector_backend": "yunet", "similarity_metric": metric,
                     "facial_areas": {}, "time": 0.0})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recs), encoding="utf-8")
    return path


def read_deepface_find(source: Any, *, errors: str = "raise", metric: str = "cosine",
                       model: str = "", system: str = "") -> ImportedCandidates:
    """Candidate lists from saved ``DeepFace.find`` DataFrames.

    Parameters
    ----------
    source
        Folder of ``<probe id>.csv`` files (id = path inside the folder without
        ``.csv``), or a mapping ``{probe id: DataFrame, list of DataFrames or CSV path}``
        (of a list, the first DataFrame is used: deepface returns one per face found in
        the probe; the others are counted in ``drops``). An empty DataFrame is a search
        that returned nothing.
    metric, model
        The distance metric (and model) ``find`` used, for the scale and its range.
    errors : {"raise", "drop"}
        Stop at the first bad entry (naming its file and line/row), or count it in the
        result's ``drops``.
    system : str
        Name of the system shown in reports.

    Returns
    -------
    ImportedCandidates
        Candidate = ``identity``, rank by ascending distance.

    Raises
    ------
    facelab.core.validation.InputError
        Missing ``identity`` or ``distance`` columns, bad distances, naming file and row.
    ValueError
        For an unknown metric.
    """
    scale = distance_scale(metric, model)
    drops = Drops(str(source)[:200])
    if isinstance(source, Mapping):
        items = list(source.items())
    else:
        items = json_files(source, suffix=".csv")
    rows, probes = [], []
    thresholds = set()
    for probe, item in sorted(items, key=lambda kv: str(kv[0])):
        if isinstance(item, list | tuple):
            for k in range(1, len(item)):
                drops.add(f"face {k}", "another face in the probe image (first used)",
                          str(probe))
            item = item[0] if item else pd.DataFrame(columns=["identity", "distance"])
        if isinstance(item, pd.DataFrame):
            frame = item.astype(object).astype(str)
            wheres = [f"{probe}: row {i}" for i in range(len(frame))]
            name = str(probe)
        else:
            frame, wheres = read_table(item)
            name = str(item)
        probes.append(str(probe))
        dist_col = "distance" if "distance" in frame.columns else next(
            (c for c in frame.columns if c.endswith(f"_{metric}")), None)
        if "identity" not in frame.columns or (dist_col is None and len(frame)):
            raise InputError(name, f"a DeepFace.find result needs columns identity and "
                                   f"distance (or <model>_{metric}); it has "
                                   f"{list(frame.columns)}")
        if "threshold" in frame.columns:
            thresholds.update(frame["threshold"].tolist())
        if len(frame) == 0:
            continue
        d = pd.to_numeric(frame[dist_col], errors="coerce")
        order = np.argsort(d.fillna(np.inf).to_numpy(), kind="stable")
        for rank, i in enumerate(order, start=1):
            rows.append({"probe": str(probe), "rank": str(rank),
                         "candidate": frame["identity"].iloc[i],
                         "score": frame[dist_col].iloc[i], "where": wheres[i]})
    table = pd.DataFrame(rows, columns=["probe", "rank", "candidate", "score", "where"])
    table = check_candidate_table(table, source=str(source)[:200], scale=scale,
                                  errors=errors, drops=drops)
    default = None
    if len(thresholds) == 1:
        default = float(next(iter(thresholds)))
    return ImportedCandidates(table, probes, scale, str(source)[:200], drops,
                              system=system or f"deepface {model} find".replace("  ", " "),
                              default_threshold=default,
                              default_how=f"deepface's threshold {default:g}" if default
                              is not None else "",
                              censored_below=None)


def write_deepface_find(results: pd.DataFrame, folder: str | os.PathLike, *,
                        identity_of=None, probes: list | None = None,
                        threshold: float | None = None) -> Path:
    """Write search results as one ``DeepFace.find`` CSV per probe (cosine distance
    ``1 - s``); ``identity_of`` maps a gallery id to the image path written in
    ``identity`` (default: the id).

    Parameters
    ----------
    results : DataFrame
        ``probe, candidate_rank, subject, score`` (:meth:`facelab.match.gallery.Gallery.search`).
    folder : str or os.PathLike
        Where the ``<probe>.csv`` files go.
    identity_of : callable, optional
        Gallery id -> image path written in ``identity``.
    probes : list, optional
        Every search (those without a candidate get an empty CSV).
    threshold : float, optional
        Written in a ``threshold`` column (distance scale).

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    folder = Path(folder)
    res = results.dropna(subset=["score"])
    groups = dict(list(res.groupby("probe", sort=False)))
    for probe in (list(probes) if probes is not None else list(groups)):
        part = groups.get(probe)
        if part is None:
            frame = pd.DataFrame(columns=["identity", "distance", "threshold"])
        else:
            part = part.sort_values("candidate_rank")
            ids = [identity_of(s) if identity_of else s for s in part["subject"]]
            frame = pd.DataFrame({"identity": ids,
                                  "distance": [repr(1.0 - float(s)) for s in part["score"]]})
            if threshold is not None:
                frame["threshold"] = threshold
        path = folder / f"{probe}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    return folder


def read_deepface_analyze(source: Any, *, system: str = "deepface analyze"
                          ) -> ImportedPredictions:
    """Per-face predictions from saved ``DeepFace.analyze`` results, one JSON per image
    (folder of ``<image id>.json``, or mapping ``{image id: list of dicts or path}``).

    Percentages become [0, 1]; ``dominant_gender`` Woman/Man becomes female/male with the
    confidence of that label; the box is ``region`` (pixels). An empty list is an image
    with no face found.

    Parameters
    ----------
    source : str, os.PathLike or mapping
        Folder of ``<image id>.json``, or mapping ``{image id: list of dicts or path}``.
    system : str
        Name of the system shown in reports.

    Returns
    -------
    ImportedPredictions
        One row per face (``face == -1``: no face found in that image).

    Raises
    ------
    InputError
        Missing ``region``, non-numeric or out-of-range values, unknown gender or emotion
        labels, naming the file and JSON path.
    """
    rows = []
    items = list(source.items()) if isinstance(source, Mapping) else json_files(source)
    for image, item in sorted(items, key=lambda kv: str(kv[0])):
        doc = JsonDoc(item, name=str(item) if isinstance(item, str | os.PathLike) else
                      str(image))
        faces = doc.data if isinstance(doc.data, list) else [doc.data]
        if not faces:
            rows.append({"image": str(image), "face": -1, "where": doc.name})
            continue
        for i, f in enumerate(faces):
            p = f"[{i}]"
            reg = doc.get(f, "region", path=p, kind="object")
            x, y = (doc.get(reg, k, path=f"{p}.region", kind="number") for k in ("x", "y"))
            w, h = (doc.get(reg, k, path=f"{p}.region", kind="number", low=0)
                    for k in ("w", "h"))
            row: dict[str, Any] = {"image": str(image), "face": i, "where": f"{doc.name}: {p}",
                                   "box_x1": x, "box_y1": y, "box_x2": x + w, "box_y2": y + h}
            conf = doc.get(f, "face_confidence", path=p, kind="number", required=False,
                           low=0, high=1)
            if conf is not None:
                row["detection_score"] = conf
            dom = doc.get(f, "dominant_gender", path=p, kind="string", required=False)
            if dom is not None:
                if dom not in ("Woman", "Man"):
                    raise InputError(doc.name, f"dominant_gender {dom!r} is not Woman or Man",
                                     f"{p}.dominant_gender")
                g = doc.get(f, "gender", path=p, kind="object")
                pw = doc.get(g, "Woman", path=f"{p}.gender", kind="number", low=0, high=100)
                pm = doc.get(g, "Man", path=f"{p}.gender", kind="number", low=0, high=100)
                row.update(gender="female" if dom == "Woman" else "male",
                           gender_confidence=(pw if dom == "Woman" else pm) / 100.0,
                           p_female=pw / 100.0)
            age = doc.get(f, "age", path=p, kind="number", required=False, low=0, high=150)
            if age is not None:
                row["age"] = age
            emo = doc.get(f, "emotion", path=p, kind="object", required=False)
            if emo is not None:
                for k in emo:
                    if k not in EMOTIONS:
                        raise InputError(doc.name, f"emotion {k!r} is not one of {EMOTIONS}",
                                         f"{p}.emotion")
                    row[f"p_{k}"] = doc.get(emo, k, path=f"{p}.emotion", kind="number",
                                            low=0, high=100) / 100.0
                dom_e = doc.get(f, "dominant_emotion", path=p, kind="string")
                if dom_e not in EMOTIONS:
                    raise InputError(doc.name, f"dominant_emotion {dom_e!r} is not one of "
                                               f"{EMOTIONS}", f"{p}.dominant_emotion")
                row["expression"] = dom_e
                row["expression_confidence"] = row.get(f"p_{dom_e}", np.nan)
            rows.append(row)
    table = check_prediction_table(pd.DataFrame(rows), source=str(source)[:200])
    return ImportedPredictions(table, str(source)[:200], Drops(str(source)[:200]),
                               system=system)


def write_deepface_analyze(predictions: pd.DataFrame, folder: str | os.PathLike) -> Path:
    """Write a predictions table as one ``DeepFace.analyze`` JSON per image.

    Parameters
    ----------
    predictions : DataFrame
        A predictions table (:data:`facelab.external.predictions.PREDICTION_COLUMNS`, boxes
        in pixels).
    folder : str or os.PathLike
        Where the ``<image>.json`` files go.

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    folder = Path(folder)
    for image, part in predictions.groupby("image", sort=True):
        faces = []
        for r in part[part["face"] >= 0].to_dict(orient="records"):
            f: dict[str, Any] = {"region": {"x": r["box_x1"], "y": r["box_y1"],
                                            "w": r["box_x2"] - r["box_x1"],
                                            "h": r["box_y2"] - r["box_y1"]},
                                 "face_confidence": r["detection_score"]}
            if isinstance(r.get("gender"), str):
                pf = float(r["p_female"])
                f.update(dominant_gender="Woman" if r["gender"] == "female" else "Man",
                         gender={"Woman": 100.0 * pf, "Man": 100.0 * (1.0 - pf)})
            if np.isfinite(r.get("age", np.nan)):
                f["age"] = float(r["age"])
            emo = {e: 100.0 * float(r[f"p_{e}"]) for e in EMOTIONS
                   if np.isfinite(r.get(f"p_{e}", np.nan))}
            if emo:
                f["emotion"] = emo
                f["dominant_emotion"] = max(emo, key=emo.get)
            faces.append(f)
        path = folder / f"{image}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(faces), encoding="utf-8")
    return folder
