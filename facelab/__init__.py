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
    "load_image": "facelab.io",
    "ImageError": "facelab.io",
    "Face": "facelab.types",
    "APPEARANCE_NOTE": "facelab.types",
    "list_models": "facelab.registry",
    "create_model": "facelab.registry",
    "register_model": "facelab.registry",
    "model_spec": "facelab.registry",
    "ModelError": "facelab.registry",
    "data_root": "facelab.config",
    "analyze": "facelab.analysis",
    "FaceAnalysis": "facelab.analysis",
    "verify": "facelab.match",
    "Gallery": "facelab.match",
    "threshold_at_fmr": "facelab.metrics.biometric",
    "fmr_at_threshold": "facelab.metrics.biometric",
    "load_dataset": "facelab.datasets",
    "list_datasets": "facelab.datasets",
    "find_datasets": "facelab.datasets",
    "load_pairs": "facelab.datasets",
    "make_pairs": "facelab.protocols",
    "gallery_probe_split": "facelab.protocols",
    "extract": "facelab.pipeline",
    "stack_embeddings": "facelab.pipeline",
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
