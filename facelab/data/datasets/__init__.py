"""Dataset adapters: every supported public format read into one manifest schema.

>>> from facelab.data.datasets import load_dataset, list_datasets
>>> df = load_dataset("fairface", split="val")   # FACELAB_DATA/fairface
>>> df.groupby("race").size()

The columns are described in :mod:`facelab.data.schema`. Each adapter lists files and
reads label files only (no image is decoded), keeps the dataset's own labels next to the
normalised ones, and reports entries it cannot read in ``df.attrs["malformed"]``
(see :func:`malformed`) with a :class:`MalformedEntriesWarning`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from facelab.core.config import data_root
from facelab.data.datasets._registry import (
    DatasetNotFoundError,
    DatasetSpec,
    dataset_spec,
    dataset_specs,
    register_dataset,
    resolve_root,
)
from facelab.data.schema import (
    AGE_BINS,
    COLUMNS,
    EXPRESSIONS,
    PAIR_COLUMNS,
    RACE_COARSE,
    RACE_GROUPS,
    MalformedEntriesWarning,
    malformed,
)

__all__ = [
    "load_dataset", "load_pairs", "list_datasets", "find_datasets", "malformed",
    "register_dataset", "dataset_spec", "DatasetSpec", "DatasetNotFoundError",
    "MalformedEntriesWarning", "COLUMNS", "EXPRESSIONS", "RACE_GROUPS", "RACE_COARSE",
    "AGE_BINS", "PAIR_COLUMNS",
]



def load_dataset(name: str, root: str | os.PathLike | None = None,
                 split: str | list[str] | None = None, *, allow_outside_root: bool = False,
                 **options: Any) -> pd.DataFrame:
    """Read a dataset in its native layout into a manifest, one row per image.

    Parameters
    ----------
    name
        A registered dataset (:func:`list_datasets`), e.g. ``"fairface"``, ``"utkface"``,
        ``"cfd"``, ``"celeba"``, ``"fer2013"``, ``"ckplus48"``, ``"jaffe"``, ``"lfw"``,
        ``"rafdb"``, ``"deepface_pairs"``, or ``"csv"`` for your own CSV manifest.
    root
        The dataset folder, or the data root holding it under its usual folder name.
        Default: ``facelab.core.config.data_root() / <folder>``. For ``"csv"``: the CSV file.
    split
        Keep only this split (or these splits); unknown splits raise ``ValueError``.
    allow_outside_root
        Accept label-file paths that point outside the dataset root (refused by default;
        such rows are reported as malformed).
    **options
        Adapter options (documented on each adapter, e.g. ``columns=`` for ``"csv"``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` first, then dataset extras. ``attrs`` holds ``dataset``,
        ``root`` and ``malformed`` (see :func:`malformed`).
    """
    spec = dataset_spec(name)
    folder = Path(root).expanduser().resolve() if spec.folder is None and root is not None \
        else resolve_root(spec, root)
    return spec.loader(folder, split=split, allow_outside_root=allow_outside_root, **options)


def load_pairs(name: str, root: str | os.PathLike | None = None, *,
               manifest: pd.DataFrame | None = None, **options: Any) -> pd.DataFrame:
    """Labelled verification pairs shipped with a dataset (LFW ``pairs.txt``,
    ``deepface_pairs``'s ``pairs.csv``), with :data:`PAIR_COLUMNS`.

    ``index_a`` / ``index_b`` are row labels of ``manifest`` (by default
    ``load_dataset(name, root)``), so ``manifest.loc[pairs.index_a]`` gives the images.
    Pairs naming images that are not in the manifest are reported as malformed.

    Parameters
    ----------
    name : str
        A registered dataset that ships pairs (``"lfw"``, ``"deepface_pairs"``).
    root : str or os.PathLike, optional
        The dataset folder or the data root holding it.
    manifest : pandas.DataFrame, optional
        The dataset's manifest (default: ``load_dataset(name, root)``).
    **options
        Adapter options (e.g. ``pairs_file=``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`facelab.data.datasets.PAIR_COLUMNS` (``index_a``, ``index_b``: row
        labels of ``manifest``; paths, subjects, ``same`` bool, ``fold``);
        ``attrs["malformed"]`` counts the pairs left out and why.

    Raises
    ------
    ValueError
        For a dataset that ships no pairs file (or an unknown name).
    DatasetNotFoundError
        When the dataset folder is missing.
    """
    spec = dataset_spec(name)
    if spec.pairs is None:
        with_pairs = sorted(s.name for s in dataset_specs() if s.pairs is not None)
        raise ValueError(f"{spec.name} ships no pairs file; datasets with pairs: {with_pairs}. "
                         "Build pairs from identity labels with facelab.data.protocols.make_pairs.")
    folder = Path(root).expanduser().resolve() if spec.folder is None and root is not None \
        else resolve_root(spec, root)
    if manifest is None:
        manifest = load_dataset(spec.name, folder)
    return spec.pairs(folder, manifest, **options)


def list_datasets() -> pd.DataFrame:
    """Supported dataset formats: name, usual folder, labels/layout, where to get them.

    Returns
    -------
    pandas.DataFrame
        One row per registered dataset: ``dataset``, ``folder``, ``description``,
        ``layout``, ``source``, ``pairs`` (whether it ships verification pairs).
    """
    rows = [{"dataset": s.name, "folder": s.folder, "description": s.description,
             "layout": s.labels, "source": s.source, "pairs": s.pairs is not None}
            for s in dataset_specs()]
    return pd.DataFrame(rows)


def find_datasets(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Supported datasets present under ``root`` (default: the data root).

    Parameters
    ----------
    root : str or os.PathLike, optional
        The data root (default ``$FACELAB_DATA``).

    Returns
    -------
    pandas.DataFrame
        One row per dataset found: ``dataset, images, path``, plus ``malformed`` (count of
        entries skipped) and ``note`` (empty, or why loading failed; then ``images`` is -1).
    """

    base = data_root(root)
    rows = []
    for spec in dataset_specs():
        if spec.folder is None:
            continue
        try:
            folder = resolve_root(spec, base)
        except DatasetNotFoundError:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MalformedEntriesWarning)
                df = spec.loader(folder, split=None, allow_outside_root=False,
                                 **spec.count_options)
            rows.append({"dataset": spec.name, "images": len(df), "path": str(folder),
                         "malformed": len(df.attrs.get("malformed", [])), "note": ""})
        except Exception as exc:  # a broken dataset must not hide the others
            rows.append({"dataset": spec.name, "images": -1, "path": str(folder),
                         "malformed": 0, "note": f"{type(exc).__name__}: {exc}"})
    cols = ["dataset", "images", "path", "malformed", "note"]
    return pd.DataFrame(rows, columns=cols)
