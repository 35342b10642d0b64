"""JAFFE (Lyons et al. 1998): ``jaffe/<XX>.<EXn>.<id>.tiff`` (10 Japanese women)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import Malformed, coarse_race, finalize, normalise_expression

_NAME = re.compile(r"^([A-Z]{2})\.([A-Z]{2})(\d*)\.(\d+)\.tiff?$", re.IGNORECASE)


def _images_dir(folder: Path) -> Path:
    return folder / "jaffe" if (folder / "jaffe").is_dir() else folder


def _looks_like(folder: Path) -> bool:
    images = _images_dir(folder)
    return any(_NAME.match(n) for n in os.listdir(images))


@register_dataset(
    "jaffe", folder="jaffe", looks_like=_looks_like,
    description="JAFFE posed expressions of 10 Japanese women (TIFF)",
    source="https://zenodo.org/record/3451524",
    labels="jaffe/<XX>.<EXn>.<id>.tiff (EX in AN DI FE HA NE SA SU)",
)
def load_jaffe(root: Path, *, split=None, allow_outside_root: bool = False) -> pd.DataFrame:
    """JAFFE. All posers are Japanese women, as the dataset documents: ``gender`` is
    ``female``, ``race_original`` ``Japanese`` (coarse ``Asian``). Extra column ``image_id``.

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
    bad = Malformed("jaffe")
    images = _images_dir(root)
    rows = []
    for name in sorted(os.listdir(images)):
        if not re.search(r"\.tiff?$", name, re.IGNORECASE):
            continue
        rel = (images / name).relative_to(root).as_posix()
        m = _NAME.match(name)
        expression = normalise_expression(m.group(2)) if m else pd.NA
        if m is None or expression is pd.NA:
            bad.add(rel, "file name is not <XX>.<EXn>.<id>.tiff with a known expression code")
            continue
        rows.append({"file": rel, "subject": m.group(1).upper(), "expression": expression,
                     "expression_original": m.group(2).upper(), "gender": "female",
                     "race_original": "Japanese", "image_id": int(m.group(4))})
    df = pd.DataFrame(rows, columns=["file", "subject", "expression", "expression_original",
                                     "gender", "race_original", "image_id"])
    df["race"] = coarse_race("jaffe", df["race_original"])
    return finalize(df, dataset="jaffe", root=root, bad=bad, split=split,
                    allow_outside_root=allow_outside_root)
