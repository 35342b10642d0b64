"""1:1 verification (:func:`verify`) and the shared pieces of matching: model lookup,
largest-face embedding, and threshold resolution. 1:N search lives in
:mod:`facelab.match.gallery` (:class:`Gallery`), which builds on this module.

Scores are similarities (higher = more alike) and a pair is declared the same person when
``score >= threshold``, as in :mod:`facelab.metrics.biometric`. Every threshold carries a
sentence saying where it came from: the model's published default, a value given by the
user, or a value set for a target false match rate (FMR) on reference impostor scores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from facelab.core.io import ImageError, describe_source, load_image
from facelab.core.types import Face, largest_face
from facelab.core.validation import check_embedding
from facelab.extraction.pipeline import extract
from facelab.metrics.biometric import ThresholdChoice, threshold_at_fmr
from facelab.models.registry import get_model

__all__ = ["NoFaceError", "Verification", "verify", "resolve_threshold", "get_embedder",
           "get_detector", "embed_largest", "embed_images"]

ERR_BOTH_THRESHOLDS = "give threshold or target_fmr, not both"
ERR_NEED_REFERENCE = ("target_fmr needs reference impostor scores (similarities of pairs of "
                      "different people, computed with the same model): pass reference=...")
ERR_BAD_EMBEDDING = "embedding for {what} has shape {shape}; model {model!r} makes {dim}-d vectors"


class NoFaceError(ImageError):
    """No face was found in an image (a failure to acquire)."""

    def __init__(self, source: str, detector: str = ""):
        by = f" by detector {detector!r}" if detector else ""
        super().__init__(source, f"no face found{by}")


# ----------------------------------------------------------------------------- models
def get_embedder(model: Any = "sface") -> Any:
    """A registered embedder by name, or ``model`` itself.

    Parameters
    ----------
    model
        A registered embedder name (e.g. ``"sface"``) or an embedder instance.

    Returns
    -------
    Embedder
        The shared instance of :func:`facelab.models.registry.get_model` for a name.

    Raises
    ------
    facelab.models.registry.ModelError
        For a name that is not a registered embedder.
    """
    return get_model(model, "embedder") if isinstance(model, str) else model


def get_detector(detector: Any = "yunet") -> Any:
    """A registered detector by name, or ``detector`` itself.

    Parameters
    ----------
    detector
        A registered detector name (e.g. ``"yunet"``) or a detector instance.

    Returns
    -------
    Detector
        The shared instance of :func:`facelab.models.registry.get_model` for a name.

    Raises
    ------
    facelab.models.registry.ModelError
        For a name that is not a registered detector.
    """
    return get_model(detector, "detector") if isinstance(detector, str) else detector


def _registered_name(model: Any, kind: str) -> str:
    """The registry name of ``model`` (a name, or the shared instance of a registered
    model), which :func:`facelab.extract` needs to cache its outputs.

    Raises
    ------
    ValueError
        For an instance that is not the registry's shared instance of its model (it could
        have been built with other options, so its outputs cannot be cached by name).
    """
    if isinstance(model, str):
        return model
    spec = getattr(model, "spec", None)
    name = getattr(spec, "name", None)
    if name is not None and get_model(name, kind) is model:
        return name
    raise ValueError(f"{kind} {model!r} is not a registered model's shared instance: pass "
                     f"its registered name (register it with facelab.models.registry."
                     f"register_model or a model card first)")


def _is_embedding(x: Any) -> bool:
    return (isinstance(x, np.ndarray) and x.ndim == 1
            and np.issubdtype(x.dtype, np.floating)) or (
        isinstance(x, list | tuple) and len(x) > 8 and all(
            isinstance(v, float | int | np.floating) for v in x))


def embed_largest(source: Any, *, model: Any = "sface", detector: Any = "yunet"
                  ) -> tuple[np.ndarray, Face]:
    """Embedding of the largest face in one image.

    Parameters
    ----------
    source
        An image: path, bytes, PIL image or ``(H, W, 3)`` uint8 RGB array.
    model, detector
        Registered names (or instances) of the embedder and the face detector.

    Returns
    -------
    embedding : numpy.ndarray
        ``(dim,)`` float32 (e.g. 128 for SFace).
    face : Face
        The face embedded (box in the image's pixels).

    Raises
    ------
    facelab.core.io.ImageError
        If the image cannot be loaded.
    NoFaceError
        If no face is found; the message names the image.
    """
    embedder, det = get_embedder(model), get_detector(detector)
    image = load_image(source)
    face = largest_face(det.detect(image))
    if face is None:
        raise NoFaceError(describe_source(source), getattr(det, "name", ""))
    return embedder.embed(image, [face])[0], face


def embed_images(sources: Sequence[Any], *, model: Any = "sface", detector: Any = "yunet",
                 progress: bool = False) -> tuple[np.ndarray, pd.DataFrame]:
    """Embed the largest face of each image; failures become records, never exceptions.

    The images go through :func:`facelab.extract` (largest face, one batch of detections
    and embeddings at a time), so a rerun reads the embeddings from the feature cache.

    Parameters
    ----------
    sources
        Images: paths, ``(H, W, 3)`` uint8 RGB arrays, or anything else
        :func:`facelab.core.io.load_image` reads (bytes, PIL images: loaded here).
    model, detector
        Registered names of the embedder and the detector (or their shared instances,
        :func:`get_embedder`).
    progress
        Show a progress bar.

    Returns
    -------
    embeddings
        ``(len(sources), dim)`` float32; rows of failed images are NaN.
    records
        One row per source: ``source``, ``ok``, ``reason`` (why it failed), ``n_faces``,
        ``face_box`` (``[x1, y1, x2, y2]`` pixels, 2 decimals) and ``face_score`` of the
        face used.

    Raises
    ------
    ValueError
        If ``model`` or ``detector`` is an instance that is not a registered model's shared
        instance (see :func:`_registered_name`).
    """
    emb_name = _registered_name(model, "embedder")
    det_name = _registered_name(detector, "detector")
    embedder, det = get_embedder(emb_name), get_detector(det_name)
    items = list(sources)
    names = [describe_source(src) for src in items]
    paths: list[str | None] = [None] * len(items)
    pixels: list[np.ndarray | None] = [None] * len(items)
    load_errors: dict[int, str] = {}
    for i, src in enumerate(items):
        if isinstance(src, str | os.PathLike):
            paths[i] = str(src)
        else:
            try:
                pixels[i] = load_image(src)
            except ImageError as exc:
                load_errors[i] = exc.reason
    frame = pd.DataFrame({"path": pd.Series(paths, dtype=object),
                          "pixels": pd.Series(pixels, dtype=object)})
    feats = extract(frame, detector=det_name, heads=("embedding",),
                    models={"embedding": emb_name}, face_policy="largest", progress=progress)
    out = np.full((len(items), embedder.dim), np.nan, np.float32)
    rows = []
    for i, r in enumerate(feats.itertuples(index=False)):
        n_faces = 0 if pd.isna(r.n_faces) else int(r.n_faces)
        rec = {"source": names[i], "ok": False, "reason": "", "n_faces": n_faces,
               "face_box": None, "face_score": np.nan}
        if i in load_errors:
            rec["reason"] = load_errors[i]
        elif r.status == "ok":
            out[i] = r.embedding
            rec.update(ok=True, face_box=[round(float(v), 2) for v in r.box],
                       face_score=float(r.score))
        else:
            rec["reason"] = _reason(str(r.reason), names[i], det)
        rows.append(rec)
    return out, pd.DataFrame(rows)


def _reason(reason: str, source: str, detector: Any) -> str:
    """The pipeline's failure reason in the words :func:`embed_images` always used."""
    if reason == "no face detected":
        return NoFaceError(source, getattr(detector, "name", "")).reason
    if reason.startswith("ImageError: "):
        return reason[len("ImageError: "):]
    return reason


# ----------------------------------------------------------------------------- thresholds
def resolve_threshold(model: Any = "sface", *, threshold: float | None = None,
                      target_fmr: float | None = None, reference: Any = None,
                      ) -> tuple[float, str, Any]:
    """The decision threshold and one sentence saying how it was set.

    Parameters
    ----------
    model
        Embedder (name or instance) whose default applies when nothing else is given.
    threshold
        A raw similarity threshold chosen by the user.
    target_fmr
        Set the threshold for this false match rate on ``reference``, with
        :func:`facelab.metrics.biometric.threshold_at_fmr`.
    reference
        Impostor similarity scores (array-like) made with the same model, or a
        :class:`~facelab.metrics.biometric.ThresholdChoice` already computed.

    Returns
    -------
    threshold, how, choice
        ``choice`` is the ``ThresholdChoice`` when ``target_fmr`` was used, else ``None``.

    Raises
    ------
    ValueError
        If both ``threshold`` and ``target_fmr`` are given, if ``target_fmr`` has no
        reference, or if the reference has too few scores for the target
        (fewer than ``1 / target_fmr``).
    """
    if threshold is not None and target_fmr is not None:
        raise ValueError(ERR_BOTH_THRESHOLDS)
    embedder = get_embedder(model)
    name = getattr(embedder, "name", str(model))
    if threshold is not None:
        t = float(threshold)
        if not np.isfinite(t):
            raise ValueError(f"threshold must be a finite number; got {threshold!r}")
        return t, f"raw similarity threshold {t:g} given by the user (model {name})", None
    if target_fmr is not None:
        if reference is None:
            raise ValueError(ERR_NEED_REFERENCE)
        if isinstance(reference, ThresholdChoice):
            choice = reference
        else:
            choice = threshold_at_fmr(np.asarray(reference, dtype=float), float(target_fmr),
                                      reference="the reference set")
        return float(choice.threshold), f"{name} similarity threshold {choice.how}", choice
    t = float(embedder.default_threshold)
    return t, f"model default {t:g}: {embedder.threshold_source}", None


# ----------------------------------------------------------------------------- verify
@dataclass
class Verification:
    """Result of comparing two faces.

    Attributes
    ----------
    score
        Similarity (higher = more alike; cosine for SFace, ``1 - distance`` for dlib).
    same
        The decision: ``score >= threshold``. A threshold trades false matches against
        false non-matches; this is not a probability that the two are the same person.
    threshold, threshold_how
        The threshold used and one sentence saying how it was set.
    """

    score: float
    same: bool
    threshold: float
    threshold_how: str
    model: str
    metric: str
    faces: tuple[Face | None, Face | None] = (None, None)
    target_fmr: float | None = None
    sources: tuple[str, str] = ("", "")
    threshold_choice: Any = field(default=None, repr=False)

    @property
    def decision(self) -> str:
        """``"match"`` or ``"non-match"``."""
        return "match" if self.same else "non-match"

    def to_dict(self) -> dict:
        """JSON-ready summary.

        Returns
        -------
        dict
            Score (rounded to 6 decimals), decision, threshold and how it was set, model,
            metric, target FMR, sources and each face's
            :meth:`facelab.core.types.Face.to_dict` (``None`` where no face was found).
        """
        return {
            "score": round(self.score, 6), "decision": self.decision, "same": self.same,
            "threshold": self.threshold, "threshold_how": self.threshold_how,
            "model": self.model, "metric": self.metric, "target_fmr": self.target_fmr,
            "sources": list(self.sources),
            "faces": [f.to_dict() if f is not None else None for f in self.faces],
        }


def verify(a: Any, b: Any, *, model: Any = "sface", detector: Any = "yunet",
           threshold: float | None = None, target_fmr: float | None = None,
           reference: Any = None) -> Verification:
    """Compare the largest face of ``a`` with the largest face of ``b``.

    Parameters
    ----------
    a, b
        Images (anything :func:`facelab.core.io.load_image` reads: path, bytes, PIL image,
        array) or precomputed 1-D embeddings of the same model.
    model, detector
        Registered names (or instances) of the embedder and the face detector.
    threshold
        Raw similarity threshold. Default: the model's published default
        (SFace 0.363 cosine; dlib 0.4 = distance 0.6).
    target_fmr, reference
        Instead of ``threshold``: the threshold whose FMR on ``reference`` impostor scores
        is at most ``target_fmr`` (see :func:`resolve_threshold`).

    Returns
    -------
    Verification

    Raises
    ------
    NoFaceError
        When an image has no detectable face (the message names the image).
    facelab.core.io.ImageError
        When an image cannot be read.
    ValueError
        For inconsistent threshold arguments or embeddings of the wrong size.
    facelab.core.validation.InputError
        (a ``ValueError``) for an embedding with NaN or infinite values or all zeros: it
        has no similarity, and a score of 0.0 would pass for a real comparison.
    """
    embedder = get_embedder(model)
    name = getattr(embedder, "name", str(model))
    t, how, choice = resolve_threshold(embedder, threshold=threshold, target_fmr=target_fmr,
                                       reference=reference)
    vecs, faces, names = [], [], []
    for what, x in (("a", a), ("b", b)):
        if _is_embedding(x):
            v = np.asarray(x, dtype=np.float32)
            if v.shape != (embedder.dim,):
                raise ValueError(ERR_BAD_EMBEDDING.format(what=what, shape=v.shape, model=name,
                                                          dim=embedder.dim))
            vecs.append(check_embedding(v, dim=embedder.dim, name=f"embedding {what}",
                                        model=name))
            faces.append(None)
            names.append(f"<embedding {what}>")
        else:
            v, face = embed_largest(x, model=embedder, detector=detector)
            vecs.append(v)
            faces.append(face)
            names.append(describe_source(x))
    score = float(embedder.similarity(vecs[0], vecs[1]))
    return Verification(score=score, same=bool(score >= t), threshold=t, threshold_how=how,
                        model=name, metric=embedder.metric, faces=(faces[0], faces[1]),
                        target_fmr=target_fmr, sources=(names[0], names[1]),
                        threshold_choice=choice)

