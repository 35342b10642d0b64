"""Image quality of a face region: brightness and sharpness, each on a 0-100 scale.

* ``brightness``: mean luma (ITU-R BT.601 grey, as OpenCV's ``RGB2GRAY``) of the pixels
  inside the face box, divided by 255 and times 100. 0 = black, 100 = white; well-exposed
  faces typically sit between 30 and 70.
* ``sharpness``: the variance of the Laplacian (Pech-Pacheco et al. 2000) of the face,
  measured on a square box crop resized to 112x112 grey so that it does not depend on the
  face's size in pixels, then mapped to 0-100 by ``100 * v / (v + SHARPNESS_HALF)``.
  ``SHARPNESS_HALF`` (= 100) is the variance that scores 50. The mapping is monotone and
  saturating; it ranks faces by blur and is not calibrated against any recognition
  outcome. Noise also raises the Laplacian's variance, so a noisy face scores "sharp".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from facelab.core.types import Face
from facelab.face.align import box_crop

__all__ = ["Quality", "SHARPNESS_HALF", "SHARPNESS_SIZE", "face_quality", "brightness",
           "laplacian_variance"]

#: Variance of the Laplacian that maps to sharpness 50.
SHARPNESS_HALF = 100.0
#: Side of the grey crop the Laplacian is measured on.
SHARPNESS_SIZE = 112


@dataclass(frozen=True)
class Quality:
    """Brightness and sharpness of a face region, each in [0, 100]."""

    brightness: float
    sharpness: float

    def to_dict(self) -> dict:
        """Brightness and sharpness rounded to 0.1.

        Returns
        -------
        dict
            ``{"brightness": ..., "sharpness": ...}``, each in [0, 100].
        """
        return {k: round(v, 1) for k, v in asdict(self).items()}


def brightness(image: np.ndarray, face: Face) -> float:
    """Mean luma inside the face box, 0-100 (the whole image if the box is empty).

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` RGB uint8 image the face was detected in.
    face : Face
        A detected face (``box`` in pixels of ``image``).

    Returns
    -------
    float
        Mean ITU-R BT.601 luma / 255 x 100: 0 black, 100 white.
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = np.clip(np.round(face.box).astype(int), 0, [w, h, w, h])
    region = image[y1:y2, x1:x2] if (x2 > x1 and y2 > y1) else image
    grey = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY)
    return float(grey.mean() / 255.0 * 100.0)


def laplacian_variance(image: np.ndarray, face: Face) -> float:
    """Variance of the Laplacian of the face's 112x112 grey box crop.

    Pech-Pacheco et al. 2000, "Diatom autofocusing in brightfield microscopy".

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` RGB uint8 image the face was detected in.
    face : Face
        A detected face (``box`` in pixels of ``image``).

    Returns
    -------
    float
        Variance of ``cv2.Laplacian`` (float64) over the crop; higher is sharper (or noisier).
    """
    crop = box_crop(image, face, SHARPNESS_SIZE)
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def face_quality(image: np.ndarray, face: Face) -> Quality:
    """:class:`Quality` of one face in an RGB uint8 image.

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` RGB uint8 image the face was detected in.
    face : Face
        A detected face (``box`` in pixels of ``image``).

    Returns
    -------
    Quality
        ``brightness`` and ``sharpness`` in [0, 100] (see the module docstring).
    """
    v = laplacian_variance(image, face)
    return Quality(brightness=brightness(image, face),
                   sharpness=float(100.0 * v / (v + SHARPNESS_HALF)))
