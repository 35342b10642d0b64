"""facelab: an open, offline research suite for auditing face analysis.

The public API is imported lazily, so ``import facelab`` is fast and a notebook pays only
for the models it uses.
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
    "analyze": "facelab.extract.analysis",
    "FaceAnalysis": "facelab.extract.analysis",
    "verify": "facelab.match.verification",
    "Gallery": "facelab.match.gallery",
    "threshold_at_fmr": "facelab.metrics.biometric",
    "fmr_at_threshold": "facelab.metrics.biometric",
    "load_dataset": "facelab.data.datasets",
    "list_datasets": "facelab.data.datasets",
    "find_datasets": "facelab.data.datasets",
    "load_pairs": "facelab.data.datasets",
    "make_pairs": "facelab.data.protocols",
    "gallery_probe_split": "facelab.data.protocols",
    "extract": "facelab.extract.pipeline",
    "stack_embeddings": "facelab.extract.pipeline",
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
