"""Settings read from the environment: the data root and the feature cache folder."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root", "cache_dir", "results_dir", "trained_models_dir", "DataRootError"]


class DataRootError(FileNotFoundError):
    """The data root is not set or does not exist."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the datasets: ``root`` if given, else ``$FACELAB_DATA``.

    Parameters
    ----------
    root : str or os.PathLike, optional
        The data root; ``None`` reads the environment variable ``FACELAB_DATA``.

    Returns
    -------
    pathlib.Path
        The folder, absolute, with ``~`` expanded.

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
    """Feature cache folder: ``$FACELAB_CACHE`` or ``~/.cache/facelab``.

    Returns
    -------
    pathlib.Path
        The folder (not created here; it may not exist yet).
    """
    value = os.environ.get("FACELAB_CACHE")
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "facelab"
    return path


def results_dir() -> Path:
    """Where audit runs and trained models go: ``$FACELAB_RESULTS`` or ``./results``.

    Returns
    -------
    pathlib.Path
        The folder, relative to the working directory unless the variable is absolute.
    """
    return Path(os.environ.get("FACELAB_RESULTS", "results")).expanduser()


def trained_models_dir() -> Path:
    """``<results>/models``: where trained weights are written and discovered.

    Returns
    -------
    pathlib.Path
        The folder (may not exist yet).
    """
    return results_dir() / "models"
