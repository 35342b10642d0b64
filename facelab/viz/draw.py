"""Annotated images: boxes, landmarks and each face's top labels, drawn with OpenCV."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facelab.extraction.analysis import FaceAnalysis

__all__ = ["label_text", "draw_analyses"]

_BOX = (0, 200, 0)          # RGB
_LANDMARK = (255, 60, 60)
_TEXT_BG = (0, 0, 0)
_TEXT = (255, 255, 255)


def label_text(record: FaceAnalysis) -> str:
    """Short caption: face index, detection score, top expression, gender and age range.

    Parts whose model was not run (``None`` or empty) are left out. Expression and gender
    describe the face's appearance (a classifier's label), not inner state or identity.

    Parameters
    ----------
    record : facelab.extraction.analysis.FaceAnalysis
        One analysed face; ``emotions`` sorted descending (the first is shown),
        confidences in [0, 1], ``age`` bounds in years.

    Returns
    -------
    str
        E.g. ``"#0 0.93 | happy 0.81 | female 0.97 | age 25-38"`` (parts joined by
        ``" | "``; confidences to 2 decimals, age range rounded to whole years).
    """
    parts = [f"#{record.face_index} {record.confidence:.2f}"]
    if record.emotions:
        top = record.emotions[0]
        parts.append(f"{top['type']} {top['confidence']:.2f}")
    if record.gender:
        parts.append(f"{record.gender['value']} {record.gender['confidence']:.2f}")
    if record.age:
        parts.append(f"age {record.age['low']:.0f}-{record.age['high']:.0f}")
    return " | ".join(parts)


def draw_analyses(image: np.ndarray, records: Sequence[FaceAnalysis]) -> np.ndarray:
    """A copy of RGB ``image`` with every record's box, landmarks and caption drawn on it.

    Boxes are green, landmarks red dots, captions (:func:`label_text`) white on black
    above the box (below it when there is no room above), kept inside the image. Line
    thickness and font scale grow with the image size (``max(h, w) / 400`` pixels and
    ``max(0.35, max(h, w) / 1200)``). Drawn with OpenCV; ``image`` is not modified.

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3) uint8`` RGB image.
    records : sequence of facelab.extraction.analysis.FaceAnalysis
        Faces of this image: ``box`` ``(4,)`` ``x1, y1, x2, y2`` and ``landmarks``
        ``(5, 2)`` (or ``None``) in pixels of ``image``.

    Returns
    -------
    numpy.ndarray
        ``(h, w, 3)`` annotated copy, same dtype as ``image`` (C-contiguous).
    """
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 400))
    scale = max(0.35, max(h, w) / 1200)
    for rec in records:
        x1, y1, x2, y2 = (int(round(v)) for v in rec.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), _BOX, thick, cv2.LINE_8)
        if rec.landmarks is not None:
            for x, y in rec.landmarks:
                cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, _LANDMARK, -1,
                           cv2.LINE_AA)
        text = label_text(rec)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(y2 + th + 4, h - base)
        tx = min(max(x1, 0), max(w - tw, 0))
        cv2.rectangle(out, (tx, ty - th - 2), (tx + tw, ty + base), _TEXT_BG, -1)
        cv2.putText(out, text, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT, 1, cv2.LINE_AA)
    return out
