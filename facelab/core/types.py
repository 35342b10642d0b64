"""Shared value types and the output contracts every model family follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["Face", "Detector", "FaceHead", "BatchFaceHead", "CropClassifier", "Embedder",
           "BatchEmbedder", "LANDMARK_NAMES", "APPEARANCE_NOTE", "box_areas",
           "largest_box_index", "largest_face"]

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
        """JSON-ready dict with stable field names.

        Returns
        -------
        dict
            ``box`` (4 floats, pixels, 2 decimals), ``score`` (4 decimals), ``landmarks``
            (``{name: [x, y]}`` in :data:`LANDMARK_NAMES` order, or None) and ``detector``.
        """
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

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one ``(H, W, 3)`` uint8 RGB image, highest score first.

        Parameters
        ----------
        image
            The image.

        Returns
        -------
        list of Face
            Boxes in the image's pixels.
        """
        ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """:meth:`detect` for several images. The default (inherited by detectors that
        subclass :class:`Detector`) calls :meth:`detect` on each image in turn; a model
        with a real batch API overrides it.

        Parameters
        ----------
        images
            ``(H, W, 3)`` uint8 RGB images (sizes may differ).

        Returns
        -------
        list of list of Face
            One list per image, in order.
        """
        return [self.detect(im) for im in images]


@runtime_checkable
class FaceHead(Protocol):
    """Anything computed per face from an image and its detected faces
    (expression, attributes). Returns one DataFrame row per face, in order."""

    name: str

    def predict(self, image: np.ndarray, faces: Sequence[Face]) -> pd.DataFrame:
        """Outputs for the given faces of one image.

        Parameters
        ----------
        image
            ``(H, W, 3)`` uint8 RGB.
        faces
            Faces of ``image`` (boxes and landmarks in its pixels).

        Returns
        -------
        pandas.DataFrame
            One row per face, in order.
        """
        ...


@runtime_checkable
class BatchFaceHead(FaceHead, Protocol):
    """A face head that also takes several images in one call (one DataFrame per image)."""

    def predict_batch(self, images: Sequence[np.ndarray],
                      faces: Sequence[Sequence[Face]]) -> list[pd.DataFrame]:
        """:meth:`predict` for several images.

        Parameters
        ----------
        images
            ``(H, W, 3)`` uint8 RGB images.
        faces
            The faces of each image.

        Returns
        -------
        list of pandas.DataFrame
            One frame per image (one row per face).
        """
        ...


@runtime_checkable
class CropClassifier(Protocol):
    """A classifier that runs on aligned face crops: ``crops`` cuts them out of an image,
    ``predict_crops`` maps ``(n, h, w)`` (or ``(n, h, w, 3)``) uint8 crops to ``(n,
    len(labels))`` float32 probabilities in ``labels`` order. Crops of many images can be
    classified in one call (the extraction pipeline does so)."""

    labels: Sequence[str]

    def crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Aligned crops of ``faces``, as the model sees them.

        Parameters
        ----------
        image
            ``(H, W, 3)`` uint8 RGB.
        faces
            Faces of ``image``.

        Returns
        -------
        numpy.ndarray
            ``(n, h, w)`` or ``(n, h, w, 3)`` uint8.
        """
        ...

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities of crops.

        Parameters
        ----------
        crops
            ``(n, h, w)`` or ``(n, h, w, 3)`` uint8 crops (of one or many images).

        Returns
        -------
        numpy.ndarray
            ``(n, len(labels))`` float32 probabilities in ``labels`` order.
        """
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns faces into fixed-length vectors; ``similarity`` is higher for more alike.

    Attributes
    ----------
    dim
        Length of an embedding (``embed`` returns ``(n_faces, dim)`` float32).
    metric
        ``"cosine"`` (vectors L2-normalised, similarity = dot product in [-1, 1]) or
        ``"euclidean"`` (similarity = ``1 - distance``).
    default_threshold
        The model's published same-person threshold on ``similarity``; the sentence in
        ``threshold_source`` says where it comes from.
    """

    name: str
    dim: int
    metric: str
    default_threshold: float
    threshold_source: str

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Embeddings of the given faces of one image.

        Parameters
        ----------
        image
            ``(H, W, 3)`` uint8 RGB.
        faces
            Faces of ``image``.

        Returns
        -------
        numpy.ndarray
            ``(len(faces), dim)`` float32 (e.g. ``(n, 128)`` for SFace).
        """
        ...

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Similarity of embeddings (higher = more alike).

        Parameters
        ----------
        a, b
            ``(dim,)`` or ``(n, dim)`` float32 embeddings of this model.

        Returns
        -------
        numpy.ndarray
            The similarities (``metric``; a 0-d array for two vectors).
        """
        ...


@runtime_checkable
class BatchEmbedder(Embedder, Protocol):
    """An embedder that also embeds the faces of several images in one forward pass."""

    def embed_batch(self, images: Sequence[np.ndarray],
                    faces_per_image: Sequence[Sequence[Face]]) -> list[np.ndarray]:
        """:meth:`embed` for several images in one forward pass.

        Parameters
        ----------
        images
            ``(H, W, 3)`` uint8 RGB images.
        faces_per_image
            The faces of each image.

        Returns
        -------
        list of numpy.ndarray
            One ``(n_i, dim)`` float32 array per image.
        """
        ...


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``[x1, y1, x2, y2]`` boxes.

    Parameters
    ----------
    boxes
        ``(n, 4)`` boxes in pixels (any float dtype).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64 areas in square pixels; a box with a negative side has area 0,
        a box with a NaN coordinate has area NaN.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def largest_box_index(boxes: np.ndarray) -> int | None:
    """Index of the largest box, the rule every part of facelab uses to pick "the" face of
    an image (the first one on a tie; NaN areas never win).

    Parameters
    ----------
    boxes
        ``(n, 4)`` ``[x1, y1, x2, y2]`` boxes in pixels.

    Returns
    -------
    int or None
        The index, or ``None`` for no boxes.
    """
    area = box_areas(boxes)
    if area.size == 0:
        return None
    return int(np.argmax(np.nan_to_num(area, nan=-1.0)))


def largest_face(faces: Sequence[Face]) -> Face | None:
    """The face with the largest box (:func:`largest_box_index`).

    Parameters
    ----------
    faces
        Detected faces (boxes in pixels).

    Returns
    -------
    Face or None
        The largest face (the first one on a tie), or ``None`` if there are none.
    """
    faces = list(faces)
    if not faces:
        return None
    return faces[largest_box_index(np.stack([f.box for f in faces]))]
