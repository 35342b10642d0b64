"""dlib's HOG + linear SVM frontal face detector (``dlib.get_frontal_face_detector``).

Landmarks: **none** (``Face.landmarks`` is ``None``). dlib's 5-point shape predictor
gives eye corners and the base of the nose, not the mouth corners of facelab's
five-point contract, and the 68-point predictor that has them is trained on iBUG 300-W
data (not for commercial use); alignment therefore falls back to a box crop, and the
dlib-chip alignment (:func:`facelab.face.align.dlib_chip`) runs the 5-point predictor itself.

Score: dlib returns the SVM margin of each window (``run(img, upsample, adjust_threshold)``;
dlib's own decision threshold is 0). facelab reports ``score = 1 / (1 + exp(-margin))``, so
dlib's default threshold maps to 0.5 and the score lies in [0, 1]. It is a monotone
re-scaling for ranking, not a calibrated probability.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from facelab.core.types import Detector, Face
from facelab.models.registry import register_model


@lru_cache(maxsize=1)
def _hog():
    import dlib

    return dlib.get_frontal_face_detector()


class DlibHOGDetector(Detector):
    """dlib HOG detector.

    Parameters
    ----------
    upsample
        Times the image is doubled before scanning (1 finds faces down to ~40 px; dlib and
        face_recognition default 1).
    adjust_threshold
        SVM margin threshold (dlib default 0.0, i.e. ``score >= 0.5``); lower finds more.
    """

    name = "dlib-hog"

    def __init__(self, upsample: int = 1, adjust_threshold: float = 0.0):
        self.upsample = int(upsample)
        self.adjust_threshold = float(adjust_threshold)
        self._net = _hog()

    @property
    def score_threshold(self) -> float:
        """``adjust_threshold`` expressed on the [0, 1] score scale."""
        return float(1.0 / (1.0 + np.exp(-self.adjust_threshold)))

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB uint8 image, highest score first.

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8.

        Returns
        -------
        list of Face
            Boxes ``[x1, y1, x2, y2]`` in pixels of ``image``, scores in [0, 1], landmarks
            ``(5, 2)`` pixels when the detector gives them; empty when no face is found.
        """
        h, w = image.shape[:2]
        rects, margins, _ = self._net.run(np.ascontiguousarray(image), self.upsample,
                                          self.adjust_threshold)
        faces = []
        for r, m in zip(rects, margins, strict=True):
            box = np.clip([r.left(), r.top(), r.right() + 1, r.bottom() + 1], 0, [w, h, w, h])
            faces.append(Face(box=box, score=float(1.0 / (1.0 + np.exp(-m))), landmarks=None,
                              detector=self.name, extra={"svm_margin": float(m)}))
        return sorted(faces, key=lambda f: -f.score)


@register_model(
    "dlib-hog", kind="detector",
    description="dlib HOG + linear SVM frontal face detector",
    output="box xyxy, score in [0, 1] (logistic of the SVM margin), no landmarks",
    input_size="any (upsampled once; faces from ~40 px)",
    package="dlib", weights="<built into dlib>",
    licence="Boost Software License (dlib code and built-in HOG model)",
)
def create_dlib_hog(**options) -> DlibHOGDetector:
    """The registered factory of :class:`DlibHOGDetector`.

    Parameters
    ----------
    **options
        Passed to :class:`DlibHOGDetector` (its constructor's parameters).

    Returns
    -------
    DlibHOGDetector
    """
    return DlibHOGDetector(**options)
