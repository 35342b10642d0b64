"""Chicago Face Database (Ma, Correll & Wittenbrink 2015):
``CFD/<target>/CFD-<RG>-<nnn>-<img>-<EXPR>.jpg``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import Malformed, coarse_race, finalize, normalise_expression

_NAME = re.compile(r"^CFD-([A-Z])([FM])-(\d+)-(\d+)-([A-Z]+)\.(jpe?g|png)$", re.IGNORECASE)
RACES = {"A": "Asian", "B": "Black", "I": "Indian", "L": "Latino", "M": "Multiracial",
         "W": "White"}


def _images_dir(folder: Path) -> Path:
    for sub in ("CFD", "Images/CFD", "images/CFD"):
        if (folder / sub).is_dir():
            return folder / sub
    return folder


def _looks_like(folder: Path) -> bool:
    images = _images_dir(folder)
    return any(d.is_dir() and re.match(r"^[A-Z][FM]-\d+$", d.name) for d in images.iterdir())


@register_dataset(
    "cfd", folder="cfd", looks_like=_looks_like, aliases=("chicago",),
    description="Chicago Face Database studio portraits (race, gender, expression)",
    source="https://www.chicagofaces.org/",
    labels="CFD/<target>/CFD-<RG>-<nnn>-<img>-<EXPR>.jpg (R race A/B/I/L/M/W, G gender F/M, "
           "EXPR N/A/F/HC/HO)",
)
def load_cfd(root: Path, *, split=None, allow_outside_root: bool = False) -> pd.DataFrame:
    """CFD. ``subject`` is the target id (``BF-001``), ``race_original`` the letter code;
    extra columns ``race_name`` and ``image_code``. HC/HO (happy, closed/open mouth) both
    map to ``happy``; ``expression_original`` keeps the code.

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
    bad = Malformed("cfd")
    images = _images_dir(root)
    rows = []
    for dirpath, _, files in os.walk(images):
        for name in sorted(files):
            if not re.search(r"\.(jpe?g|png)$", name, re.IGNORECASE):
                continue
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            m = _NAME.match(name)
            if m is None:
                bad.add(rel, "file name does not follow CFD-<RG>-<nnn>-<img>-<EXPR>")
                continue
            race, gender, num, img, expr = (g.upper() for g in m.groups()[:5])
            expression = normalise_expression(expr)
            if expression is pd.NA or race not in RACES:
                bad.add(rel, f"unknown expression code {expr!r} or race code {race!r}")
                continue
            rows.append({"file": rel, "subject": f"{race}{gender}-{num}",
                         "gender": "female" if gender == "F" else "male",
                         "race_original": race, "race_name": RACES[race],
                         "expression": expression, "expression_original": expr,
                         "image_code": img})
    df = pd.DataFrame(rows, columns=["file", "subject", "gender", "race_original", "race_name",
                                     "expression", "expression_original", "image_code"])
    df = df.sort_values("file", ignore_index=True)
    df["race"] = coarse_race("cfd", df["race_original"])
    return finalize(df, dataset="cfd", root=root, bad=bad, split=split,
                    allow_outside_root=allow_outside_root)
