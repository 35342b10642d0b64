"""CK+48 (the 48x48 crops of the extended Cohn-Kanade set, Lucey et al. 2010):
``CK+48/<emotion>/S###_###_########.png``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import Malformed, finalize, normalise_expression

_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.(png|jpe?g)$", re.IGNORECASE)
EMOTION_DIRS = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")


def _images_dir(folder: Path) -> Path:
    return folder / "CK+48" if (folder / "CK+48").is_dir() else folder


def _looks_like(folder: Path) -> bool:
    images = _images_dir(folder)
    return sum((images / e).is_dir() for e in EMOTION_DIRS) >= 3


@register_dataset(
    "ckplus48", folder="ckplus48", looks_like=_looks_like, aliases=("ck+48", "ck+", "ckplus"),
    description="CK+48 posed expression frames, 48x48 grey (subject from the file name)",
    source="https://www.jeffcohn.net/Resources/ (CK+); CK+48 crops on Kaggle",
    labels="CK+48/<emotion>/S###_###_########.png",
)
def load_ckplus48(root: Path, *, split=None, allow_outside_root: bool = False) -> pd.DataFrame:
    """CK+48. ``subject`` = ``S###``; extra columns ``sequence`` and ``frame``. Frames of one
    sequence are near duplicates: split by subject, never by frame.

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
    bad = Malformed("ckplus48")
    images = _images_dir(root)
    rows = []
    for emo_dir in sorted(p for p in images.iterdir() if p.is_dir()):
        expression = normalise_expression(emo_dir.name)
        for name in sorted(os.listdir(emo_dir)):
            rel = (emo_dir / name).relative_to(root).as_posix()
            m = _NAME.match(name)
            if not re.search(r"\.(png|jpe?g)$", name, re.IGNORECASE):
                continue
            if m is None or expression is pd.NA:
                bad.add(rel, "file name is not S###_###_########.png"
                        if m is None else f"unknown expression folder {emo_dir.name!r}")
                continue
            rows.append({"file": rel, "subject": m.group(1), "expression": expression,
                         "expression_original": emo_dir.name,
                         "sequence": f"{m.group(1)}_{m.group(2)}", "frame": int(m.group(3))})
    df = pd.DataFrame(rows, columns=["file", "subject", "expression", "expression_original",
                                     "sequence", "frame"])
    return finalize(df, dataset="ckplus48", root=root, bad=bad, split=split,
                    allow_outside_root=allow_outside_root)
