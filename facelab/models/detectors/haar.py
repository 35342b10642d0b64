"""OpenCV Haar cascade (Viola-Jones 2001): a deliberately weak baseline detector.

It gives no landmarks (``Face.landmarks`` is ``None``; alignment falls back to a box crop)
and its score is not a probability: OpenCV's ``detectMultiScale3`` returns, per grouped
detection, the weight sum of the cascade's last stage minus that stage's threshold (a
margin, > 0 for windows that passed). facelab reports ``score = 1 / (1 + exp(-margin))``
so that it lies in [0, 1] and 0.5 means "on the last stage's boundary". Use it for
ranking, never as a calibrated confidence.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelab.core.types import Detector, Face
from facelab.models.registry import register_model

CASCADE = "data/haarcascade_frontalface_default.xml"


class HaarDetector(Detector):
    """OpenCV frontal-face Haar cascade.

    Parameters
    ----------
    score_threshold
        Minimum mapped score kept (default 0: keep every grouped detection, as OpenCV does).
    scale_factor, min_neighbors, min_size
        ``detectMultiScale`` parameters (defaults 1.1, 5, 30 px: OpenCV tutorial values).
    cascade
        Cascade file name in ``cv2.data.haarcascades``.
    """

    name = "haar"

    def __init__(self, score_threshold: float = 0.0, scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 30,
                 cascade: str = "haarcascade_frontalface_default.xml"):
        self.score_threshold = float(score_threshold)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        path = Path(cv2.data.haarcascades) / cascade
        self._net = cv2.CascadeClassifier(str(path))
        if self._net.empty():
            raise FileNotFoundError(f"Haar cascade {path} could not be loaded")

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
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        rects, _, weights = self._net.detectMultiScale3(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        faces = []
        for (x, y, w, h), margin in zip(np.reshape(rects, (-1, 4)),
                                        np.reshape(weights, -1), strict=True):
            score = float(1.0 / (1.0 + np.exp(-float(margin))))
            if score >= self.score_threshold:
                faces.append(Face(box=[x, y, x + w, y + h], score=score, landmarks=None,
                                  detector=self.name, extra={"stage_margin": float(margin)}))
        return sorted(faces, key=lambda f: -f.score)


@register_model(
    "haar", kind="detector",
    description="OpenCV Haar cascade frontalface_default: a deliberately weak baseline",
    output="box xyxy, score in [0, 1] (logistic of the last stage's margin, uncalibrated), "
           "no landmarks",
    input_size="any (grey; sliding window from 30 px)",
    package="cv2", weights=CASCADE,
    licence="Intel License Agreement (BSD-style, in the cascade file) / Apache-2.0 (OpenCV)",
)
def create_haar(**options) -> HaarDetector:
    """The registered factory of :class:`HaarDetector`.

    Parameters
    ----------
    **options
        Passed to :class:`HaarDetector` (its constructor's parameters).

    Returns
    -------
    HaarDetector
    """
    return HaarDetector(**options)
