"""Your own ONNX model, described by a small YAML *model card*: no code needed.

Two generic adapters: an ONNX face **embedder** and an ONNX face **classifier**
(expression labels, or gender labels for the attribute audit). A card says how the
model wants its input and what its output means::

    # my_embedder.yaml (paths relative to the card's folder)
    name: acme-arcface           # registry name
    kind: embedder               # embedder | expression | attribute (gender)
    onnx: acme_arcface.onnx
    input_size: 112              # square side in pixels
    colour: rgb                  # rgb | bgr | grey
    layout: nchw                 # nchw | nhwc
    mean: [127.5, 127.5, 127.5]  # x = (pixel - mean) / std, pixels in 0..255
    std: [128.0, 128.0, 128.0]
    crop: arcface                # arcface: five-point alignment template | box: box crop
    margin: 0.0                  # extra context around the face
    similarity: cosine           # embedder: cosine | euclidean (1 - distance)
    threshold: 0.30              # embedder: the vendor's same-person threshold ...
    threshold_source: "vendor documentation, tuned on LFW"   # ... and where it comes from
    # classifier instead: labels in output order, and whether outputs are probabilities
    # labels: [angry, disgust, fear, happy, sad, surprise, neutral]
    # output: logits             # logits (softmax applied) | probabilities
    description: ACME face embedder v2
    licence: proprietary, evaluation licence

Register it with :func:`register_card` (or give the card's path wherever a model name is
taken: ``facelab audit 02 -p embedders '[sface, my_embedder.yaml]'``), then use it like a
built-in model. The card and the ONNX file are checksummed into provenance and the
feature cache key, so editing either recomputes features. Inference runs on
:mod:`onnxruntime` (CPU).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from scipy.special import softmax

from facelab.core.types import Face
from facelab.data.schema import normalise_expression, normalise_gender
from facelab.face.align import align_faces, box_crop
from facelab.models.embedders.base import BaseEmbedder
from facelab.models.registry import set_card_loader

__all__ = ["ModelCard", "CardError", "load_card", "register_card", "create_from_card",
           "OnnxEmbedder", "OnnxClassifier", "OnnxGenderClassifier", "CARD_KINDS"]

CARD_KINDS: tuple[str, ...] = ("embedder", "expression", "attribute")
_FIELDS = {"name", "kind", "onnx", "input_size", "colour", "color", "layout", "mean", "std",
           "crop", "margin", "similarity", "threshold", "threshold_source", "labels", "output",
           "description", "licence", "license", "source", "input", "batch_size"}
_CARDS: dict[str, str] = {}  # registered name -> digest of (card path, card text)


class CardError(ValueError):
    """A model card is malformed; the message names the card file and the field."""


@dataclass(frozen=True)
class ModelCard:
    """A parsed, checked model card (see the module docstring for the fields)."""

    path: Path
    name: str
    kind: str
    onnx: Path
    input_size: int
    colour: str = "rgb"
    layout: str = "nchw"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    crop: str = "arcface"
    margin: float = 0.0
    similarity: str = "cosine"
    threshold: float | None = None
    threshold_source: str = ""
    labels: tuple[str, ...] = ()
    output: str = "probabilities"
    description: str = ""
    licence: str = "stated by the model's provider (see the card)"
    source: str = ""
    input: str | None = None
    batch_size: int = 32

    @property
    def channels(self) -> int:
        return 1 if self.colour == "grey" else 3


def _choice(path: Path, raw: dict, key: str, options: Sequence[str], default: str) -> str:
    value = str(raw.get(key, default)).lower()
    if value not in options:
        raise CardError(f"{path}: {key} must be one of {', '.join(options)}; got {value!r}")
    return value


def _floats(path: Path, raw: dict, key: str, default: float, channels: int
            ) -> tuple[float, ...]:
    value = raw.get(key, default)
    values = value if isinstance(value, list | tuple) else [value]
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise CardError(f"{path}: {key} must be a number or a list of numbers; "
                        f"got {value!r}") from None
    if len(out) not in (1, channels) or not all(np.isfinite(out)):
        raise CardError(f"{path}: {key} needs 1 or {channels} finite numbers; got {value!r}")
    if key == "std" and any(v == 0 for v in out):
        raise CardError(f"{path}: std must not be 0; got {value!r}")
    return out


def load_card(path: str | Path) -> ModelCard:
    """Read and check a model card.

    Parameters
    ----------
    path : str or pathlib.Path
        The card (YAML; fields in ``docs/models.md``).

    Returns
    -------
    ModelCard
        The checked card, with the ONNX file's absolute path.

    Raises
    ------
    CardError
        The file is not YAML, a required field is missing, a value is out of its domain,
        or the ONNX file does not exist; the message names the card and the field.
    """
    import yaml

    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise CardError(f"model card {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CardError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise CardError(f"{path}: a model card is a mapping of fields; got {type(raw).__name__}")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise CardError(f"{path}: unknown fields {sorted(unknown)}; fields are "
                        f"{', '.join(sorted(_FIELDS - {'color', 'license'}))}")
    for key in ("name", "kind", "onnx", "input_size"):
        if raw.get(key) in (None, ""):
            raise CardError(f"{path}: field {key!r} is required")
    kind = _choice(path, raw, "kind", CARD_KINDS, "embedder")
    onnx = Path(str(raw["onnx"])).expanduser()
    onnx = (onnx if onnx.is_absolute() else path.parent / onnx).resolve()
    if not onnx.is_file():
        raise CardError(f"{path}: onnx file {onnx} does not exist")
    size = raw["input_size"]
    if isinstance(size, list | tuple):
        if len(size) != 2 or size[0] != size[1]:
            raise CardError(f"{path}: input_size must be square (one number or [s, s]); "
                            f"got {size!r}")
        size = size[0]
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise CardError(f"{path}: input_size must be an integer; got {size!r}") from None
    if not 8 <= size <= 1024:
        raise CardError(f"{path}: input_size must be between 8 and 1024; got {size}")
    colour = _choice(path, {"colour": raw.get("colour", raw.get("color", "rgb"))}, "colour",
                     ("rgb", "bgr", "grey", "gray"), "rgb").replace("gray", "grey")
    channels = 1 if colour == "grey" else 3
    labels = tuple(str(v) for v in raw.get("labels") or ())
    threshold = raw.get("threshold")
    if kind == "embedder":
        if threshold is None:
            raise CardError(f"{path}: an embedder card needs 'threshold' (the provider's "
                            "same-person threshold) and 'threshold_source'")
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise CardError(f"{path}: threshold must be a number; got {threshold!r}") from None
    else:
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise CardError(f"{path}: a classifier card needs 'labels': two or more distinct "
                            "names in the model's output order")
        if kind == "expression":

            unknown_labels = [lab for lab in labels if normalise_expression(lab) is pd.NA]
            if unknown_labels:
                raise CardError(f"{path}: expression labels {unknown_labels} are not known "
                                "expressions (see facelab.data.datasets.EXPRESSIONS)")
            labels = tuple(normalise_expression(lab) for lab in labels)
        else:

            genders = tuple(normalise_gender(lab) for lab in labels)
            if sorted(g for g in genders if g is not pd.NA) != ["female", "male"] \
                    or len(labels) != 2:
                raise CardError(f"{path}: an attribute card classifies gender: labels must "
                                f"be female and male in output order; got {list(labels)}")
            labels = genders
    try:
        margin = float(raw.get("margin", 0.0))
        batch = int(raw.get("batch_size", 32))
    except (TypeError, ValueError):
        raise CardError(f"{path}: margin must be a number and batch_size an integer") from None
    return ModelCard(
        path=path, name=str(raw["name"]), kind=kind, onnx=onnx, input_size=size,
        colour=colour, layout=_choice(path, raw, "layout", ("nchw", "nhwc"), "nchw"),
        mean=_floats(path, raw, "mean", 0.0, channels),
        std=_floats(path, raw, "std", 1.0, channels),
        crop=_choice(path, raw, "crop", ("arcface", "box"), "arcface"), margin=margin,
        similarity=_choice(path, raw, "similarity", ("cosine", "euclidean"), "cosine"),
        threshold=threshold,
        threshold_source=str(raw.get("threshold_source") or f"stated in the model card {path}"),
        labels=labels,
        output=_choice(path, raw, "output", ("probabilities", "logits"), "probabilities"),
        description=str(raw.get("description", "")),
        licence=str(raw.get("licence", raw.get("license", ModelCard.licence))),
        source=str(raw.get("source", "")), input=raw.get("input"),
        batch_size=max(1, batch))


class _OnnxFaceModel:
    """Shared by the card adapters: crops, preprocessing and the onnxruntime session."""

    def __init__(self, card: ModelCard | str | Path):
        import onnxruntime as ort

        self.card = card if isinstance(card, ModelCard) else load_card(card)
        self.name = self.card.name
        self.input_size = self.card.input_size
        self.margin = self.card.margin
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session_ = ort.InferenceSession(str(self.card.onnx), opts,
                                             providers=["CPUExecutionProvider"])
        inputs = self.session_.get_inputs()
        names = [i.name for i in inputs]
        if self.card.input is not None and self.card.input not in names:
            raise CardError(f"{self.card.path}: input {self.card.input!r} is not an input of "
                            f"{self.card.onnx.name}; inputs are {names}")
        self.input_name_ = self.card.input or names[0]
        shape = next(i.shape for i in inputs if i.name == self.input_name_)
        self.fixed_batch_ = shape[0] if shape and isinstance(shape[0], int) else None
        want = ([self.card.channels, self.input_size, self.input_size]
                if self.card.layout == "nchw"
                else [self.input_size, self.input_size, self.card.channels])
        dims = list(shape[1:]) if shape else []
        if len(dims) != 3 or any(isinstance(d, int) and d != w
                                 for d, w in zip(dims, want, strict=True)):
            raise CardError(f"{self.card.path}: the card describes input "
                            f"{self.card.layout} {want}, but {self.card.onnx.name} takes "
                            f"{shape}")

    def face_crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """RGB uint8 crops ``(n, s, s, 3)`` of ``faces``, framed as the card says."""
        size = self.input_size
        if self.card.crop == "box":
            if not faces:
                return np.zeros((0, size, size, 3), np.uint8)
            return np.stack([box_crop(image, f, size, margin=self.margin) for f in faces])
        return align_faces(image, faces, size, margin=self.margin)

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """The network input for uint8 crops (``(n, h, w)`` grey or ``(n, h, w, 3)``
        RGB; resized to the input size when needed): colour order, ``(x - mean) / std``
        and layout as the card says. Returns float32."""
        crops = np.asarray(crops)
        if crops.ndim == 2:  # one grey crop
            crops = crops[None]
        if crops.ndim == 3:  # grey crops
            crops = crops[..., None]
        if crops.ndim != 4 or crops.shape[-1] not in (1, 3):
            raise ValueError(f"{self.name}: crops must be (n, h, w) grey or (n, h, w, 3) RGB "
                             f"uint8; got shape {crops.shape}")
        size = self.input_size
        out = []
        for c in crops.astype(np.uint8):
            if c.shape[:2] != (size, size):
                interp = cv2.INTER_AREA if c.shape[0] > size else cv2.INTER_LINEAR
                c = cv2.resize(c, (size, size), interpolation=interp).reshape(size, size, -1)
            if self.card.colour == "grey":
                c = c if c.shape[-1] == 1 else cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)[..., None]
            else:
                c = np.repeat(c, 3, axis=-1) if c.shape[-1] == 1 else c
                c = c[..., ::-1] if self.card.colour == "bgr" else c
            out.append(c)
        x = np.stack(out).astype(np.float32) if out else np.zeros(
            (0, size, size, self.card.channels), np.float32)
        x = (x - np.asarray(self.card.mean, np.float32)) / np.asarray(self.card.std, np.float32)
        if self.card.layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The ONNX model's first output for a preprocessed batch, ``(n, k)`` float32."""
        step = self.fixed_batch_ or self.card.batch_size
        outs = []
        for start in range(0, len(x), step):
            part = x[start:start + step]
            pad = 0
            if self.fixed_batch_ and len(part) < self.fixed_batch_:
                pad = self.fixed_batch_ - len(part)
                part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
            y = np.asarray(self.session_.run(None, {self.input_name_: part})[0], np.float32)
            y = y.reshape(len(part), -1)
            outs.append(y[:len(y) - pad] if pad else y)
        if not outs:
            return np.zeros((0, 0), np.float32)
        return np.concatenate(outs)


class OnnxEmbedder(_OnnxFaceModel, BaseEmbedder):
    """An ONNX face embedder described by a model card (``kind: embedder``).

    Parameters
    ----------
    card : ModelCard, str or pathlib.Path
        The card (or its path); the embedding size is read from one run on a blank crop.
    """

    def __init__(self, card: ModelCard | str | Path):
        _OnnxFaceModel.__init__(self, card)
        self.metric = self.card.similarity
        self.crop_size = self.input_size
        self.default_threshold = float(self.card.threshold)
        self.threshold_source = self.card.threshold_source
        probe = self.run(self.preprocess(np.zeros((1, self.input_size, self.input_size, 3),
                                                  np.uint8)))
        self.dim = int(probe.shape[1])

    def _crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return self.face_crops(image, faces)

    def _embed_crops(self, crops: np.ndarray) -> np.ndarray:
        return self.run(self.preprocess(crops))


class _OnnxLabeller(_OnnxFaceModel):
    """Probabilities over the card's labels."""

    def __init__(self, card: ModelCard | str | Path):
        super().__init__(card)
        self.labels = tuple(self.card.labels)
        self.train_data = self.card.source or "stated by the model's provider"

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(n, len(labels))`` float32 probabilities for uint8 crops (grey or RGB).

        Raises
        ------
        ValueError
            The model's output width is not the number of labels, or its outputs are not
            finite.
        """
        y = self.run(self.preprocess(crops))
        if len(y) and y.shape[1] != len(self.labels):
            raise ValueError(f"{self.card.path}: {self.card.onnx.name} outputs {y.shape[1]} "
                             f"values per face but the card lists {len(self.labels)} labels")
        p = softmax(y, axis=1) if self.card.output == "logits" else y
        if not np.isfinite(p).all():
            raise ValueError(f"{self.card.onnx.name} returned non-finite outputs")
        return np.zeros((0, len(self.labels)), np.float32) if not len(y) \
            else p.astype(np.float32)


class OnnxClassifier(_OnnxLabeller):
    """An ONNX expression classifier described by a model card (``kind: expression``):
    ``crops``/``predict_crops``/``predict`` like the fer model; probabilities over
    :attr:`labels` (how a face looks, not what a person feels)."""

    def crops(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """The model's crops of ``faces`` (RGB uint8).

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8 image the faces were detected in.
        faces : sequence of Face
            Detected faces (pixels).

        Returns
        -------
        numpy.ndarray
            ``(n, s, s, 3)`` RGB uint8 at the card's input size ``s``.
        """
        return self.face_crops(image, list(faces))

    def predict(self, image: np.ndarray, faces: Sequence[Face]) -> pd.DataFrame:
        """One row per face, one probability column per label.

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8 image the faces were detected in.
        faces : sequence of Face
            Detected faces (pixels).

        Returns
        -------
        DataFrame
            ``(len(faces), len(labels))`` float32 probabilities (rows sum to 1).
        """
        return pd.DataFrame(self.predict_crops(self.crops(image, list(faces))),
                            columns=list(self.labels))


class OnnxGenderClassifier(_OnnxLabeller):
    """An ONNX gender classifier (``kind: attribute``, labels female/male in output
    order) with the attribute audit's columns: ``gender`` (appearance),
    ``gender_confidence`` and ``p_female``; no age."""

    def predict(self, image: np.ndarray, faces: Sequence[Face]) -> pd.DataFrame:
        """One row per face: ``gender``, ``gender_confidence``, ``p_female``.

        Parameters
        ----------
        image : numpy.ndarray
            ``(h, w, 3)`` RGB uint8 image the faces were detected in.
        faces : sequence of Face
            Detected faces (pixels).

        Returns
        -------
        DataFrame
            Gender describes appearance, not gender identity; ``p_female`` in [0, 1].
        """
        p = self.predict_crops(self.face_crops(image, list(faces)))
        p_female = p[:, self.labels.index("female")].astype(np.float64)
        is_female = p_female >= 0.5
        return pd.DataFrame({
            "gender": np.where(is_female, "female", "male"),
            "gender_confidence": np.where(is_female, p_female, 1.0 - p_female),
            "p_female": p_female,
        })


def create_from_card(card: ModelCard | str | Path) -> Any:
    """The adapter for a card's kind.

    Parameters
    ----------
    card : ModelCard, str or pathlib.Path
        A card or its path.

    Returns
    -------
    OnnxEmbedder, OnnxClassifier or OnnxGenderClassifier
        The adapter for the card's ``kind``.

    Raises
    ------
    CardError
        For a malformed card.
    """
    card = card if isinstance(card, ModelCard) else load_card(card)
    cls = {"embedder": OnnxEmbedder, "expression": OnnxClassifier,
           "attribute": OnnxGenderClassifier}[card.kind]
    return cls(card)


def _digest(card: ModelCard) -> str:
    h = hashlib.sha256(str(card.path).encode())
    h.update(card.path.read_bytes())
    return h.hexdigest()


def _factory(card: ModelCard):
    def create() -> Any:
        return create_from_card(card)

    create.card_path = card.path  # lets worker processes register the card themselves
    return create


def register_card(path: str | Path | ModelCard, *, override: bool = False) -> str:
    """Register the model a card describes under its ``name``; returns the name.

    Registering the same card file again (unchanged) is a no-op; another model under the
    same name is an error unless ``override=True``.

    Parameters
    ----------
    path : str, pathlib.Path or ModelCard
        The card.
    override : bool
        Replace another model registered under the card's name.

    Returns
    -------
    str
        The registered name.

    Raises
    ------
    CardError
        The card is malformed.
    ValueError
        The name is taken by another model (see :func:`facelab.models.registry.register_model`).
    """
    from facelab.models.registry import _REGISTRY, register_model

    card = path if isinstance(path, ModelCard) else load_card(path)
    digest = _digest(card)
    if _CARDS.get(card.name) == digest and card.name in _REGISTRY:
        return card.name
    if card.kind == "embedder":
        output = f"float32 vector; similarity = {card.similarity}" + (
            " (1 - distance)" if card.similarity == "euclidean" else "")
    elif card.kind == "expression":
        output = f"probabilities over {len(card.labels)} expressions (appearance, not " \
                 "inner state)"
    else:
        output = "gender female/male (appearance) + probability"
    register_model(
        card.name, kind=card.kind,
        description=(card.description or f"ONNX {card.kind} from model card {card.path.name}")
        + f" [card {card.path}]",
        output=output,
        input_size=f"{card.input_size}x{card.input_size} {card.colour.upper()} "
                   f"{card.layout.upper()}, "
                   + ("five-point aligned crop (ArcFace template)" if card.crop == "arcface"
                      else "box crop") + (f", margin {card.margin:g}" if card.margin else ""),
        package="model card", weights=(f"<{card.onnx}>", f"<{card.path}>"),
        licence=card.licence, labels=card.labels or None, override=override,
    )(_factory(card))
    _CARDS[card.name] = digest
    return card.name


set_card_loader(register_card)
