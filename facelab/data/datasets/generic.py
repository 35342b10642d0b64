"""Your own data: a CSV manifest whose columns are mapped onto the schema.

>>> load_dataset("csv", root="my_photos/labels.csv",
...              columns={"filename": "path", "person": "subject", "sex": "gender"})

Relative paths are resolved against ``images_root`` (default: the CSV's folder) and must
stay inside it unless ``allow_outside_root=True``. Gender spellings (F/M, female/male,
woman/man) and expression names (anger, happiness, ...) are normalised; race labels are
kept in ``race_original`` and mapped to a coarse group with ``race_map`` (or kept when they
already are :data:`~facelab.data.schema.RACE_GROUPS`). Unmapped columns stay as extras.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from facelab.data.datasets._registry import register_dataset
from facelab.data.schema import (
    COLUMNS,
    Malformed,
    coarse_race,
    finalize,
    normalise_expression,
    normalise_gender,
)

MAPPABLE = ("path", "subject", "gender", "race", "age", "age_bin", "expression", "split")


@register_dataset(
    "csv", folder=None, looks_like=lambda folder: False, aliases=("manifest", "generic"),
    description="a CSV manifest of your own images",
    source="your own data",
    labels="a CSV with a path column and any of subject, gender, race, age, expression, split",
)
def load_csv_manifest(root: Path, *, split=None, allow_outside_root: bool = False,
                      columns: Mapping[str, str] | None = None,
                      images_root: str | Path | None = None, dataset: str | None = None,
                      race_map: Mapping[str, str] | None = None,
                      expression_map: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read a CSV manifest.

    Parameters
    ----------
    root
        The CSV file.
    columns
        ``{csv column: schema column}`` for columns not already named like the schema
        (schema names: path, subject, gender, race, age, age_bin, expression, split).
    images_root
        Folder relative paths start from, and that paths must stay inside.
    dataset
        Value of the ``dataset`` column (default: the CSV's file stem).
    race_map, expression_map
        ``{your label: coarse race group / expression}`` overrides.
    split : str or list of str, optional
        Keep only these splits.
    allow_outside_root : bool
        Accept image paths outside ``images_root`` (refused by default: malformed rows).

    Returns
    -------
    pandas.DataFrame
        One row per image, schema columns first (:data:`facelab.data.schema.COLUMNS`: ``path``,
        ``subject``, ``gender``, ``race``, ``age`` in years, ``age_bin``, ``expression``,
        ``split``); ``attrs["malformed"]`` counts the entries left out and why.

    Raises
    ------
    FileNotFoundError
        When the CSV does not exist.
    ValueError
        For a column map onto unknown schema columns, mapped columns missing from the file,
        or no image path column.
    """
    csv = Path(root)
    if not csv.is_file():
        raise FileNotFoundError(f"csv manifest {csv} does not exist (pass root=<the CSV file>)")
    name = dataset or csv.stem
    bad = Malformed(name)
    table = pd.read_csv(csv, dtype=str, keep_default_na=False, na_values=[""])
    mapping = dict(columns or {})
    unknown = set(mapping.values()) - set(MAPPABLE)
    if unknown:
        raise ValueError(f"cannot map onto {sorted(unknown)}; schema columns are {MAPPABLE}")
    missing = set(mapping) - set(table.columns)
    if missing:
        raise ValueError(f"{csv}: columns {sorted(missing)} not found; have {list(table.columns)}")
    table = table.rename(columns=mapping)
    if "path" not in table:
        raise ValueError(f"{csv}: no image path column; map one with columns={{'<col>': 'path'}}")
    base = Path(images_root).expanduser().resolve() if images_root else csv.parent.resolve()
    empty = table["path"].isna()
    for i in table.index[empty]:
        bad.add(f"{csv.name}:{i + 2}", "empty path")
    table = table[~empty]
    df = pd.DataFrame({"path": table["path"]})
    if "subject" in table:
        df["subject"] = table["subject"]
    if "gender" in table:
        df["gender"] = table["gender"].map(normalise_gender)
    if "race" in table:
        df["race_original"] = table["race"]
        df["race"] = (table["race"].map(race_map).astype("string") if race_map
                      else coarse_race(name, table["race"]))
    if "age" in table:
        df["age"] = pd.to_numeric(table["age"], errors="coerce")
        bad_age = table["age"].notna() & df["age"].isna()
        for i, v in table.loc[bad_age, "age"].items():
            bad.add(f"{csv.name}:{i + 2}", f"age {v!r} is not a number (kept the row, age NA)")
    if "age_bin" in table:
        df["age_bin"] = table["age_bin"]
    if "expression" in table:
        emap = {k.lower(): v for k, v in (expression_map or {}).items()}
        df["expression_original"] = table["expression"]
        df["expression"] = [normalise_expression(emap.get(str(v).lower(), v))
                            if pd.notna(v) else pd.NA for v in table["expression"]]
    if "split" in table:
        df["split"] = table["split"]
    for col in table.columns:
        if col not in MAPPABLE and col not in COLUMNS:
            df[col] = table[col]
    df["file"] = df["path"]
    return finalize(df, dataset=name, root=base, bad=bad, split=split, check_files=True,
                    allow_outside_root=allow_outside_root)
