"""One registry for every model kind: detectors, embedders, expression and attribute models.

Models register themselves with :func:`register_model` (a decorator on a factory), in
the style of timm's ``register_model`` and torchvision's ``get_model``. Every entry states
what it outputs, its input size, the installed package and file its weights come from,
and the weights' licence. Weights resolve from installed packages only
(:func:`package_file`): nothing is ever downloaded.

Registering a name twice is an error unless ``override=True`` (as torchvision's
``models/_api.py`` ``register_model`` refuses a name already in ``BUILTIN_MODELS``).

Third-party models
------------------
A pip-installed distribution adds models through the entry-point group
:data:`ENTRY_POINT_GROUP` (``facelab.models``). Each entry point names a module (importing
it runs its ``@register_model`` decorators) or a callable (called with no argument; it
may call :func:`register_model` or :func:`facelab.models.onnx_card.register_card`)::

    # pyproject.toml of the plugin
    [project.entry-points."facelab.models"]
    acme = "acme_faces.facelab_plugin"

They load at discovery, after the built-in models, in every process that asks for a
model (a papermill kernel included). A plugin that fails to load, or that reuses a
registered name, is reported by :func:`plugins` and ``facelab info`` and skipped; it
never breaks the built-in models.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from facelab.core.provenance import file_sha256, package_file

__all__ = [
    "KINDS", "ModelSpec", "ModelError", "register_model", "list_models", "create_model",
    "model_spec", "ENTRY_POINT_GROUP", "plugins",
    "resolve_model", "get_model", "clear_model_cache",
]

#: Entry-point group through which installed distributions register models.
ENTRY_POINT_GROUP = "facelab.models"

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
    revision: str = ""

    def weight_paths(self) -> list[Path]:
        """Absolute paths of the weight files: inside the installed package, or the file
        itself for models trained by facelab (registered as ``"</absolute/path>"``).

        Returns
        -------
        list of pathlib.Path
            The files (weights compiled into a library, ``"<...>"``, give none).

        Raises
        ------
        facelab.core.provenance.PackageFileError
            When the package or a weights file is missing.
        """
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
        """The spec as one row of :func:`list_models`.

        Returns
        -------
        dict
            The fields without the factory; labels and weights joined into strings.
        """
        row = asdict(self)
        row.pop("factory")
        row["labels"] = ", ".join(self.labels) if self.labels else ""
        row["weights"] = ", ".join(self.weights)
        return row


_REGISTRY: dict[str, ModelSpec] = {}
_DISCOVERED = False
# reads a model card file and registers its model, returning the name; set by
# facelab.models.onnx_card when model discovery imports it (the registry does not import
# the card reader, which builds on the models it registers)
_CARD_LOADER: Callable[[str], str] | None = None


def set_card_loader(loader: Callable[[str], str]) -> None:
    """Install the function that turns a model card path into a registered model name
    (called by :mod:`facelab.models.onnx_card` when it is imported)."""
    global _CARD_LOADER
    _CARD_LOADER = loader


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
    override: bool = False,
    revision: str = "",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a model factory under ``name``.

    ``weights`` are paths relative to the installed ``package``'s folder; use a value in
    angle brackets (e.g. ``"<built into dlib>"``) for weights compiled into a library, or
    ``"</absolute/path>"`` for a weights file outside any package (checksummed in
    provenance and cache keys). Factories may also be registered at run time (models
    trained by the project, ONNX model cards). ``revision`` names a change in how the
    same weights are run that changes the outputs (even within a tolerance); it enters
    feature-cache keys, so cached outputs of the previous way are not mixed with new ones.

    Parameters
    ----------
    name : str
        The model's registered name (e.g. ``"sface"``).
    kind : {"detector", "embedder", "expression", "attribute", "skin_tone"}
        What the model does.
    description, output, input_size : str
        One line each for ``facelab info`` and the model tables: what it is, what it
        outputs (with units), what it takes (pixels, colour).
    package : str
        The installed package shipping the weights.
    weights : str or sequence of str
        Weight files relative to the package folder, or ``"<...>"`` as above.
    licence : str
        The weights' licence (as its vendor states it).
    labels : sequence of str, optional
        Class labels of a classifier, in output order.
    default : bool
        Whether this is the default model of its kind.
    override : bool
        Replace a model already registered under ``name``.
    revision : str
        Names a change in how the weights are run (enters feature-cache keys).

    Returns
    -------
    callable
        The decorator; it returns the factory unchanged.

    Raises
    ------
    ValueError
        ``name`` is already registered and ``override`` is False (checked when the
        decorator is applied), or ``kind`` is unknown.
    """
    if kind not in KINDS:
        raise ValueError(ERR_UNKNOWN_KIND.format(kind=kind, kinds=", ".join(KINDS)))
    if isinstance(weights, str):
        weights = (weights,)

    def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
        existing = _REGISTRY.get(name)
        if existing is not None and not override:
            raise ValueError(f"a model is already registered under the name {name!r} "
                             f"({existing.kind}, package {existing.package}); pick another "
                             "name or pass override=True to replace it")
        _REGISTRY[name] = ModelSpec(
            name=name, kind=kind, factory=factory, description=description, output=output,
            input_size=input_size, package=package, weights=tuple(weights),
            licence=licence, labels=tuple(labels) if labels else None, default=default,
            revision=revision,
        )
        return factory

    return decorate


_PLUGINS: list[dict] = []


def _discover() -> None:
    """Import every module in :mod:`facelab.models` so their models register, then load
    the :data:`ENTRY_POINT_GROUP` entry points of installed distributions."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    import facelab.models as pkg

    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            importlib.import_module(info.name)
    _load_plugins()


def _load_plugins() -> None:
    import importlib.metadata as md
    import types
    import warnings

    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        before = set(_REGISTRY)
        dist = getattr(ep, "dist", None)
        row = {"entry_point": ep.name, "value": ep.value,
               "distribution": f"{dist.name} {dist.version}" if dist else "",
               "models": "", "error": ""}
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, types.ModuleType):
                obj()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break facelab
            row["error"] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"facelab model plugin {ep.name!r} ({ep.value}) was not loaded: "
                          f"{row['error']}", stacklevel=3)
        row["models"] = ", ".join(sorted(set(_REGISTRY) - before))
        _PLUGINS.append(row)


def plugins() -> pd.DataFrame:
    """Model plugins found through :data:`ENTRY_POINT_GROUP`: ``entry_point, value,
    distribution, models`` (the names it registered) and ``error`` (empty when loaded).

    Returns
    -------
    DataFrame
        One row per entry point.
    """
    _discover()
    return pd.DataFrame(_PLUGINS, columns=["entry_point", "value", "distribution", "models",
                                           "error"])


def resolve_model(value: Any, kind: str | None = None) -> str:
    """A registered model name for ``value``: a name is returned as is (after checking it
    exists), a path to a model card (``.yaml``/``.yml``) is registered first
    (:func:`facelab.models.onnx_card.register_card`; the same card twice is one model).

    Parameters
    ----------
    value : str or os.PathLike
        Registered name or model card path.
    kind : {"detector", "embedder", "expression", "attribute", "skin_tone"}, optional
        Only a model of this kind (see :data:`KINDS`).

    Returns
    -------
    str
        The registered name.

    Raises
    ------
    ModelError
        Unknown name, or a model of another ``kind``.
    """
    text = str(value)
    if text.lower().endswith((".yaml", ".yml")):
        _discover()
        if _CARD_LOADER is None:
            raise ModelError(f"cannot read model card {text!r}: no card reader is installed")
        text = _CARD_LOADER(text)
    return model_spec(text, kind).name


def list_models(kind: str | None = None) -> pd.DataFrame:
    """Registered models (optionally of one kind) as a DataFrame, one row per model.

    Parameters
    ----------
    kind : {"detector", "embedder", "expression", "attribute", "skin_tone"}, optional
        Only a model of this kind (see :data:`KINDS`).

    Returns
    -------
    DataFrame
        Columns ``name``, ``kind``, ``default``, ``description``, ``output``, ``labels``,
        ``input_size``, ``package``, ``weights``, ``licence``; sorted by kind and name.

    Raises
    ------
    ValueError
        For an unknown kind.
    """
    _discover()
    if kind is not None and kind not in KINDS:
        raise ValueError(ERR_UNKNOWN_KIND.format(kind=kind, kinds=", ".join(KINDS)))
    rows = [s.as_row() for s in _REGISTRY.values() if kind is None or s.kind == kind]
    cols = ["name", "kind", "default", "description", "output", "labels", "input_size",
            "package", "weights", "licence"]
    return pd.DataFrame(rows, columns=cols).sort_values(["kind", "name"], ignore_index=True)


def model_spec(name: str, kind: str | None = None) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``; unknown names list the known ones.
    A path to a model card (``.yaml``) is registered first (:func:`resolve_model`).

    Parameters
    ----------
    name : str
        Registered name, or a model card path.
    kind : {"detector", "embedder", "expression", "attribute", "skin_tone"}, optional
        Only a model of this kind (see :data:`KINDS`).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelError
        For an unknown name or a model of another kind (the message lists the known ones).
    """
    _discover()
    if name not in _REGISTRY and str(name).lower().endswith((".yaml", ".yml")):
        name = resolve_model(name)
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
    """Build the model registered under ``name`` with ``options`` passed to its factory.

    Parameters
    ----------
    name : str
        Registered name (or a model card path).
    kind : {"detector", "embedder", "expression", "attribute", "skin_tone"}, optional
        Only a model of this kind (see :data:`KINDS`).
    **options
        Passed to the model's factory (e.g. ``score_threshold=0.8`` for a detector).

    Returns
    -------
    object
        The model (a detector, embedder, expression or attribute model), with ``spec`` set.

    Raises
    ------
    ModelError
        For an unknown name or a model of another kind.
    """
    spec = model_spec(name, kind)
    model = spec.factory(**options)
    try:
        model.spec = spec
        if not getattr(model, "name", None):
            model.name = name
    except AttributeError:
        pass
    return model


_INSTANCES: dict[tuple[str, str, int, str], Any] = {}
_INSTANCES_LOCK = threading.Lock()


def get_model(name: str, kind: str | None = None, **options: Any) -> Any:
    """The shared instance of a registered model: built by :func:`create_model` on first
    use, then reused in this process (the one cache of model instances; extraction,
    :func:`facelab.analyze` and matching all take their models from here).

    Parameters
    ----------
    name
        A registered model name (see :func:`list_models`).
    kind
        Restrict the lookup to one of :data:`KINDS` (``None``: any kind).
    **options
        Passed to the factory; each distinct set of options (compared as JSON) gets its own
        instance.

    Returns
    -------
    object
        The model instance. It is shared: do not change its attributes.

    Raises
    ------
    ModelError
        If ``name`` is not registered (under ``kind``).
    """
    spec = model_spec(name, kind)
    # the factory's id: a name registered again (override=True) gets a new instance
    key = (spec.name, spec.kind, id(spec.factory),
           json.dumps(options, sort_keys=True, default=str))
    with _INSTANCES_LOCK:
        model = _INSTANCES.get(key)
        if model is None:
            model = _INSTANCES[key] = create_model(spec.name, kind=spec.kind, **options)
    return model


def clear_model_cache() -> None:
    """Forget every instance :func:`get_model` holds (the next call builds them again)."""
    with _INSTANCES_LOCK:
        _INSTANCES.clear()


def weights_checksums(name: str) -> dict[str, str]:
    """``{file name: sha256}`` of a registered model's weights."""
    return {p.name: file_sha256(str(p)) for p in model_spec(name).weight_paths()}
