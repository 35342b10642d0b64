"""CelebA (Liu et al. 2015): ``img_celeba/`` or ``img_align_celeba/`` + ``identity_CelebA.txt``,
optionally ``list_attr_celeba.txt`` and ``list_eval_partition.txt``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import Malformed, finalize

IDENTITY_FILE = "identity_CelebA.txt"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIRS = ("img_celeba", "img_align_celeba")
PARTITIONS = {"0": "train", "1": "val", "2": "test"}


def _find(folder: Path, name: str) -> Path | None:
    for cand in (folder / name, folder / "Anno" / name, folder / "Eval" / name):
        if cand.is_file():
            return cand
    return None


def _looks_like(folder: Path) -> bool:
    return _find(folder, IDENTITY_FILE) is not None or _find(folder, ATTR_FILE) is not None


def _read_pairs_file(path: Path, bad: Malformed, what: str) -> pd.DataFrame:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                bad.add(f"{path.name}:{n}", f"expected 'file {what}', got {line.strip()!r}")
                continue
            rows.append(parts)
    return pd.DataFrame(rows, columns=["name", what])


def read_attributes(path: Path) -> pd.DataFrame:
    """``list_attr_celeba.txt`` as a boolean frame indexed by file name (``+1`` -> True).

    Parameters
    ----------
    path : pathlib.Path
        The attribute file (CelebA release layout: count line, header line, one line per
        image with 40 ``+1``/``-1`` values).

    Returns
    -------
    pandas.DataFrame
        ``(n_images, 40)`` bool, indexed by file name.
    """
    with open(path, encoding="utf-8") as fh:
        fh.readline()  # count
        names = fh.readline().split()
        table = pd.read_csv(fh, sep=r"\s+", header=None, names=["name", *names], dtype=str)
    table = table.set_index("name")
    return table.apply(lambda c: c.astype(int) > 0)


@register_dataset(
    "celeba", folder="celeba", looks_like=_looks_like,
    description="CelebA in-the-wild celebrity photos (identity; attributes if present)",
    source="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    labels="img_celeba/NNNNNN.jpg (or img_align_celeba/) + identity_CelebA.txt "
           "[+ list_attr_celeba.txt, list_eval_partition.txt]",
)
def load_celeba(root: Path, *, split=None, allow_outside_root: bool = False,
                images: str | None = None, attributes: bool = True) -> pd.DataFrame:
    """CelebA. Only images present on disk are listed (a partial copy is normal); label
    lines for absent files are counted in ``attrs["absent"]``, not reported as malformed.

    Parameters
    ----------
    images
        Image folder to use (default: the first of ``img_celeba``, ``img_align_celeba``
        that exists).
    attributes
        Add the 40 attributes as boolean ``attr_<Name>`` columns when
        ``list_attr_celeba.txt`` exists; ``gender`` then comes from ``Male``.
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
    bad = Malformed("celeba")
    image_dir = root / images if images else next(
        (root / d for d in IMAGE_DIRS if (root / d).is_dir()), root / IMAGE_DIRS[0])
    on_disk = {p.name for p in image_dir.iterdir()} if image_dir.is_dir() else set()
    id_file = _find(root, IDENTITY_FILE)
    if id_file is not None:
        table = _read_pairs_file(id_file, bad, "subject")
    else:
        table = pd.DataFrame({"name": sorted(on_disk), "subject": pd.NA})
    present = table["name"].isin(on_disk)
    absent = int((~present).sum())
    table = table[present].reset_index(drop=True)
    df = pd.DataFrame({"file": [(image_dir / n).relative_to(root).as_posix()
                                for n in table["name"]],
                       "subject": table["subject"]})
    part_file = _find(root, PARTITION_FILE)
    if part_file is not None:
        part = _read_pairs_file(part_file, bad, "partition").set_index("name")["partition"]
        df["split"] = table["name"].map(part).map(PARTITIONS).to_numpy()
    attr_file = _find(root, ATTR_FILE) if attributes else None
    if attr_file is not None:
        attrs = read_attributes(attr_file).reindex(table["name"])
        if "Male" in attrs:
            male = attrs["Male"].to_numpy()
            df["gender"] = np.where(pd.isna(male), None,
                                    np.where(male == True, "male", "female"))  # noqa: E712
        for col in attrs.columns:
            df[f"attr_{col}"] = attrs[col].astype("boolean").to_numpy()
    out = finalize(df, dataset="celeba", root=root, bad=bad, split=split,
                   allow_outside_root=allow_outside_root)
    out.attrs["absent"] = absent
    return out
