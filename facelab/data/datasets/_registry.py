"""The dataset registry: one :class:`DatasetSpec` per supported on-disk format."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from facelab.core.config import data_root

__all__ = ["DatasetSpec", "DatasetNotFoundError", "register_dataset", "dataset_spec",
           "dataset_specs", "resolve_root"]

ERR_UNKNOWN_DATASET = "unknown dataset {name!r}; known datasets: {known}"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they were looked for."""


@dataclass(frozen=True)
class DatasetSpec:
    """How to find and read one dataset format.

    ``loader(root, **options)`` returns the manifest; ``looks_like(folder)`` says whether a
    folder holds this dataset in its native layout; ``folder`` is its usual folder name
    under the data root; ``pairs`` (optional) returns its labelled verification pairs.
    """

    name: str
    loader: Callable[..., pd.DataFrame] = field(repr=False)
    looks_like: Callable[[Path], bool] = field(repr=False)
    folder: str | None
    description: str
    source: str
    labels: str
    aliases: tuple[str, ...] = ()
    pairs: Callable[..., pd.DataFrame] | None = field(default=None, repr=False)
    count_options: dict = field(default_factory=dict, repr=False)


_DATASETS: dict[str, DatasetSpec] = {}
_ALIASES: dict[str, str] = {}
_DISCOVERED = False


def register_dataset(name: str, *, looks_like: Callable[[Path], bool], folder: str | None,
                     description: str, source: str, labels: str,
                     aliases: tuple[str, ...] = (),
                     pairs: Callable[..., pd.DataFrame] | None = None,
                     count_options: dict | None = None):
    """Decorator registering a dataset loader under ``name`` (and ``aliases``)."""

    def decorate(loader: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        _DATASETS[name] = DatasetSpec(name=name, loader=loader, looks_like=looks_like,
                                      folder=folder, description=description, source=source,
                                      labels=labels, aliases=tuple(aliases), pairs=pairs,
                                      count_options=dict(count_options or {}))
        for alias in aliases:
            _ALIASES[alias.lower()] = name
        return loader

    return decorate


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    import facelab.data.datasets as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_") and info.name != "schema":
            importlib.import_module(f"{pkg.__name__}.{info.name}")


def dataset_specs() -> list[DatasetSpec]:
    """Every registered dataset format."""
    _discover()
    return list(_DATASETS.values())


def dataset_spec(name: str) -> DatasetSpec:
    """The spec registered under ``name`` (or an alias); unknown names list the known ones."""
    _discover()
    key = _ALIASES.get(name.lower(), name.lower())
    spec = _DATASETS.get(key)
    if spec is None:
        raise ValueError(ERR_UNKNOWN_DATASET.format(name=name, known=", ".join(sorted(_DATASETS))))
    return spec


def resolve_root(spec: DatasetSpec, root: str | Path | None) -> Path:
    """The folder holding ``spec``'s files.

    ``root=None`` means ``facelab.core.config.data_root() / spec.folder``. A given ``root`` may be
    the dataset folder itself or the data root containing ``spec.folder``.
    """
    if root is None:
        base = data_root()
        candidates = [base / n for n in (spec.folder, *spec.aliases) if n]
    else:
        base = Path(root).expanduser().resolve()
        candidates = [base, *(base / n for n in (spec.folder, *spec.aliases) if n)]
    for c in candidates:
        if c.exists() and spec.looks_like(c):
            return c
    raise DatasetNotFoundError(
        f"{spec.name}: no {spec.description} found at {', '.join(map(str, candidates))}. "
        f"Expected layout: {spec.labels}. Get it from {spec.source} (see data/README.md).")
