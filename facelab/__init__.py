"""facelab: an open, offline research suite for auditing face analysis.

The verbs (:func:`detect`, :func:`represent`, :func:`verify`, :func:`analyze`,
:func:`search` / :func:`find`, :func:`extract`, :func:`load_dataset`, :func:`audit`) are
documented one-liners in :mod:`facelab.api`; the classes and helpers come from the floor
that owns them. Every public name is imported lazily, on first use, so ``import facelab``
is fast and a notebook pays only for the models it uses.

Examples
--------
>>> import facelab
>>> img = facelab.load_image("photo.jpg")           # (h, w, 3) uint8 RGB
>>> faces = facelab.detect(img)                     # list of Face
>>> rep = facelab.represent(img)                    # rep.embeddings: (n, 128) float32
>>> facelab.verify("a.jpg", "b.jpg").same
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "load_image": "facelab.core.io",
    "ImageError": "facelab.core.io",
    "Face": "facelab.core.types",
    "APPEARANCE_NOTE": "facelab.core.types",
    "list_models": "facelab.models.registry",
    "create_model": "facelab.models.registry",
    "register_model": "facelab.models.registry",
    "model_spec": "facelab.models.registry",
    "ModelError": "facelab.models.registry",
    "data_root": "facelab.core.config",
    # the verbs: facelab.api delegates each to the floor that owns it
    "detect": "facelab.api",
    "represent": "facelab.api",
    "Representation": "facelab.api",
    "verify": "facelab.api",
    "analyze": "facelab.api",
    "search": "facelab.api",
    "find": "facelab.api",
    "extract": "facelab.api",
    "load_dataset": "facelab.api",
    "audit": "facelab.api",
    "FaceAnalysis": "facelab.extraction.analysis",
    "Verification": "facelab.match.verification",
    "NoFaceError": "facelab.match.verification",
    "Gallery": "facelab.match.gallery",
    "threshold_at_fmr": "facelab.metrics.biometric",
    "fmr_at_threshold": "facelab.metrics.biometric",
    "list_datasets": "facelab.data.datasets",
    "find_datasets": "facelab.data.datasets",
    "load_pairs": "facelab.data.datasets",
    "make_pairs": "facelab.data.protocols",
    "gallery_probe_split": "facelab.data.protocols",
    "stack_embeddings": "facelab.extraction.pipeline",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'facelab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
