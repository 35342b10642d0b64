"""One registry for every model kind: detectors, embedders, expression and attribute models.

Models register themselves with :func:`register_model` (a decorator on a factory), in
the style of timm's ``register_model`` and torchvision's ``get_model``. Every entry states
what it outputs, its input size, the installed package and file its weights come from,
and the weights' licence. Weights resolve from installed packages only
(:func:`package_file`): nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "KINDS", "ModelSpec", "ModelError", "register_model", "list_models", "create_model",
    "model_spec", "package_file", "file_sha256",
]

KINDS: tuple[str, ...] = ("detector", "embedder", "expression", "attribute", "skin_tone")

ERR_UNKNOWN_MODEL = "unknown model {name!r}; known {kind}models: {known}"
ERR_UNKNOWN_KIND = "unknown model kind {kind!r}; kinds are: {kinds}"


class ModelError(LookupError):
    """A model is unknown, or its weights are not where its installed package puts them."""


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model is and where its weights come from."""

    name: str
    kind: str
    factory: Callable[..., Any] = field(repr=False, compare=False)
    description: str
    output: str
    input_size: str
    package: str
    weights: tuple[str, ...]
    licence: str
    labels: tuple[str, ...] | None = None
    default: bool = False

    def weight_paths(self) -> list[Path]:
        """Absolute paths of the weight files: inside the installed package, or the file
        itself for models trained by facelab (registered as ``"</absolute/path>"``)."""
        paths = []
        for w in self.weights:
            if w.startswith("<") and w.endswith(">"):
                inner = Path(w[1:-1])
                if inner.is_absolute() and inner.is_file():
                    paths.append(inner)
            else:
                paths.append(package_file(self.package, w))
        return paths

    def as_row(self) -> dict:
        row = asdict(self)
        row.pop("factory")
        row["labels"] = ", ".join(self.labels) if self.labels else ""
        row["weights"] = ", ".join(self.weights)
        return row


_REGISTRY: dict[str, ModelSpec] = {}
_DISCOVERED = False


def register_model(
    name: str,
    *,
    kind: str,
    description: str,
    output: str,
    input_size: str,
    package: str,
    weights: tuple[str, ...] | list[str] | str,
    licence: str,
    labels: tuple[str, ...] | list[str] | None = None,
    default: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a model factory under ``name``.

    ``weights`` are paths relative to the installed ``package``'s folder; use a value in
    angle brackets (e.g. ``"<built into dlib>"``) for weights compiled into a library.
    Factories may also be registered at run time (e.g. models trained by the project).
    """
    if kind not in KINDS:
        raise ValueError(ERR_UNKNOWN_KIND.format(kind=kind, kinds=", ".join(KINDS)))
    if isinstance(weights, str):
        weights = (weights,)

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = ModelSpec(
            name=name, kind=kind, factory=factory, description=description, output=output,
            input_size=input_size, package=package, weights=tuple(weights),
            licence=licence, labels=tuple(labels) if labels else None, default=default,
        )
        return factory

    return decorate


def _discover() -> None:
    """Import every module in :mod:`facelab.models` so their models register."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    import facelab.models as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{info.name}")


def list_models(kind: str | None = None) -> pd.DataFrame:
    """Registered models (optionally of one kind) as a DataFrame, one row per model."""
    _discover()
    if kind is not None and kind not in KINDS:
        raise ValueError(ERR_UNKNOWN_KIND.format(kind=kind, kinds=", ".join(KINDS)))
    rows = [s.as_row() for s in _REGISTRY.values() if kind is None or s.kind == kind]
    cols = ["name", "kind", "default", "description", "output", "labels", "input_size",
            "package", "weights", "licence"]
    return pd.DataFrame(rows, columns=cols).sort_values(["kind", "name"], ignore_index=True)


def model_spec(name: str, kind: str | None = None) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``; unknown names list the known ones."""
    _discover()
    spec = _REGISTRY.get(name)
    if spec is None or (kind is not None and spec.kind != kind):
        known = sorted(s.name for s in _REGISTRY.values() if kind is None or s.kind == kind)
        raise ModelError(ERR_UNKNOWN_MODEL.format(
            name=name, kind=f"{kind} " if kind else "", known=", ".join(known) or "(none)"))
    return spec


def default_model(kind: str) -> str:
    """Name of the default model of a kind."""
    _discover()
    for s in _REGISTRY.values():
        if s.kind == kind and s.default:
            return s.name
    raise ModelError(f"no default {kind} model registered")


def create_model(name: str, *, kind: str | None = None, **options: Any) -> Any:
    """Build the model registered under ``name`` with ``options`` passed to its factory."""
    spec = model_spec(name, kind)
    model = spec.factory(**options)
    try:
        model.spec = spec
        if not getattr(model, "name", None):
            model.name = name
    except AttributeError:
        pass
    return model


def package_file(package: str, relpath: str) -> Path:
    """Path of a file shipped inside an installed package, without importing the package.

    Raises
    ------
    ModelError
        If the package is not installed or the file is not in it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {package!r} is not installed; it provides the weights "
                         f"file {relpath!r} (run `make setup`)")
    for root in spec.submodule_search_locations:
        path = Path(root) / relpath
        if path.is_file():
            return path
    raise ModelError(f"weights file {relpath!r} not found in installed package {package!r}")


@lru_cache(maxsize=64)
def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (weights checksums for provenance and cache keys)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_checksums(name: str) -> dict[str, str]:
    """``{file name: sha256}`` of a registered model's weights."""
    return {p.name: file_sha256(str(p)) for p in model_spec(name).weight_paths()}
