"""A folder of photos with a pairs CSV, as in deepface's test set:
``dataset/*.jpg`` + ``pairs.csv`` (``file_x,file_y,same``)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from facelab.data.datasets._pairs import pairs_frame
from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import Malformed, finalize, inside_root

_IMAGE = re.compile(r"\.(jpe?g|png|bmp|webp|tiff?)$", re.IGNORECASE)
PAIR_FILES = ("pairs.csv",)
IMAGE_DIRS = ("dataset", "images")


def _images_dir(folder: Path) -> Path:
    return next((folder / d for d in IMAGE_DIRS if (folder / d).is_dir()), folder)


def _looks_like(folder: Path) -> bool:
    return any((folder / f).is_file() for f in PAIR_FILES)


def load_csv_pairs(root: Path, manifest: pd.DataFrame, *, pairs_file: str = "pairs.csv",
                   columns: tuple[str, str, str] = ("file_x", "file_y", "same"),
                   allow_outside_root: bool = False) -> pd.DataFrame:
    """Pairs from a CSV with two image columns (relative to the images folder) and a
    0/1 (or true/false) ``same`` column; names not in the manifest are malformed.

    Parameters
    ----------
    root : pathlib.Path
        The dataset folder.
    manifest : pandas.DataFrame
        The dataset's manifest (pairs name its rows).
    pairs_file : str
        The CSV inside ``root``.
    columns : tuple of str
        Names of the two image columns and the same-person column.
    allow_outside_root : bool
        Accept image names outside the images folder (refused by default: malformed).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`facelab.data.datasets.PAIR_COLUMNS` (``index_a``, ``index_b``: row
        labels of ``manifest``; paths, subjects, ``same`` bool, ``fold``);
        ``attrs["malformed"]`` counts the pairs left out and why.

    Raises
    ------
    ValueError
        When the named columns are missing.
    """
    bad = Malformed(manifest.attrs.get("dataset", "pairs"))
    table = pd.read_csv(root / pairs_file, dtype=str, keep_default_na=False)
    a_col, b_col, same_col = columns
    missing = {a_col, b_col, same_col} - set(table.columns)
    if missing:
        raise ValueError(f"{root / pairs_file}: columns {sorted(missing)} missing "
                         f"(have {list(table.columns)}; pass columns=(a, b, same))")
    images = _images_dir(root)
    prefix = images.relative_to(root).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    truth = {"1": True, "0": False, "true": True, "false": False, "yes": True, "no": False}
    rows = []
    for i, (a, b, s) in enumerate(zip(table[a_col], table[b_col], table[same_col], strict=True)):
        entry = f"{pairs_file}:{i + 2}"
        same = truth.get(s.strip().lower())
        if same is None:
            bad.add(entry, f"same must be 0/1 or true/false, got {s!r}")
            continue
        if not allow_outside_root and not all(inside_root(images / n, root) for n in (a, b)):
            bad.add(entry, "path outside the dataset root")
            continue
        rows.append((entry, prefix + a, prefix + b, same, pd.NA))
    return pairs_frame(manifest.attrs.get("dataset", "pairs"), manifest, rows, bad)


@register_dataset(
    "deepface_pairs", folder="deepface_pairs", looks_like=_looks_like, pairs=load_csv_pairs,
    aliases=("pairs_csv",),
    description="a folder of photos with a labelled pairs CSV (deepface's test set layout)",
    source="https://github.com/serengil/deepface/tree/master/tests/dataset",
    labels="dataset/*.jpg + pairs.csv (file_x,file_y,same)",
)
def load_pairs_folder(root: Path, *, split=None, allow_outside_root: bool = False
                      ) -> pd.DataFrame:
    """Every image of the images folder (one row each; no identity labels). The labelled
    pairs come from :func:`facelab.data.datasets.load_pairs`.

    Parameters
    ----------
    root : pathlib.Path
        The dataset folder (resolved by :func:`facelab.data.datasets.load_dataset`).
    split : str or list of str, optional
        Keep only these splits (unknown splits raise ``ValueError``).
    allow_outside_root : bool
        Accept label-file paths pointing outside ``root`` (refused by default; such rows
        are reported as malformed).

    Returns
    -------
    pandas.DataFrame
        One row per image, schema columns first (:data:`facelab.data.schema.COLUMNS`: ``path``,
        ``subject``, ``gender``, ``race``, ``age`` in years, ``age_bin``, ``expression``,
        ``split``); ``attrs["malformed"]`` counts the entries left out and why.
    """
    images = _images_dir(root)
    files = sorted(p for p in images.iterdir() if p.is_file() and _IMAGE.search(p.name))
    df = pd.DataFrame({"file": [p.relative_to(root).as_posix() for p in files]})
    return finalize(df, dataset="deepface_pairs", root=root, bad=Malformed("deepface_pairs"),
                    split=split, allow_outside_root=allow_outside_root)
