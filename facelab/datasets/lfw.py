"""Labeled Faces in the Wild (Huang et al. 2007): ``lfw/<Name>/<Name>_<NNNN>.jpg`` +
``pairs.txt`` (the 10-fold view 2 protocol; ``pairsDevTrain.txt``-style files also work)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from facelab.datasets._pairs import pairs_frame
from facelab.datasets._registry import register_dataset
from facelab.datasets.schema import Malformed, finalize

_IMAGE = re.compile(r"^(.+)_(\d{4})\.jpe?g$", re.IGNORECASE)
IMAGE_DIRS = ("lfw", "lfw-deepfunneled", "lfw_funneled", "lfw-funneled")


def _images_dir(folder: Path) -> Path:
    for sub in IMAGE_DIRS:
        if (folder / sub).is_dir():
            return folder / sub
    return folder


def _looks_like(folder: Path) -> bool:
    images = _images_dir(folder)
    for i, d in enumerate(images.iterdir()):
        if d.is_dir() and (d / f"{d.name}_0001.jpg").is_file():
            return True
        if i > 20:
            break
    return False


def _image_name(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def load_lfw_pairs(root: Path, manifest: pd.DataFrame, *, pairs_file: str = "pairs.txt"
                   ) -> pd.DataFrame:
    """LFW ``pairs.txt``: header ``<folds> <n>`` (or ``<n>``), then per fold ``n`` same-person
    lines ``Name n1 n2`` and ``n`` different-person lines ``Name1 n1 Name2 n2``."""
    bad = Malformed("lfw")
    images = _images_dir(root)
    prefix = images.relative_to(root).as_posix()
    prefix = "" if prefix == "." else prefix + "/"
    path = next((p for p in (root / pairs_file, images / pairs_file, root.parent / pairs_file)
                 if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"lfw: no {pairs_file} in {root}")
    with open(path, encoding="utf-8") as fh:
        lines = [ln.split() for ln in fh if ln.strip()]
    head = [int(v) for v in lines[0]]
    folds, per = (1, head[0]) if len(head) == 1 else (head[0], head[1])
    rows = []
    for i, parts in enumerate(lines[1:]):
        fold = min(i // (2 * per), folds - 1)
        entry = f"{path.name}:{i + 2}"
        if len(parts) == 3:
            rows.append((entry, prefix + _image_name(parts[0], parts[1]),
                         prefix + _image_name(parts[0], parts[2]), True, fold))
        elif len(parts) == 4:
            rows.append((entry, prefix + _image_name(parts[0], parts[1]),
                         prefix + _image_name(parts[2], parts[3]), False, fold))
        else:
            bad.add(entry, f"expected 3 or 4 fields, got {' '.join(parts)!r}")
    if len(lines) - 1 != folds * per * 2:
        bad.add(path.name, f"header announces {folds} x 2 x {per} pairs, file has "
                           f"{len(lines) - 1} lines")
    return pairs_frame("lfw", manifest, rows, bad)


@register_dataset(
    "lfw", folder="lfw", looks_like=_looks_like, pairs=load_lfw_pairs,
    description="Labeled Faces in the Wild (identity; pairs.txt verification protocol)",
    source="https://vis-www.cs.umass.edu/lfw/",
    labels="lfw/<Name>/<Name>_<NNNN>.jpg + pairs.txt",
)
def load_lfw(root: Path, *, split=None, allow_outside_root: bool = False) -> pd.DataFrame:
    """LFW images; ``subject`` is the person's folder name. Pairs: :func:`load_pairs`."""
    bad = Malformed("lfw")
    images = _images_dir(root)
    rows = []
    for person in sorted(os.listdir(images)):
        pdir = images / person
        if not pdir.is_dir():
            continue
        for name in sorted(os.listdir(pdir)):
            m = _IMAGE.match(name)
            rel = (pdir / name).relative_to(root).as_posix()
            if m is None or m.group(1) != person:
                if name.lower().endswith((".jpg", ".jpeg")):
                    bad.add(rel, "file name is not <Name>_<NNNN>.jpg inside <Name>/")
                continue
            rows.append({"file": rel, "subject": person, "image_number": int(m.group(2))})
    df = pd.DataFrame(rows, columns=["file", "subject", "image_number"])
    return finalize(df, dataset="lfw", root=root, bad=bad, split=split,
                    allow_outside_root=allow_outside_root)
