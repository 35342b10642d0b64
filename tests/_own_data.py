"""Build a new user's CSV of their own photos from LFW (paths only: no image is copied).

About 100 people with two photos each, gender and ethnicity columns named the way a user
might name them (``person``, ``sex``, ``ethnicity``, ``photo``), in a folder outside the
repository. Gender comes from LFW's ``male_names.txt`` / ``female_names.txt`` (per image),
ethnicity from ``lfw_race.json`` (MICA labels, per person).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

#: MICA race label -> what the user's CSV says (one word per group, as a user would write).
ETHNICITY = {"caucasian": "white", "african": "black", "latino": "latino",
             "eastasian": "east asian", "asianindian": "south asian"}


def lfw_people_csv(lfw: Path, out: Path, *, people: int = 100, per_person: int = 2,
                   seed: int = 0) -> Path:
    """Write ``out`` (``photo,person,sex,ethnicity``) listing ``per_person`` images of
    ``people`` LFW people with one gender and one single-label ethnicity; photo paths are
    relative to ``lfw/lfw``. Minorities are taken first so every group has some people."""
    images = lfw / "lfw"
    sex = {}
    for label, name in (("M", "male_names.txt"), ("F", "female_names.txt")):
        for line in (lfw / name).read_text().split():
            sex[line.strip()] = "F" if sex.get(line.strip(), label) != label else label
    race = json.loads((lfw / "lfw_race.json").read_text())
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[tuple[str, list[str]]]] = {}
    for person, label in sorted(race.items()):
        if label not in ETHNICITY or not (images / person).is_dir():
            continue
        files = sorted(p.name for p in (images / person).glob("*.jpg"))
        genders = {sex.get(f) for f in files[:per_person]}
        if len(files) < per_person or len(genders) != 1 or None in genders:
            continue
        key = f"{ETHNICITY[label]}|{genders.pop()}"
        by_group.setdefault(key, []).append((person, files[:per_person]))
    chosen: list[tuple[str, list[str], str]] = []
    queues = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(by_group.items())}
    while len(chosen) < people and any(queues.values()):
        for key in sorted(queues):
            if queues[key] and len(chosen) < people:
                person, files = queues[key].pop(0)
                chosen.append((person, files, key))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["photo", "person", "sex", "ethnicity"])
        for person, files, key in chosen:
            ethnicity, gender = key.split("|")
            for f in files:
                w.writerow([f"{person}/{f}", person.replace("_", " "), gender, ethnicity])
    return out
