"""UTKFace (Zhang et al. 2017): ``UTKFace/{age}_{gender}_{race}_{datetime}.jpg.chip.jpg``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import Malformed, coarse_race, finalize

#: UTKFace codes as documented by its authors.
GENDERS = {0: "male", 1: "female"}
RACES = {0: "White", 1: "Black", 2: "Asian", 3: "Indian", 4: "Others"}
#: "The age is an integer from 0 to 116" (UTKFace's README, Zhang et al. 2017).
AGE_RANGE = (0, 116)
_NAME = re.compile(r"^(\d+)_(\d+)_(\d+)_(\d+)")
_IMAGE = re.compile(r"\.(jpe?g|png)$", re.IGNORECASE)


def _images_dir(folder: Path) -> Path:
    for sub in ("UTKFace", "utkface", "crop_part1"):
        if (folder / sub).is_dir():
            return folder / sub
    return folder


def _looks_like(folder: Path) -> bool:
    images = _images_dir(folder)
    with os.scandir(images) as it:
        for i, entry in enumerate(it):
            if entry.name.endswith(".chip.jpg") or _NAME.match(entry.name):
                return True
            if i > 50:
                break
    return False


@register_dataset(
    "utkface", folder="utkface", looks_like=_looks_like,
    description="UTKFace aligned crops (age, gender, race from the file name)",
    source="https://susanqq.github.io/UTKFace/",
    labels="UTKFace/{age}_{gender}_{race}_{datetime}.jpg.chip.jpg",
)
def load_utkface(root: Path, *, split=None, allow_outside_root: bool = False) -> pd.DataFrame:
    """UTKFace. Names without the four numeric fields (the release has a few with the
    race missing), unknown gender or race codes and ages outside the documented 0-116
    (:data:`AGE_RANGE`) are reported as malformed entries with their reason
    (:func:`facelab.data.datasets.malformed`). No identity labels.

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
    bad = Malformed("utkface")
    images = _images_dir(root)
    rows = []
    for name in sorted(os.listdir(images)):
        if not _IMAGE.search(name):
            continue
        m = _NAME.match(name)
        rel = (images / name).relative_to(root).as_posix()
        if m is None:
            bad.add(rel, "file name lacks one of the fields age_gender_race_datetime")
            continue
        age, gender, race = (int(g) for g in m.groups()[:3])
        if gender not in GENDERS or race not in RACES:
            bad.add(rel, f"unknown gender code {gender} or race code {race}")
            continue
        if not AGE_RANGE[0] <= age <= AGE_RANGE[1]:
            bad.add(rel, f"age {age} is outside the documented range {AGE_RANGE[0]}-"
                         f"{AGE_RANGE[1]}")
            continue
        rows.append({"file": rel, "age": float(age), "gender": GENDERS[gender],
                     "race_original": RACES[race], "race_code": race})
    df = pd.DataFrame(rows, columns=["file", "age", "gender", "race_original", "race_code"])
    df["race"] = coarse_race("utkface", df["race_original"])
    return finalize(df, dataset="utkface", root=root, bad=bad, split=split,
                    allow_outside_root=allow_outside_root)
