"""FairFace (Karkkainen & Joo 2021): ``{train,val}/N.jpg`` + ``fairface_label_{train,val}.csv``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import Malformed, coarse_race, finalize, normalise_gender

SPLITS = ("train", "val")
LABEL_FILE = "fairface_label_{split}.csv"


def _looks_like(folder: Path) -> bool:
    return any((folder / LABEL_FILE.format(split=s)).is_file() for s in SPLITS)


@register_dataset(
    "fairface", folder="fairface", looks_like=_looks_like,
    description="FairFace padded face crops (race, gender, age bin)",
    source="https://github.com/joojs/fairface",
    labels="fairface_label_{train,val}.csv (file,age,gender,race,service_test) + train/, val/",
)
def load_fairface(root: Path, *, split=None, allow_outside_root: bool = False) -> pd.DataFrame:
    """FairFace. No identity labels: ``subject`` is NA (different files are treated as
    different people by :func:`facelab.data.protocols.make_pairs` with ``missing="distinct"``).
    Extra column: ``service_test``.

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
    bad = Malformed("fairface")
    frames = []
    for s in SPLITS:
        label_file = root / LABEL_FILE.format(split=s)
        if not label_file.is_file():
            continue
        lab = pd.read_csv(label_file, dtype=str, keep_default_na=False)
        missing = {"file", "age", "gender", "race"} - set(lab.columns)
        if missing:
            bad.add(label_file.name, f"label file lacks columns {sorted(missing)}")
            continue
        empty = (lab[["file", "gender", "race"]] == "").any(axis=1)
        for f in lab.loc[empty, "file"]:
            bad.add(f or f"{label_file.name} (empty file name)", "empty label field")
        lab = lab[~empty]
        frame = pd.DataFrame({
            "file": lab["file"],
            "gender": lab["gender"].map(normalise_gender),
            "race_original": lab["race"],
            "race": coarse_race("fairface", lab["race"]),
            "age_bin": lab["age"].replace("", pd.NA),
            "split": s,
        })
        if "service_test" in lab:
            frame["service_test"] = lab["service_test"].str.upper().map(
                {"TRUE": True, "FALSE": False}).astype("boolean")
        unknown = frame["race"].isna()
        for f, r in zip(frame.loc[unknown, "file"], frame.loc[unknown, "race_original"],
                        strict=True):
            bad.add(f, f"unknown race label {r!r}")
        frames.append(frame[~unknown])
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"file": []})
    return finalize(df, dataset="fairface", root=root, bad=bad, split=split, check_files=True,
                    allow_outside_root=allow_outside_root)
