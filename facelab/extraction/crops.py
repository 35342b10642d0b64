"""A crop classifier's outputs for a block of face crops, computed once and then read
from the feature cache.

Studies that evaluate models on ready-made face crops (:mod:`facelab.studies.crossdata`)
call ``model.predict_crops`` on thousands of crops per dataset; the same crops and the
same model give the same outputs, so a warm rerun reads them. The cache key is the
crops' content (:func:`facelab.core.provenance.digest_array`: dtype, shape, bytes) and
the model's identity (:func:`model_identity`: registered name, weights checksums,
revision, class and the attributes that change how crops are run). A model that was
not built by the registry (no ``spec``) has no identity and is always run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facelab.core.provenance import digest_array
from facelab.extraction.cache import FeatureCache, make_key
from facelab.models.registry import weights_checksums

__all__ = ["model_identity", "predict_crops_cached", "CROPS_STAGE"]

#: Stage name in the cache key (bump the suffix when the meaning of the entries changes).
CROPS_STAGE = "predict_crops-v1"
#: Attributes of a model that change its outputs for the same crops and weights.
_RUN_ATTRIBUTES = ("input_size", "batch_size", "backend")


def model_identity(model: Any) -> dict | None:
    """What identifies a model's outputs: registered name and kind, weights checksums,
    revision, class, labels and the attributes in ``_RUN_ATTRIBUTES``.

    Parameters
    ----------
    model : object
        A model built by :func:`facelab.models.registry.create_model` or
        :func:`~facelab.models.registry.get_model` (which set ``model.spec``).

    Returns
    -------
    dict or None
        JSON-serialisable identity, or ``None`` when the model has no registry ``spec``
        or its weights cannot be checksummed (then its outputs are not cached).
    """
    spec = getattr(model, "spec", None)
    name = getattr(spec, "name", None)
    if not name:
        return None
    try:
        weights = weights_checksums(name)
    except Exception:  # noqa: BLE001 - no identity means no caching, never a wrong hit
        return None
    ident = {"model": name, "kind": getattr(spec, "kind", ""), "weights": weights,
             "revision": getattr(spec, "revision", ""),
             "class": f"{type(model).__module__}.{type(model).__qualname__}",
             "labels": [str(v) for v in getattr(model, "labels", ())]}
    for attr in _RUN_ATTRIBUTES:
        value = getattr(model, attr, None)
        if value is not None:
            ident[attr] = value if isinstance(value, int | float | str) else str(value)
    return ident


def predict_crops_cached(model: Any, crops: np.ndarray, *,
                         store: FeatureCache | None = None) -> np.ndarray:
    """``model.predict_crops(crops)``, read from the feature cache when the same model
    already ran on the same crops.

    Parameters
    ----------
    model : object
        Anything with ``predict_crops`` (see :class:`facelab.core.types.CropClassifier`);
        cached only when :func:`model_identity` identifies it.
    crops : numpy.ndarray
        ``(n, h, w)`` or ``(n, h, w, 3)`` uint8 face crops, passed to the model in one call.
    store : FeatureCache, optional
        Where entries live (default: :class:`~facelab.extraction.cache.FeatureCache` under
        :func:`facelab.core.config.cache_dir`).

    Returns
    -------
    numpy.ndarray
        ``(n, n_labels)`` float32, exactly what ``model.predict_crops(crops)`` returned
        when the entry was written.
    """
    crops = np.asarray(crops)
    ident = model_identity(model)
    if ident is None or not len(crops):
        return np.asarray(model.predict_crops(crops))
    store = store if store is not None else FeatureCache()
    key = make_key(stage=CROPS_STAGE, crops=digest_array(crops), **ident)
    hit = store.get(key)
    if hit is not None and "probs" in hit and len(hit["probs"]) == len(crops):
        return hit["probs"]
    probs = np.asarray(model.predict_crops(crops))
    store.put(key, {"probs": probs})
    return probs
