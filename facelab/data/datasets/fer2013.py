"""FER2013 (Goodfellow et al. 2013), both public releases.

* Folder release: ``{train,test}/<emotion>/<Usage>_<id>.jpg``. ``split`` is the folder,
  ``usage`` the file-name prefix (``Training``/``PublicTest``/``PrivateTest``).
* CSV release: ``fer2013.csv`` with ``emotion,pixels,Usage``. By default the 48x48 grey
  pixels are decoded once into PNG files in the feature cache
  (``facelab.core.config.cache_dir()/datasets/fer2013-csv/<csv sha256>/``, never in the repo or
  the data folder), so the rows have real paths like every other dataset. With
  ``materialize=False`` the rows keep a ``pixels`` column (``uint8 (48, 48)`` arrays) and
  ``path`` is NA. ``split``: Training -> train, PublicTest -> val, PrivateTest -> test.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from facelab.core.config import cache_dir
from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import Malformed, finalize, normalise_expression

#: FER2013 CSV emotion codes.
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGE_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
_IMAGE = re.compile(r"\.(jpe?g|png)$", re.IGNORECASE)


def _csv_file(folder: Path) -> Path | None:
    for name in ("fer2013.csv", "fer2013/fer2013.csv", "icml_face_data.csv"):
        if (folder / name).is_file():
            return folder / name
    return None


def _looks_like(folder: Path) -> bool:
    if _csv_file(folder) is not None:
        return True
    return any((folder / s / e).is_dir() for s in ("train", "test") for e in EMOTIONS)


@register_dataset(
    "fer2013", folder="fer2013", looks_like=_looks_like, count_options={"materialize": False},
    description="FER2013 48x48 grey expression images (folder or CSV release)",
    source="https://www.kaggle.com/datasets/msambare/fer2013 (folders) or the ICML 2013 "
           "challenge CSV (fer2013.csv)",
    labels="{train,test}/<emotion>/*.jpg, or fer2013.csv (emotion,pixels,Usage)",
)
def load_fer2013(root: Path, *, split=None, allow_outside_root: bool = False,
                 materialize: bool = True) -> pd.DataFrame:
    """FER2013 from its folder release, or from ``fer2013.csv`` when present.

    Parameters
    ----------
    root : pathlib.Path
        The dataset folder (resolved by :func:`facelab.data.datasets.load_dataset`).
    split : str or list of str, optional
        Keep only these splits (unknown splits raise ``ValueError``).
    allow_outside_root : bool
        Accept label-file paths pointing outside ``root`` (refused by default; such rows
        are reported as malformed).
    materialize : bool
        Write the 48 x 48 grey images as PNG files in the cache (``path`` column); ``False``
        keeps a ``pixels`` column of ``uint8 (48, 48)`` arrays instead.

    Returns
    -------
    pandas.DataFrame
        One row per image, schema columns first (:data:`facelab.data.schema.COLUMNS`: ``path``,
        ``subject``, ``gender``, ``race``, ``age`` in years, ``age_bin``, ``expression``,
        ``split``); ``attrs["malformed"]`` counts the entries left out and why.
    """
    csv = _csv_file(root)
    if csv is not None:
        return _load_csv(root, csv, split=split, materialize=materialize,
                         allow_outside_root=allow_outside_root)
    bad = Malformed("fer2013")
    rows = []
    for s in sorted(d.name for d in root.iterdir() if d.is_dir()):
        for emo_dir in sorted((root / s).iterdir()):
            if not emo_dir.is_dir():
                continue
            expression = normalise_expression(emo_dir.name)
            for name in sorted(os.listdir(emo_dir)):
                rel = f"{s}/{emo_dir.name}/{name}"
                if not _IMAGE.search(name):
                    continue
                if expression is pd.NA:
                    bad.add(rel, f"unknown expression folder {emo_dir.name!r}")
                    continue
                usage = name.split("_", 1)[0] if "_" in name else pd.NA
                rows.append({"file": rel, "expression": expression,
                             "expression_original": emo_dir.name, "split": s, "usage": usage})
    df = pd.DataFrame(rows, columns=["file", "expression", "expression_original", "split",
                                     "usage"])
    return finalize(df, dataset="fer2013", root=root, bad=bad, split=split,
                    allow_outside_root=allow_outside_root)


def _load_csv(root: Path, csv: Path, *, split, materialize: bool,
              allow_outside_root: bool) -> pd.DataFrame:
    bad = Malformed("fer2013")
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    missing = {"emotion", "pixels", "Usage"} - set(table.columns)
    if missing:
        raise ValueError(f"{csv}: not a FER2013 CSV, columns {sorted(missing)} missing")
    pixels: list[np.ndarray | None] = []
    keep = []
    for i, (emo, pix) in enumerate(zip(table["emotion"], table["pixels"], strict=True)):
        arr = np.array(pix.split(), dtype=np.int64) if pix else np.zeros(0, np.int64)
        code = int(emo) if emo.strip().isdigit() else -1
        if arr.size != 48 * 48 or arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            bad.add(f"{csv.name} row {i}", f"pixels field has {arr.size} values in range "
                                           "outside 0..255 or not 48x48")
        elif not 0 <= code < len(EMOTIONS):
            bad.add(f"{csv.name} row {i}", f"unknown emotion code {emo!r}")
        else:
            keep.append(i)
            pixels.append(arr.astype(np.uint8).reshape(48, 48))
            continue
    table = table.iloc[keep].reset_index(drop=True)
    df = pd.DataFrame({
        "row": keep,
        "expression": [EMOTIONS[int(e)] for e in table["emotion"]],
        "expression_original": table["emotion"],
        "split": table["Usage"].map(USAGE_SPLIT),
        "usage": table["Usage"],
    })
    if materialize:
        folder = _materialize(csv, df["row"].tolist(), pixels)
        df["path"] = [str(folder / f"{r:05d}.png") for r in df["row"]]
        df["file"] = [f"{csv.name}#row={r}" for r in df["row"]]
        out = finalize(df, dataset="fer2013", root=folder, bad=bad, split=split)
        out.attrs["root"] = str(root)
        out.attrs["images_dir"] = str(folder)
        return out
    df["file"] = [f"{csv.name}#row={r}" for r in df["row"]]
    df["path"] = None
    df["pixels"] = pixels
    return finalize(df, dataset="fer2013", root=root, bad=bad, split=split,
                    allow_outside_root=allow_outside_root)


def _materialize(csv: Path, rows: list[int], pixels: list[np.ndarray]) -> Path:
    """Write each row as ``<row>.png`` once, atomically; a ``.complete`` marker skips reruns."""
    from PIL import Image


    h = hashlib.sha256()
    with open(csv, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    folder = cache_dir() / "datasets" / "fer2013-csv" / h.hexdigest()[:16]
    marker = folder / ".complete"
    if marker.is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for r, arr in zip(rows, pixels, strict=True):
        target = folder / f"{r:05d}.png"
        if target.is_file():
            continue
        tmp = folder / f".{r:05d}.{os.getpid()}.tmp.png"
        Image.fromarray(arr, "L").save(tmp)
        os.replace(tmp, target)
    marker.write_text(f"{len(rows)} images from {csv}\n")
    return folder
