"""``facelab.analyze(image)``: every face in one image, with everything facelab can say about it.

One :class:`FaceAnalysis` record per detected face, modelled on the face-analysis records
of commercial APIs (box, detection confidence, landmarks, pose, quality, emotions, gender,
age range), built only from registered offline models. Every record carries
:data:`facelab.core.types.APPEARANCE_NOTE`: expression and gender labels describe how a face
looks, not what a person feels or their gender identity.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.io import ImageSource, load_image
from facelab.core.types import APPEARANCE_NOTE, LANDMARK_NAMES, Face
from facelab.face.pose import face_pose
from facelab.face.quality import face_quality
from facelab.models.registry import get_model

__all__ = ["FaceAnalysis", "analyze", "SCHEMA_VERSION"]

#: Bumped whenever a field of :meth:`FaceAnalysis.to_dict` changes name or meaning.
SCHEMA_VERSION = 1

@dataclass
class FaceAnalysis:
    """Everything facelab reports about one face.

    :meth:`to_dict` gives the stable JSON schema (``schema_version`` 1)::

        {
          "face_index": 0,                      # order in the image (detector's ranking)
          "box": [x1, y1, x2, y2],              # original image pixels
          "confidence": 0.93,                   # detection score in [0, 1]
          "landmarks": {"eye_left": [x, y], "eye_right": [x, y], "nose": [x, y],
                        "mouth_left": [x, y], "mouth_right": [x, y]} | null,
          "pose": {"yaw": deg, "pitch": deg, "roll": deg} | null,     # facelab.face.pose
          "quality": {"brightness": 0-100, "sharpness": 0-100},       # facelab.face.quality
          "emotions": [{"type": "happy", "confidence": 0.81}, ...] | null,  # all labels,
                                                                      # sorted descending
          "gender": {"value": "female" | "male", "confidence": 0.97} | null,
          "age": {"estimate": 31.2, "low": 25.0, "high": 38.0} | null,
          "models": {"detector": "yunet", "expression": "fer-mini-xception" | null,
                     "attributes": "age-gender" | null},
          "note": APPEARANCE_NOTE,
          "schema_version": 1
        }

    Confidences are probabilities in [0, 1] (not percentages). ``null`` means the part
    was not computed (no model requested, or no landmarks for pose).
    """

    face_index: int
    box: np.ndarray
    confidence: float
    landmarks: np.ndarray | None
    pose: dict[str, float] | None
    quality: dict[str, float]
    emotions: list[dict[str, Any]] | None = None
    gender: dict[str, Any] | None = None
    age: dict[str, float] | None = None
    models: dict[str, str | None] = field(default_factory=dict)
    note: str = APPEARANCE_NOTE

    @property
    def top_emotion(self) -> str | None:
        """The most likely expression label, or ``None``."""
        return self.emotions[0]["type"] if self.emotions else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with stable field names (see the class docstring).

        Returns
        -------
        dict
            ``face_index``, ``box`` (``[x1, y1, x2, y2]`` pixels, 2 decimals),
            ``confidence`` (4 decimals), ``landmarks`` (``{name: [x, y]}`` pixels, 2
            decimals, or ``None``) and the head outputs, as listed in the class docstring.
        """
        lm = None
        if self.landmarks is not None:
            lm = {n: [round(float(x), 2), round(float(y), 2)]
                  for n, (x, y) in zip(LANDMARK_NAMES, self.landmarks, strict=True)}
        return {
            "face_index": int(self.face_index),
            "box": [round(float(v), 2) for v in self.box],
            "confidence": round(float(self.confidence), 4),
            "landmarks": lm,
            "pose": self.pose,
            "quality": self.quality,
            "emotions": self.emotions,
            "gender": self.gender,
            "age": self.age,
            "models": dict(self.models),
            "note": self.note,
            "schema_version": SCHEMA_VERSION,
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string.

        Parameters
        ----------
        **kwargs
            Passed to :func:`json.dumps` (e.g. ``indent=2``).

        Returns
        -------
        str
            The JSON text.
        """
        return json.dumps(self.to_dict(), **kwargs)


def _model(model: Any, kind: str) -> tuple[Any, str | None]:
    """A model instance and its name from a registered name, an instance or ``None``."""
    if model is None:
        return None, None
    if not isinstance(model, str):
        return model, getattr(model, "name", type(model).__name__)
    return get_model(model, kind), model


def _labels(model: Any, frame: pd.DataFrame) -> list[str]:
    spec = getattr(model, "spec", None)
    labels = getattr(spec, "labels", None) or getattr(model, "labels", None)
    return [str(c) for c in (labels or frame.columns)]


def _emotions(row: pd.Series, labels: Sequence[str]) -> list[dict[str, Any]]:
    pairs = [(lab, float(row[lab])) for lab in labels]
    pairs.sort(key=lambda p: (-p[1], p[0]))
    return [{"type": lab, "confidence": round(p, 4)} for lab, p in pairs]


def _attributes(row: pd.Series) -> tuple[dict[str, Any] | None, dict[str, float] | None]:
    gender = age = None
    if "gender" in row and pd.notna(row["gender"]):
        gender = {"value": str(row["gender"]),
                  "confidence": round(float(row.get("gender_confidence", np.nan)), 4)}
    if "age" in row and pd.notna(row["age"]):
        age = {"estimate": round(float(row["age"]), 1),
               "low": round(float(row.get("age_low", row["age"])), 1),
               "high": round(float(row.get("age_high", row["age"])), 1)}
    return gender, age


def _check_rows(frame: pd.DataFrame, n: int, name: str | None) -> pd.DataFrame:
    if len(frame) != n:
        raise RuntimeError(f"model {name!r} returned {len(frame)} rows for {n} faces")
    return frame.reset_index(drop=True)


def analyze(image: ImageSource, *, detector: Any = "yunet",
            expression: Any = "fer-mini-xception", attributes: Any = "age-gender",
            min_score: float | None = None) -> list[FaceAnalysis]:
    """Detect every face in ``image`` and describe each one.

    Parameters
    ----------
    image
        Anything :func:`facelab.core.io.load_image` accepts (path, bytes, PIL image, array).
    detector
        Registered detector name (or a detector instance). Default ``"yunet"``.
    expression
        Registered expression model name, an instance, or ``None`` to skip emotions.
    attributes
        Registered attribute model name (gender and age), an instance, or ``None``.
    min_score
        Drop faces whose detection score is below this (``None``: the detector's own
        threshold decides).

    Returns
    -------
    list of FaceAnalysis
        One record per face, in the detector's order (highest score first); empty if no
        face is found.

    Raises
    ------
    facelab.core.io.ImageError
        If the image cannot be loaded. Models are built once per name and reused.
    """
    rgb = load_image(image)
    det, det_name = _model(detector, "detector")
    if det is None:
        raise ValueError("analyze needs a detector")
    faces: list[Face] = det.detect(rgb)
    if min_score is not None:
        faces = [f for f in faces if f.score >= float(min_score)]
    expr, expr_name = _model(expression, "expression")
    attr, attr_name = _model(attributes, "attribute")
    emo_frame = attr_frame = None
    if faces and expr is not None:
        emo_frame = _check_rows(expr.predict(rgb, faces), len(faces), expr_name)
        emo_labels = _labels(expr, emo_frame)
    if faces and attr is not None:
        attr_frame = _check_rows(attr.predict(rgb, faces), len(faces), attr_name)
    models = {"detector": det_name, "expression": expr_name, "attributes": attr_name}
    records = []
    for i, face in enumerate(faces):
        pose = face_pose(face)
        gender, age = _attributes(attr_frame.iloc[i]) if attr_frame is not None else (None, None)
        records.append(FaceAnalysis(
            face_index=i, box=face.box.copy(), confidence=face.score,
            landmarks=None if face.landmarks is None else face.landmarks.copy(),
            pose=None if pose is None else pose.to_dict(),
            quality=face_quality(rgb, face).to_dict(),
            emotions=(_emotions(emo_frame.iloc[i], emo_labels)
                      if emo_frame is not None else None),
            gender=gender, age=age, models=dict(models)))
    return records
