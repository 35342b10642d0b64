"""Settings read from the environment: the data root and the feature cache folder."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root", "cache_dir", "results_dir", "DataRootError"]


class DataRootError(FileNotFoundError):
    """The data root is not set or does not exist."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the datasets: ``root`` if given, else ``$FACELAB_DATA``.

    Raises
    ------
    DataRootError
        If neither is set or the folder does not exist.
    """
    value = root if root is not None else os.environ.get("FACELAB_DATA")
    if not value:
        raise DataRootError(
            "no data root: set FACELAB_DATA to the folder holding your datasets "
            "(see data/README.md), or pass root=...")
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise DataRootError(f"data root {path} does not exist (FACELAB_DATA={value!r})")
    return path


def cache_dir() -> Path:
    """Feature cache folder: ``$FACELAB_CACHE`` or ``~/.cache/facelab``."""
    value = os.environ.get("FACELAB_CACHE")
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "facelab"
    return path


def results_dir() -> Path:
    """Where audit runs and trained models go: ``$FACELAB_RESULTS`` or ``./results``."""
    return Path(os.environ.get("FACELAB_RESULTS", "results")).expanduser()
