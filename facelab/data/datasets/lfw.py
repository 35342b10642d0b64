"""Labeled Faces in the Wild (Huang et al. 2007): ``lfw/<Name>/<Name>_<NNNN>.jpg`` +
``pairs.txt`` (the 10-fold view 2 protocol; ``pairsDevTrain.txt``-style files also work),
with the optional demographic labels circulated with LFW:

* ``male_names.txt`` / ``female_names.txt``: one image file name per line (gender **per
  image**, an annotation of appearance);
* ``lfw_race.json``: ``{person: label}`` from USC SAIL's MICA race-from-face annotations
  (``caucasian``, ``african``, ``eastasian``, ``asianindian``, ``latino``, ``nativeamerican``,
  ``pacificislander``, ``other``, or several of them joined by commas): race **per person**.

Ambiguous labels are never resolved by guessing; each case is counted in
``df.attrs["label_report"]`` (see :func:`label_report`):

* an image listed in **both** gender lists, or in **neither**, gets no gender;
* a person whose images carry **different** genders gets no gender on any image;
* a comma-joined race combination keeps its text in ``race_original`` and maps to the
  coarse group given by ``race_combined`` (default ``"Other"``, as CFD's multiracial "M";
  ``None`` leaves it missing);
* list entries that are not ``<Name>_<NNNN>.jpg`` are malformed; entries naming images
  that are not on disk are counted (``absent``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from facelab.data.datasets._pairs import pairs_frame
from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import Malformed, finalize

_IMAGE = re.compile(r"^(.+)_(\d{4})\.jpe?g$", re.IGNORECASE)
IMAGE_DIRS = ("lfw", "lfw-deepfunneled", "lfw_funneled", "lfw-funneled")
GENDER_FILES = {"male": "male_names.txt", "female": "female_names.txt"}
RACE_FILE = "lfw_race.json"

#: MICA race labels -> coarse :data:`facelab.data.schema.RACE_GROUPS`.
LFW_RACE_COARSE: dict[str, str] = {
    "caucasian": "White", "african": "Black", "eastasian": "Asian", "asianindian": "Indian",
    "latino": "Latino", "nativeamerican": "Other", "pacificislander": "Other",
    "other": "Other",
}

__all__ = ["load_lfw", "load_lfw_pairs", "label_report", "LFW_RACE_COARSE"]


def label_report(manifest) -> pd.DataFrame:
    """How the LFW adapter handled its demographic label files: one row per case
    (``label, case, count, example``), from ``manifest.attrs["label_report"]``.

    Parameters
    ----------
    manifest : pandas.DataFrame
        :func:`load_lfw`'s manifest.

    Returns
    -------
    pandas.DataFrame
        Columns ``label``, ``case``, ``count``, ``example``.
    """
    rows = manifest.attrs.get("label_report", [])
    return pd.DataFrame(list(rows), columns=["label", "case", "count", "example"])


def _label_file(root: Path, images: Path, name: str) -> Path | None:
    return next((p for p in (root / name, images / name, root.parent / name) if p.is_file()),
                None)


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
    lines ``Name n1 n2`` and ``n`` different-person lines ``Name1 n1 Name2 n2``.

    Parameters
    ----------
    root : pathlib.Path
        The LFW folder.
    manifest : pandas.DataFrame
        :func:`load_lfw`'s manifest (pairs name its rows).
    pairs_file : str
        The pairs file inside ``root``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`facelab.data.datasets.PAIR_COLUMNS` (``index_a``, ``index_b``: row
        labels of ``manifest``; paths, subjects, ``same`` bool, ``fold``);
        ``attrs["malformed"]`` counts the pairs left out and why.

    Raises
    ------
    FileNotFoundError
        When the pairs file is missing.
    """
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
def load_lfw(root: Path, *, split=None, allow_outside_root: bool = False,
             labels: bool = True, race_combined: str | None = "Other") -> pd.DataFrame:
    """LFW images; ``subject`` is the person's folder name. Pairs: :func:`load_pairs`.

    Parameters
    ----------
    labels
        Read ``male_names.txt``, ``female_names.txt`` and ``lfw_race.json`` when present
        (beside the image folder, inside it, or one level up): ``gender`` per image,
        ``race`` / ``race_original`` per person. Extra columns ``gender_original``
        (``"male"``, ``"female"``, ``"both"`` or missing: what the lists say of this image)
        and ``race_labels`` (number of race labels the person has).
    race_combined
        Coarse group for people with several comma-joined race labels (kept whole in
        ``race_original``); ``None`` leaves their ``race`` missing.
    root : pathlib.Path
        The dataset folder (resolved by :func:`facelab.data.datasets.load_dataset`).
    split : str or list of str, optional
        Keep only these splits (unknown splits raise ``ValueError``).
    allow_outside_root : bool
        Accept label-file paths pointing outside ``root`` (refused by default; such rows
        are reported as malformed).

    Returns
    -------
    DataFrame
        The manifest; ``attrs["label_report"]`` counts every ambiguous or unusable label
        (see :func:`label_report`).
    """
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
    report: list[dict] = []
    if labels:
        _add_gender(df, root, images, bad, report)
        _add_race(df, root, images, bad, report, race_combined)
    out = finalize(df, dataset="lfw", root=root, bad=bad, split=split,
                   allow_outside_root=allow_outside_root)
    out.attrs["label_report"] = report
    return out


def _note(report: list[dict], label: str, case: str, items: list[str]) -> None:
    report.append({"label": label, "case": case, "count": len(items),
                   "example": ", ".join(sorted(items)[:3])})


def _add_gender(df: pd.DataFrame, root: Path, images: Path, bad: Malformed,
                report: list[dict]) -> None:
    files = {g: _label_file(root, images, name) for g, name in GENDER_FILES.items()}
    if all(p is None for p in files.values()):
        return
    names = df["file"].str.rsplit("/", n=1).str[-1]
    listed: dict[str, set[str]] = {}
    for gender, path in files.items():
        if path is None:
            _note(report, "gender", f"{GENDER_FILES[gender]} not found: no image is "
                  f"labelled {gender}", [])
            continue
        seen: set[str] = set()
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                entry = line.strip()
                if not entry:
                    continue
                if _IMAGE.match(entry) is None:
                    bad.add(f"{path.name}:{n}", f"expected an image file name "
                                                f"<Name>_<NNNN>.jpg, got {entry!r}")
                    continue
                seen.add(entry)
        listed[gender] = seen
    male, female = listed.get("male", set()), listed.get("female", set())
    on_disk = set(names)
    _note(report, "gender", "listed image not on disk (ignored)",
          sorted((male | female) - on_disk))
    both = male & female
    is_m = names.isin(male).to_numpy()
    is_f = names.isin(female).to_numpy()
    original = np.where(is_m & is_f, "both", np.where(is_m, "male",
                                                      np.where(is_f, "female", None)))
    gender = pd.Series(np.where(is_m & is_f, None, original), index=df.index, dtype="string")
    _note(report, "gender", "image in both gender lists (no gender)", sorted(both & on_disk))
    _note(report, "gender", "image in neither gender list (no gender)",
          names[~is_m & ~is_f].tolist())
    per_person = gender.dropna().groupby(df["subject"]).nunique()
    mixed = per_person.index[per_person > 1]
    conflict = df["subject"].isin(mixed).to_numpy()
    gender[conflict] = pd.NA
    _note(report, "gender", "person whose images carry different genders (no gender on any "
          "of their images)", list(mixed))
    df["gender"] = gender
    df["gender_original"] = pd.Series(original, index=df.index, dtype="string")


def _add_race(df: pd.DataFrame, root: Path, images: Path, bad: Malformed,
              report: list[dict], race_combined: str | None) -> None:
    path = _label_file(root, images, RACE_FILE)
    if path is None:
        return
    try:
        with open(path, encoding="utf-8") as fh:
            table = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"lfw: {path} is not valid JSON (line {exc.lineno}: {exc.msg})"
                         ) from exc
    if not isinstance(table, Mapping):
        raise ValueError(f"lfw: {path} must hold an object {{person: label}}, got "
                         f"{type(table).__name__}")
    people = set(df["subject"])
    original: dict[str, str] = {}
    coarse: dict[str, str | None] = {}
    n_labels: dict[str, int] = {}
    combined, unknown = [], []
    for person, label in table.items():
        if not isinstance(label, str) or not label.strip():
            bad.add(f"{path.name}:{person}", f"race label must be a non-empty text, got "
                                             f"{label!r}")
            continue
        parts = [p.strip().lower() for p in label.split(",") if p.strip()]
        original[person] = label
        n_labels[person] = len(parts)
        if any(p not in LFW_RACE_COARSE for p in parts):
            unknown.append(person)
            coarse[person] = None
        elif len(set(parts)) == 1:
            coarse[person] = LFW_RACE_COARSE[parts[0]]
        else:
            combined.append(person)
            coarse[person] = race_combined
    _note(report, "race", "person in lfw_race.json without images (ignored)",
          sorted(set(original) - people))
    _note(report, "race", "label outside the MICA vocabulary (no race)", unknown)
    where = "missing" if race_combined is None else repr(race_combined)
    _note(report, "race", f"several race labels joined by commas (race {where}; the "
          "combination kept in race_original)", [p for p in combined if p in people])
    _note(report, "race", "person without a race label (no race)",
          sorted(people - set(original)))
    df["race_original"] = df["subject"].map(original).astype("string")
    df["race"] = df["subject"].map(coarse).astype("string")
    df["race_labels"] = df["subject"].map(n_labels).astype("Int64")
