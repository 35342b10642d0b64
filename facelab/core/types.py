"""Shared value types and the output contracts every model family follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["Face", "Detector", "FaceHead", "Embedder", "LANDMARK_NAMES", "APPEARANCE_NOTE"]

#: Order of the five landmarks, in image coordinates (left = smaller x), as YuNet,
#: MTCNN and the ArcFace/SFace alignment template use them.
LANDMARK_NAMES: tuple[str, ...] = (
    "eye_left", "eye_right", "nose", "mouth_left", "mouth_right",
)

#: Carried by every record that shows an emotion or gender label.
APPEARANCE_NOTE = (
    "Expression and gender labels describe how a face looks in this image (its "
    "appearance), not a person's inner emotional state or their gender identity."
)


@dataclass
class Face:
    """One detected face.

    Attributes
    ----------
    box
        ``[x1, y1, x2, y2]`` in the original image's pixels (float).
    score
        Detection confidence in [0, 1].
    landmarks
        ``(5, 2)`` array of ``(x, y)`` in :data:`LANDMARK_NAMES` order, or ``None`` when
        the detector gives none.
    detector
        Name of the registered detector that produced it.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None
    detector: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def to_dict(self) -> dict:
        """JSON-ready dict with stable field names."""
        out = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(self.score, 4),
            "landmarks": None,
            "detector": self.detector,
        }
        if self.landmarks is not None:
            out["landmarks"] = {
                n: [round(float(x), 2), round(float(y), 2)]
                for n, (x, y) in zip(LANDMARK_NAMES, self.landmarks, strict=True)
            }
        return out


@runtime_checkable
class Detector(Protocol):
    """Finds faces. Every detector returns boxes in original pixels and scores in [0, 1]."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]: ...


@runtime_checkable
class FaceHead(Protocol):
    """Anything computed per face from an image and its detected faces
    (expression, attributes). Returns one DataFrame row per face, in order."""

    name: str

    def predict(self, image: np.ndarray, faces: Sequence[Face]) -> pd.DataFrame: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns faces into fixed-length vectors; ``similarity`` is higher for more alike."""

    name: str
    dim: int

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray: ...

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...
