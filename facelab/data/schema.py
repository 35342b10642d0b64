"""The one manifest schema every dataset adapter returns, and the label mappings.

A *manifest* is a :class:`pandas.DataFrame` with one row per image and the columns of
:data:`COLUMNS` first (in that order), then any dataset-specific extra columns.

===================  =====================================================================
column               meaning
===================  =====================================================================
dataset              registered dataset name (``"fairface"``, ``"utkface"``, ...)
file                 path relative to the dataset root, POSIX style (stable across machines)
path                 absolute path of the image file (``<NA>`` only for un-materialised rows)
subject              identity label as a string, ``<NA>`` when the dataset has none
gender               ``"female"`` / ``"male"`` / ``<NA>`` (appearance label of the dataset)
race                 coarse group of :data:`RACE_GROUPS` (see :data:`RACE_COARSE`), or ``<NA>``
race_original        the dataset's own race label, unchanged
age                  age in years (float) when the dataset gives years, else ``NaN``
age_bin              age bin (:data:`AGE_BINS`; given by the dataset or derived from ``age``)
expression           one of :data:`EXPRESSIONS`, or ``<NA>``
expression_original  the dataset's own expression label or code, unchanged
split                the dataset's split (``"train"``, ``"val"``, ``"test"``...), or ``<NA>``
===================  =====================================================================

Text columns use pandas' nullable ``string`` dtype; missing values are ``<NA>``.
Gender, race and expression labels are the datasets' annotations of appearance, not
anyone's identity or inner state (see :data:`facelab.core.types.APPEARANCE_NOTE`).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS", "TEXT_COLUMNS", "PAIR_KEYS", "PAIR_COLUMNS", "EXPRESSIONS",
    "EXPRESSION_ALIASES", "RACE_GROUPS",
    "RACE_COARSE", "AGE_BINS", "MalformedEntriesWarning", "Malformed", "normalise_expression",
    "normalise_gender", "coarse_race", "age_to_bin", "finalize", "malformed", "inside_root",
]

COLUMNS: tuple[str, ...] = (
    "dataset", "file", "path", "subject", "gender", "race", "race_original", "age", "age_bin",
    "expression", "expression_original", "split",
)
TEXT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c != "age")

#: Columns every frame of image pairs carries: the two manifest index labels, the two
#: subjects and whether they are the same person (a mated pair). Frames of
#: :func:`facelab.data.protocols.make_pairs`, :func:`facelab.load_pairs` and
#: :func:`facelab.studies.verification.verification_pairs` add their own columns.
PAIR_KEYS: tuple[str, ...] = ("index_a", "index_b", "subject_a", "subject_b", "same")
#: Columns of :func:`facelab.load_pairs` results (a dataset's own pair lists).
PAIR_COLUMNS: tuple[str, ...] = (
    "dataset", "index_a", "index_b", "path_a", "path_b", "subject_a", "subject_b", "same",
    "fold",
)

#: The normalised expression vocabulary (FER2013's seven plus CK+'s contempt).
EXPRESSIONS: tuple[str, ...] = (
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt",
)

#: Dataset spellings and codes -> :data:`EXPRESSIONS` (lower-cased keys).
EXPRESSION_ALIASES: dict[str, str] = {
    **{e: e for e in EXPRESSIONS},
    "anger": "angry", "disgusted": "disgust", "disgusting": "disgust", "fearful": "fear",
    "afraid": "fear", "scared": "fear", "happiness": "happy", "joy": "happy", "smile": "happy",
    "sadness": "sad", "surprised": "surprise", "calm": "neutral", "contemptuous": "contempt",
    # JAFFE codes
    "an": "angry", "di": "disgust", "fe": "fear", "ha": "happy", "ne": "neutral", "sa": "sad",
    "su": "surprise",
    # Chicago Face Database codes (HC / HO = happy with closed / open mouth)
    "n": "neutral", "a": "angry", "f": "fear", "hc": "happy", "ho": "happy",
}

#: Coarse groups used to compare datasets with different race vocabularies.
RACE_GROUPS: tuple[str, ...] = (
    "Asian", "Black", "Indian", "Latino", "Middle Eastern", "White", "Other",
)

#: ``{dataset: {original label: coarse group}}``. FairFace's East and Southeast Asian
#: merge into "Asian"; UTKFace's "Others" (Hispanic, Latino, Middle Eastern, ...) and
#: CFD's "M" (multiracial) go to "Other", because they cannot be split further.
RACE_COARSE: dict[str, dict[str, str]] = {
    "fairface": {
        "White": "White", "Black": "Black", "East Asian": "Asian", "Southeast Asian": "Asian",
        "Indian": "Indian", "Middle Eastern": "Middle Eastern", "Latino_Hispanic": "Latino",
    },
    "utkface": {
        "White": "White", "Black": "Black", "Asian": "Asian", "Indian": "Indian",
        "Others": "Other",
    },
    "cfd": {
        "A": "Asian", "B": "Black", "I": "Indian", "L": "Latino", "M": "Other", "W": "White",
    },
    "jaffe": {"Japanese": "Asian"},
}

#: FairFace's age bins; datasets that give years get ``age_bin`` derived with these.
AGE_BINS: tuple[str, ...] = (
    "0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70",
)
_AGE_EDGES = (3, 10, 20, 30, 40, 50, 60, 70)


class MalformedEntriesWarning(UserWarning):
    """Some entries of a dataset could not be read; they are listed in ``attrs``."""


class Malformed:
    """Collects entries an adapter had to skip, each with the reason.

    Parameters
    ----------
    dataset : str
        The dataset's name (the ``dataset`` column of :func:`malformed`).
    """

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.rows: list[dict[str, str]] = []

    def add(self, entry: object, reason: str) -> None:
        """Record one skipped entry.

        Parameters
        ----------
        entry : object
            The file name, line or row that was skipped.
        reason : str
            Why, in plain words.
        """
        self.rows.append({"dataset": self.dataset, "entry": str(entry), "reason": reason})

    def __len__(self) -> int:
        return len(self.rows)


def malformed(manifest: pd.DataFrame) -> pd.DataFrame:
    """The entries skipped while loading ``manifest``: columns ``dataset, entry, reason``.

    They are kept in ``manifest.attrs["malformed"]`` as a list of records (not a
    DataFrame, so that ``pd.concat`` of manifests keeps working).

    Parameters
    ----------
    manifest : pandas.DataFrame
        A manifest made by :func:`facelab.data.datasets.load_dataset`.

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``entry``, ``reason``; empty when nothing was skipped.
    """
    rows = manifest.attrs.get("malformed", [])
    return pd.DataFrame(list(rows), columns=["dataset", "entry", "reason"])


def normalise_expression(label: object) -> object:
    """Map a dataset's expression label or code to :data:`EXPRESSIONS` (``pd.NA`` if unknown).

    Parameters
    ----------
    label : object
        A label or numeric code as a dataset writes it.

    Returns
    -------
    str or pandas.NA
        One of :data:`EXPRESSIONS`.
    """
    if label is None or (isinstance(label, float) and math.isnan(label)) or label is pd.NA:
        return pd.NA
    return EXPRESSION_ALIASES.get(str(label).strip().lower(), pd.NA)


def normalise_gender(label: object) -> object:
    """``"female"``/``"male"`` from common spellings (F/M, Female/Male, woman/man), else NA.

    Parameters
    ----------
    label : object
        A label as a dataset or system writes it.

    Returns
    -------
    str or pandas.NA
        ``"female"``, ``"male"`` or NA.
    """
    if label is None or label is pd.NA or (isinstance(label, float) and math.isnan(label)):
        return pd.NA
    key = str(label).strip().lower()
    if key in ("f", "female", "woman", "women", "w"):
        return "female"
    if key in ("m", "male", "man", "men"):
        return "male"
    return pd.NA


def coarse_race(dataset: str, labels: pd.Series) -> pd.Series:
    """Coarse :data:`RACE_GROUPS` for a dataset's original race labels (NA if unmapped).

    Parameters
    ----------
    dataset : str
        The dataset whose label vocabulary applies (:data:`RACE_COARSE`).
    labels : pandas.Series
        Its original race labels.

    Returns
    -------
    pandas.Series
        String dtype, same index; one of :data:`RACE_GROUPS` or NA.
    """
    mapping = RACE_COARSE.get(dataset, {})
    if not mapping and dataset not in RACE_COARSE:
        # generic data: accept labels that already are coarse groups (case-insensitive)
        mapping = {g.lower(): g for g in RACE_GROUPS}
        return labels.astype("string").str.lower().map(mapping).astype("string")
    return labels.map(mapping).astype("string")


def age_to_bin(age: pd.Series) -> pd.Series:
    """FairFace-style :data:`AGE_BINS` for ages in years (NA for missing ages).

    Parameters
    ----------
    age : pandas.Series
        Ages in years.

    Returns
    -------
    pandas.Series
        String dtype: ``"0-2"``, ``"3-9"``, ..., ``"more than 70"`` (FairFace's bins) or NA.
    """
    values = pd.to_numeric(age, errors="coerce").to_numpy(dtype=float)
    idx = np.searchsorted(np.array(_AGE_EDGES), values, side="right")
    out = np.array(AGE_BINS, dtype=object)[np.clip(idx, 0, len(AGE_BINS) - 1)]
    out[np.isnan(values)] = None
    return pd.Series(out, index=age.index, dtype="string")


def inside_root(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` stays inside ``root`` once ``..`` and ``.`` are resolved
    lexically (a relative ``path`` is taken relative to ``root``).

    Parameters
    ----------
    path : str or os.PathLike
        A path as a label file gives it.
    root : str or os.PathLike
        The dataset folder.

    Returns
    -------
    bool
    """
    root_s = os.path.normpath(os.path.abspath(root))
    path_s = os.path.normpath(os.path.join(root_s, path))
    return path_s == root_s or path_s.startswith(root_s.rstrip(os.sep) + os.sep)


def finalize(
    df: pd.DataFrame,
    *,
    dataset: str,
    root: Path,
    bad: Malformed | None = None,
    split: str | Iterable[str] | None = None,
    check_files: bool = False,
    allow_outside_root: bool = False,
) -> pd.DataFrame:
    """Bring an adapter's frame to the manifest schema, filter ``split`` and report problems.

    ``df`` needs at least ``file`` (relative to ``root``) or ``path``. Rows whose path
    leaves ``root`` (unless ``allow_outside_root``) or, with ``check_files``, whose file is
    missing, move to the malformed list. Malformed entries are stored in
    ``attrs["malformed"]`` and announced with a :class:`MalformedEntriesWarning`.

    Parameters
    ----------
    df : pandas.DataFrame
        The adapter's rows.
    dataset : str
        The dataset's name (``dataset`` column).
    root : pathlib.Path
        The dataset folder; ``file`` entries are relative to it.
    bad : Malformed, optional
        Entries the adapter already skipped.
    split : str or iterable of str, optional
        Keep only these splits.
    check_files : bool
        Move rows whose file does not exist to the malformed list.
    allow_outside_root : bool
        Keep rows whose path leaves ``root``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` first, then the adapter's extras; ``attrs`` holds
        ``dataset``, ``root`` and ``malformed``.

    Raises
    ------
    ValueError
        For a split the dataset does not have.
    """
    bad = bad if bad is not None else Malformed(dataset)
    df = df.copy()
    root = Path(root)
    if "path" not in df:
        df["path"] = [str(root / f) if isinstance(f, str) else None for f in df["file"]]
    if "file" not in df:
        df["file"] = [_relative(p, root) for p in df["path"]]
    for col in COLUMNS:
        if col not in df:
            df[col] = np.nan if col == "age" else pd.NA
    df["dataset"] = dataset
    keep = np.ones(len(df), dtype=bool)
    if len(df):
        paths = df["path"].tolist()
        for i, p in enumerate(paths):
            if not isinstance(p, str):
                continue
            path = os.path.normpath(os.path.join(root, p))
            paths[i] = path
            if not allow_outside_root and not inside_root(path, root):
                bad.add(p, f"path outside the dataset root {root} (pass allow_outside_root=True "
                           "to allow)")
                keep[i] = False
            elif check_files and not os.path.isfile(path):
                bad.add(p, "file not found")
                keep[i] = False
        df["path"] = paths
    df = df.loc[keep]
    if df["age_bin"].isna().all() and df["age"].notna().any():
        df["age_bin"] = age_to_bin(df["age"])
    for col in TEXT_COLUMNS:
        df[col] = df[col].astype("string")
    df["age"] = pd.to_numeric(df["age"], errors="coerce").astype(float)
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[[*COLUMNS, *extra]]
    if split is not None:
        wanted = {split} if isinstance(split, str) else set(split)
        known = sorted(df["split"].dropna().unique())
        unknown = wanted - set(known)
        if unknown:
            raise ValueError(f"{dataset}: unknown split {sorted(unknown)}; splits are {known}")
        df = df[df["split"].isin(wanted)]
    df = df.reset_index(drop=True)
    df.attrs = {"dataset": dataset, "root": str(root), "malformed": list(bad.rows)}
    if len(bad):
        reasons = pd.Series([r["reason"] for r in bad.rows]).value_counts()
        summary = "; ".join(f"{n} x {r}" for r, n in reasons.items())
        warnings.warn(f"{dataset}: {len(bad)} malformed entries skipped ({summary}); "
                      "see facelab.data.datasets.malformed(df)", MalformedEntriesWarning,
                      stacklevel=4)
    return df


def _relative(path: object, root: Path) -> object:
    if not isinstance(path, str):
        return None
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def apply_mapping(values: pd.Series, mapping: Mapping[object, object]) -> pd.Series:
    """``values.map(mapping)`` keeping NA for unmapped values, as a string Series."""
    return values.map(mapping).astype("string")
