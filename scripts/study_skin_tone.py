"""Reproduce the skin-tone (ITA) figures in docs/models.md: stability for one person
(CelebA, LFW), brightness sensitivity (CFD) and ITA category by race label (FairFace val,
UTKFace, CFD, LFW). Every image goes through ``facelab.extract`` (cached).

Usage (from the repo root, FACELAB_DATA set)::

    .venv/bin/python scripts/study_skin_tone.py stability    # ~5 min on an empty cache
    .venv/bin/python scripts/study_skin_tone.py brightness   # ~1 min
    .venv/bin/python scripts/study_skin_tone.py race         # ~3 min on an empty cache
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import pandas as pd

from facelab.data.datasets import load_dataset
from facelab.studies.skin_tone import add_skin_tone
from facelab.studies import skin_tone as S

pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 40)


def _load(name: str, split: str | None = None) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(name, split=split)


def stability() -> None:
    images, notes = S.stability_by_person(("celeba", "lfw"), limit=None, progress=True)
    print(*notes, sep="\n")
    flags = images["skin_flag"].str.replace(r":.*", "", regex=True)
    print(flags[flags != ""].groupby(images["dataset"]).value_counts())
    print(S.stability_summary(images).T.to_string())


def brightness() -> None:
    cfd = _load("cfd")
    shifts = S.brightness_sensitivity(cfd, n=None, progress=True,
                                      factors=(0.9, 0.8, 0.7, 0.5, 0.3, 0.15, 1.2))
    print(S.brightness_summary(shifts).round(3).to_string())


def race() -> None:
    frames = []
    for name, split in (("fairface", "val"), ("utkface", None), ("cfd", None), ("lfw", None)):
        frames.append(add_skin_tone(_load(name, split), progress=True).assign(dataset=name))
    table = S.ita_by_race(pd.concat(frames, ignore_index=True))
    print(table.to_string())


if __name__ == "__main__":
    print(os.popen("uptime").read().strip())
    start = time.time()
    {"stability": stability, "brightness": brightness, "race": race}[sys.argv[1]]()
    print(f"{time.time() - start:.0f} s;", os.popen("uptime").read().strip())
