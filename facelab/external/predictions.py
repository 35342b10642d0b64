"""Per-image predictions of another system: detections, gender, age, expression.

CSV layout (one row per detected face; header line; every column but ``image`` optional)::

    image,face,box_x1,box_y1,box_x2,box_y2,detection_score,gender,gender_confidence,
    age,age_low,age_high,expression,p_angry,p_disgust,p_fear,p_happy,p_sad,p_surprise,...

* ``face``: 0, 1, ... per image; ``-1`` (or an empty ``face``) records an image in which
  the system found no face (a failure to acquire), so it is not mistaken for an image the
  system never saw.
* boxes in pixels ``(x1, y1, x2, y2)``; ``detection_score`` and every confidence or
  probability in [0, 1] (divide percentages by 100 first).
* ``gender`` ``female``/``male`` (also F/M, woman/man) and ``gender_confidence`` the
  confidence *of that label*; ``age`` in years, or a range ``age_low``-``age_high``
  (the midpoint is used as the estimate); ``expression`` the top label and ``p_<label>``
  the per-class confidences.

Gender and expression outputs describe how a face *looks*, not a person's gender identity
or inner emotional state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facelab.core.types import box_areas
from facelab.core.validation import Drops, InputError, check_columns, check_numeric
from facelab.data.schema import normalise_gender
from facelab.external._common import read_table

__all__ = ["ImportedPredictions", "read_predictions", "write_predictions",
           "check_prediction_table", "PREDICTION_COLUMNS", "GENDERS"]

#: Standard columns of :attr:`ImportedPredictions.table` (plus ``p_<label>`` columns).
PREDICTION_COLUMNS = ("image", "face", "box_x1", "box_y1", "box_x2", "box_y2",
                      "detection_score", "gender", "gender_confidence", "p_female", "age",
                      "age_low", "age_high", "expression", "expression_confidence", "where")
GENDERS = ("female", "male")
#: Documented ranges of the numeric columns (probabilities in [0, 1], ages in years).
RANGES = {"detection_score": (0.0, 1.0), "gender_confidence": (0.0, 1.0),
          "p_female": (0.0, 1.0), "expression_confidence": (0.0, 1.0),
          "age": (0.0, 150.0), "age_low": (0.0, 150.0), "age_high": (0.0, 150.0),
          "box_x1": (-1e6, 1e6), "box_y1": (-1e6, 1e6), "box_x2": (-1e6, 1e6),
          "box_y2": (-1e6, 1e6), "box_left": (-1.0, 1.0), "box_top": (-1.0, 1.0),
          "box_width": (0.0, 1.0), "box_height": (0.0, 1.0)}


@dataclass
class ImportedPredictions:
    """Predictions imported from another system (one row per face).

    Attributes
    ----------
    table : DataFrame
        :data:`PREDICTION_COLUMNS` (missing ones are NaN/NA) and ``p_<label>`` columns;
        ``face == -1`` rows are images where the system found no face.
    source : str
    drops : Drops
    system : str
    box_units : str
        ``"pixel"`` (``box_x1..box_y2``) or ``"ratio"`` (Rekognition's
        ``box_left, box_top, box_width, box_height`` as fractions of the image size).
    """

    table: pd.DataFrame
    source: str
    drops: Drops = field(default_factory=Drops)
    system: str = ""
    box_units: str = "pixel"

    def __post_init__(self) -> None:
        if not self.system:
            self.system = Path(self.source).name or "imported predictions"

    def largest_face(self) -> pd.DataFrame:
        """One row per image: the largest face (by box area,
        :func:`facelab.core.types.box_areas`, the rule of
        :func:`~facelab.core.types.largest_face`; the lowest face index on a tie), or the
        ``face == -1`` row.

        Returns
        -------
        DataFrame
            Same columns as ``table``.
        """
        t = self.table.copy()
        if self.box_units == "ratio":
            x1, y1 = t["box_left"].to_numpy(float), t["box_top"].to_numpy(float)
            boxes = np.stack([x1, y1, x1 + t["box_width"].to_numpy(float),
                              y1 + t["box_height"].to_numpy(float)], axis=1)
        else:
            boxes = t[["box_x1", "box_y1", "box_x2", "box_y2"]].to_numpy(float)
        t["_area"] = np.nan_to_num(box_areas(boxes), nan=-1.0)
        t = t.sort_values(["image", "_area", "face"], ascending=[True, False, True],
                          kind="stable")
        return t.drop_duplicates("image").drop(columns="_area").reset_index(drop=True)

    def summary(self) -> str:
        """One sentence for a report: faces, images, images without a face, drops.

        Returns
        -------
        str
        """
        n_img = self.table["image"].nunique()
        none = int((self.table["face"] < 0).sum())
        text = (f"{self.system}: {len(self.table) - none:,} faces in {n_img:,} images read "
                f"from {self.source}; no face found in {none:,} images")
        if len(self.drops):
            text += f". {self.drops.summary()}"
        return text + "."


def check_prediction_table(table: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Checks shared by the prediction importers.

    Numbers finite and in their documented range (:data:`RANGES`, ``p_*`` in [0, 1]),
    ``gender`` in :data:`GENDERS`, ``age_low <= age_high`` (years), boxes with ``x2 > x1``
    and ``y2 > y1``, no image listing a face twice. Fills missing standard columns and
    ``p_female`` from ``gender`` and ``gender_confidence`` when only those are given.

    Parameters
    ----------
    table : DataFrame
        Predictions as read, optionally with a ``where`` column (line or JSON path).
    source : str
        The file or folder they came from.

    Returns
    -------
    DataFrame
        The checked table with every column of :data:`PREDICTION_COLUMNS`.

    Raises
    ------
    facelab.core.validation.InputError
        A bad value, named by its file and line/row (with ``errors="raise"``).
    """
    t = table.copy()
    if "where" not in t:
        t["where"] = [f"row {i}" for i in range(len(t))]
    wheres = t["where"].astype(str).tolist()
    t["face"] = t.get("face", pd.Series(0, index=t.index)).fillna(0)
    for col in t.columns:
        if col in RANGES or (col.startswith("p_") and col != "p_"):
            low, high = RANGES.get(col, (0.0, 1.0))
            raw = t[col].tolist()
            present = np.array([v is not None and not (isinstance(v, float) and np.isnan(v))
                                and str(v) != "" for v in raw])
            vals = np.full(len(t), np.nan)
            if present.any():
                idx = np.flatnonzero(present)
                num, _ = check_numeric([raw[i] for i in idx], source=source, column=col,
                                       wheres=[wheres[i] for i in idx])
                bad = (num < low) | (num > high)
                if bad.any():
                    j = idx[np.flatnonzero(bad)[0]]
                    raise InputError(source, f"{col} {raw[j]!r} is outside the documented "
                                             f"range [{low:g}, {high:g}]", wheres[j])
                vals[idx] = num
            t[col] = vals
    for col in PREDICTION_COLUMNS:
        if col not in t:
            t[col] = pd.NA if col in ("gender", "expression") else np.nan
    raw_g = t["gender"].astype("string").str.strip().replace("", pd.NA)
    g = raw_g.map(normalise_gender).astype("string")
    bad = raw_g.notna() & g.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(source, f"gender {t['gender'].iloc[i]!r} is not one of {GENDERS}",
                         wheres[i])
    t["gender"] = g
    if t["p_female"].isna().all() and t["gender_confidence"].notna().any():
        fem = (t["gender"] == "female").fillna(False).to_numpy(dtype=bool)
        mal = (t["gender"] == "male").fillna(False).to_numpy(dtype=bool)
        conf = t["gender_confidence"].to_numpy(dtype=float)
        t["p_female"] = np.where(fem, conf, np.where(mal, 1.0 - conf, np.nan))
    bad = (t["age_low"] > t["age_high"]).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(source, "age_low is above age_high", wheres[i])
    mid = (t["age_low"] + t["age_high"]) / 2.0
    t["age"] = t["age"].where(t["age"].notna(), mid)
    for a, b in (("box_x1", "box_x2"), ("box_y1", "box_y2")):
        bad = (t[b] <= t[a]).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(source, f"{b} must be greater than {a}", wheres[i])
    t["face"] = pd.to_numeric(t["face"], errors="coerce")
    dup = t.duplicated(["image", "face"]).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise InputError(source, f"image {t['image'].iloc[i]!r} lists face "
                                 f"{int(t['face'].iloc[i])} twice", wheres[i])
    t["expression"] = t["expression"].astype("string")
    return t


def read_predictions(path: str | os.PathLike, *, system: str = "") -> ImportedPredictions:
    """Read a per-face predictions CSV (layout in the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    system : str
        Name of the system shown in reports (default: the file name).

    Returns
    -------
    ImportedPredictions
        One row per (image, face) (``face == -1``: no face found in that image).

    Raises
    ------
    InputError
        No ``image`` column, non-numeric or non-finite numbers, values outside their
        documented range, unknown gender labels, inverted boxes or age ranges, a face
        listed twice, naming the file and line.
    """
    src = str(path)
    frame, wheres = read_table(path)
    check_columns(frame, ["image"], source=src)
    frame = frame.replace("", np.nan)
    frame["face"] = frame["face"].fillna(-1) if "face" in frame else 0
    frame["where"] = wheres
    table = check_prediction_table(frame, source=src)
    return ImportedPredictions(table, src, Drops(src), system=system)


def write_predictions(predictions: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a predictions table as CSV (floats at full precision).

    Parameters
    ----------
    predictions : DataFrame
        A predictions table (``where``, ``image_width`` and ``image_height`` are left out).
    path : str or os.PathLike
        The CSV to write (folders are created).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    cols = [c for c in predictions.columns if c not in ("where", "image_width", "image_height")]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictions[cols].to_csv(path, index=False, float_format=lambda v: repr(float(v)))
    return path


def predictions_from_features(features: pd.DataFrame, image_ids) -> pd.DataFrame:
    """facelab's own outputs (a :func:`facelab.extract` features table with heads
    ``"attributes"`` and/or ``"expression"``) as a predictions table (one row per face,
    ``face == -1`` where no face was found), with ``image_width``/``image_height`` for
    the exporters that write boxes as ratios. ``image_ids`` names each row's image."""
    rows = []
    for image, r in zip(image_ids, features.to_dict(orient="records"), strict=True):
        if r.get("status") != "ok" or r.get("box") is None:
            rows.append({"image": str(image), "face": -1})
            continue
        x1, y1, x2, y2 = (float(v) for v in r["box"])
        row = {"image": str(image), "face": int(r.get("face_index", 0) or 0),
               "box_x1": x1, "box_y1": y1, "box_x2": x2, "box_y2": y2,
               "detection_score": float(r["score"]),
               "image_width": float(r["image_width"]), "image_height": float(r["image_height"])}
        if isinstance(r.get("pred_gender"), str):
            row.update(gender=r["pred_gender"], gender_confidence=r["pred_gender_confidence"],
                       p_female=r["pred_p_female"])
        for k in ("age", "age_low", "age_high"):
            if f"pred_{k}" in r:
                row[k] = r[f"pred_{k}"]
        if isinstance(r.get("expr_label"), str):
            row["expression"] = r["expr_label"]
            for k, v in r.items():
                if k.startswith("expr_") and k != "expr_label":
                    row[f"p_{k[5:]}"] = v
            row["expression_confidence"] = row.get(f"p_{r['expr_label']}", np.nan)
        rows.append(row)
    return pd.DataFrame(rows)
