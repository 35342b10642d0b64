"""RAF-DB basic (Li & Deng 2017): ``EmoLabel/list_patition_label.txt`` + ``Image/aligned/``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import Malformed, finalize

LABEL_FILE = "EmoLabel/list_patition_label.txt"  # sic: the release's spelling
#: RAF-DB basic codes.
EMOTIONS = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "angry",
            7: "neutral"}
ORIGINAL = {1: "Surprise", 2: "Fear", 3: "Disgust", 4: "Happiness", 5: "Sadness", 6: "Anger",
            7: "Neutral"}


def _looks_like(folder: Path) -> bool:
    return (folder / LABEL_FILE).is_file()


@register_dataset(
    "rafdb", folder="rafdb", looks_like=_looks_like, aliases=("raf-db", "basic"),
    description="RAF-DB basic expression set (7 classes)",
    source="http://www.whdeng.cn/raf/model1.html",
    labels="EmoLabel/list_patition_label.txt (<name>.jpg <1-7>) + Image/aligned/"
           "<name>_aligned.jpg",
)
def load_rafdb(root: Path, *, split=None, allow_outside_root: bool = False,
               aligned: bool = True) -> pd.DataFrame:
    """RAF-DB basic. ``split`` from the name prefix (``train_``/``test_``).
    ``aligned=False`` uses ``Image/original/<name>.jpg``. Label lines whose image file
    is missing are reported as malformed.

    Parameters
    ----------
    root : pathlib.Path
        The dataset folder (resolved by :func:`facelab.data.datasets.load_dataset`).
    split : str or list of str, optional
        Keep only these splits (unknown splits raise ``ValueError``).
    allow_outside_root : bool
        Accept label-file paths pointing outside ``root`` (refused by default; such rows
        are reported as malformed).
    aligned : bool
        Use the release's aligned 100 x 100 crops instead of the original images.

    Returns
    -------
    pandas.DataFrame
        One row per image, schema columns first (:data:`facelab.data.schema.COLUMNS`: ``path``,
        ``subject``, ``gender``, ``race``, ``age`` in years, ``age_bin``, ``expression``,
        ``split``); ``attrs["malformed"]`` counts the entries left out and why.
    """
    bad = Malformed("rafdb")
    rows = []
    with open(root / LABEL_FILE, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) not in EMOTIONS:
                bad.add(f"{LABEL_FILE}:{n}", f"expected '<name>.jpg <1-7>', got {line.strip()!r}")
                continue
            name, code = parts[0], int(parts[1])
            stem = name.rsplit(".", 1)[0]
            rel = f"Image/aligned/{stem}_aligned.jpg" if aligned else f"Image/original/{name}"
            prefix = stem.split("_", 1)[0].lower()
            rows.append({"file": rel, "expression": EMOTIONS[code],
                         "expression_original": ORIGINAL[code],
                         "split": prefix if prefix in ("train", "test") else pd.NA,
                         "label": code})
    df = pd.DataFrame(rows, columns=["file", "expression", "expression_original", "split",
                                     "label"])
    return finalize(df, dataset="rafdb", root=root, bad=bad, split=split, check_files=True,
                    allow_outside_root=allow_outside_root)
