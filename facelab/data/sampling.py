"""Samples of a manifest and the one multi-dataset loader of the audits.

* :func:`balanced_sample`: at most ``limit`` rows spread as evenly as possible over the
  cells of some label columns (round robin over cells), seeded.
* :func:`subject_sample`: whole people, at most ``limit`` images, spread over cells.
* :func:`load_datasets`: dataset specs (:mod:`facelab.data.resolve`) -> one sampled
  manifest per dataset and a :class:`DatasetNotes` table saying what was found and used.
  The detection, attribute, matching, search, expression and training code all load
  their data through it.

Same manifest, same arguments, same ``seed``: same rows, in the same order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd

from facelab.data.resolve import malformed_clause, resolve_datasets

__all__ = ["balanced_sample", "subject_sample", "load_datasets", "DatasetNotes",
           "DEFAULT_SPLITS", "NOTE_COLUMNS", "GROUP_AUDIT_SAMPLING"]

#: Split of a registered dataset named without one: FairFace's ``val`` split is the one
#: the audits use by default (its ``train`` split is kept for 1:N non-mated probes).
DEFAULT_SPLITS: dict[str, str] = {"fairface": "val"}
#: How the detection and attribute audits (notebooks 01 and 05) load each dataset:
#: balanced over race x gender, unlabelled rows left out, in round-robin order (slow
#: detectors run on a balanced prefix), labelled as named (``"fairface"``).
#: ``load_datasets(specs, limit=..., seed=..., **GROUP_AUDIT_SAMPLING)``.
GROUP_AUDIT_SAMPLING: Mapping[str, Any] = MappingProxyType(
    {"by": ("race", "gender"), "missing": "drop", "order": "round-robin", "shuffle": "keys",
     "label_split": False})
#: Columns of :attr:`DatasetNotes.table`.
NOTE_COLUMNS: tuple[str, ...] = ("dataset", "found", "images", "used", "malformed", "note")


def _cell_rank(df: pd.DataFrame, cols: Sequence[str], key: np.ndarray) -> np.ndarray:
    """Rank (0, 1, ...) of each row within its cell of ``cols``, in increasing ``key``."""
    if not cols:
        return np.zeros(len(df), dtype=np.int64)
    by_key = np.argsort(key, kind="stable")
    cells = df.iloc[by_key][list(cols)].astype("string").fillna("<NA>")
    rank_sorted = cells.groupby(list(cols), sort=False, dropna=False).cumcount().to_numpy()
    rank = np.empty(len(df), dtype=np.int64)
    rank[by_key] = rank_sorted
    return rank


def balanced_sample(manifest: pd.DataFrame, limit: int | None, by: Sequence[str] = (), *,
                    seed: int = 0, missing: Literal["cell", "drop"] = "cell",
                    order: Literal["original", "round-robin"] = "original",
                    shuffle: Literal["rows", "keys"] = "rows") -> pd.DataFrame:
    """At most ``limit`` rows, spread as evenly as possible over the cells of ``by``.

    Every row gets a seeded random rank within its cell (the combination of its ``by``
    values); rows are then taken by rank across cells (round robin: every cell's first
    row, then every cell's second row, ...), so small cells are kept whole, large cells
    are cut, and every prefix of the round-robin order is as balanced as the data allow.
    A smaller ``limit`` gives a subset of a larger one (same ``seed``).

    Parameters
    ----------
    manifest : pandas.DataFrame
        Any table, one row per image (e.g. a :func:`facelab.load_dataset` manifest).
    limit : int or None
        Maximum number of rows returned (``None``: every row that is kept, see
        ``missing``).
    by : sequence of str
        Columns whose value combinations are the cells balanced over. Columns the
        manifest does not have are ignored; no column: a plain seeded random sample.
    seed : int
        Seed of the random ranks (:func:`numpy.random.default_rng`).
    missing : {"cell", "drop"}
        Rows with a missing (NA) ``by`` value: ``"cell"`` puts them in a cell of their own
        (one NA cell per combination of the present values); ``"drop"`` leaves them out
        before sampling (the detection and attribute audits, which report rates by
        labelled group only).
    order : {"original", "round-robin"}
        Order of the returned rows: the manifest's own order, or the round-robin order
        (a prefix of the result is a balanced sample too: slow detectors run on the first
        rows of the detection audit's sample).
    shuffle : {"rows", "keys"}
        How the seeded random ranks are drawn from ``perm = rng.permutation(n)``:
        ``"rows"``: the rows are permuted (row ``perm[p]`` gets rank key ``p``);
        ``"keys"``: row ``i`` gets rank key ``perm[i]``. Both are uniform random orders
        and differ only in which rows a given seed picks; ``"keys"`` reproduces the
        detection and attribute audits' recorded samples, ``"rows"`` those of the
        matching and search audits.

    Returns
    -------
    pandas.DataFrame
        ``min(limit, rows kept)`` rows of ``manifest`` (index and columns kept).
        With ``limit=None`` (or ``limit`` at least the number of rows), ``missing="cell"``
        and ``order="original"`` the manifest itself is returned.

    Raises
    ------
    ValueError
        ``limit`` is negative, or ``missing``, ``order`` or ``shuffle`` is not one of
        the values above.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None; got {limit}")
    for name, value, allowed in (("missing", missing, ("cell", "drop")),
                                 ("order", order, ("original", "round-robin")),
                                 ("shuffle", shuffle, ("rows", "keys"))):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
    cols = [c for c in by if c in manifest.columns]
    df = manifest.dropna(subset=cols) if (missing == "drop" and cols) else manifest
    n = len(df)
    if order == "original" and (limit is None or limit >= n):
        return df
    perm = np.random.default_rng(seed).permutation(n)
    key = perm if shuffle == "keys" else np.argsort(perm)
    rank = _cell_rank(df, cols, key)
    pick = np.lexsort((key, rank))
    if limit is not None:
        pick = pick[:int(limit)]
    if order == "original":
        pick = np.sort(pick)
    return df.iloc[pick]


def subject_sample(manifest: pd.DataFrame, limit: int | None, by: Sequence[str] = (), *,
                   seed: int = 0, subject: str = "subject", min_images: int = 1
                   ) -> pd.DataFrame:
    """Whole people, at most ``limit`` images, spread over the cells of ``by``.

    For verification by group a sample must keep several images of each person (genuine
    pairs). People with two or more images come first; they are shuffled with ``seed``
    and taken in turn from each cell of ``by`` (a person's cell is the one of their first
    image; a missing value is its own cell), a whole person at a time, while the person
    still fits under ``limit``. People with one image fill what is left the same way
    (unless ``min_images`` is 2 or more).

    Parameters
    ----------
    manifest : pandas.DataFrame
        One row per image with a ``subject`` column.
    limit : int or None
        Maximum number of images (``None``: every row).
    by : sequence of str
        Columns whose value combinations are the cells (absent columns are ignored).
    seed : int
        Seed of the order of people.
    subject : str
        The identity column.
    min_images : int
        Only people with at least this many images are sampled (2: people whose images
        can be compared with each other, e.g. the skin-tone stability check).

    Returns
    -------
    pandas.DataFrame
        Rows of ``manifest`` in its original order: every image of each chosen person.
        Rows without a subject are left out (under a ``limit``, or with ``min_images``
        above 1); with ``min_images=1``, ``limit=None`` or a ``limit`` at least the number
        of rows returns the manifest itself.

    Raises
    ------
    ValueError
        ``limit`` is negative or ``min_images`` is below 1.
    """
    if min_images < 1:
        raise ValueError(f"min_images must be >= 1; got {min_images}")
    if min_images == 1 and (limit is None or limit >= len(manifest)):
        return manifest
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None; got {limit}")
    df = manifest
    rng = np.random.default_rng(seed)
    people = df[subject].dropna().astype(str)
    sizes = people.value_counts()
    sizes = sizes[sizes >= min_images]
    cols = [c for c in by if c in df.columns]
    first = df.loc[people.index].groupby(people.to_numpy(), sort=True).head(1)
    first_subj = people.loc[first.index].to_numpy()
    cell = (first[cols].astype("string").fillna("<NA>").agg("|".join, axis=1).to_numpy()
            if cols else np.full(len(first), ""))
    cell_of = dict(zip(first_subj, cell, strict=True))
    chosen: set[str] = set()
    room = len(df) if limit is None else int(limit)
    for multi in (True, False):
        pool = sorted(s for s in sizes.index if (sizes[s] > 1) == multi)
        pool = [pool[i] for i in rng.permutation(len(pool))]
        queues: dict[str, list[str]] = {}
        for s in pool:
            queues.setdefault(cell_of[s], []).append(s)
        while room > 0 and any(queues.values()):
            for key in sorted(queues):
                q = queues[key]
                while q and sizes[q[0]] > room:
                    q.pop(0)
                if q and room > 0:
                    s = q.pop(0)
                    chosen.add(s)
                    room -= int(sizes[s])
    keep = df[subject].astype("string").isin(chosen).fillna(False).to_numpy(bool)
    return df.loc[keep]


@dataclass(frozen=True)
class DatasetNotes:
    """What :func:`load_datasets` found: one row per requested dataset.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns :data:`NOTE_COLUMNS`: ``dataset`` (label), ``found`` (bool), ``images``
        (usable rows in the dataset), ``used`` (rows in the sample), ``malformed``
        (entries skipped while reading) and ``note`` (one plain sentence).
    """

    table: pd.DataFrame

    @property
    def missing(self) -> list[str]:
        """Labels of the requested datasets that were not found."""
        return self.table.loc[~self.table["found"], "dataset"].tolist()

    def sentences(self) -> list[str]:
        """Plain sentences, one per dataset, for the notebook.

        Returns
        -------
        list of str
            The ``note`` column, in the order the datasets were requested.
        """
        return self.table["note"].tolist()


def _label_notes(df: pd.DataFrame) -> str:
    """The adapter's label report (``attrs["label_report"]``, e.g. LFW's), as one clause."""
    cases = [r for r in df.attrs.get("label_report", []) if r.get("count")]
    if not cases:
        return ""
    return " Labels left out or merged by the adapter (whole dataset): " + "; ".join(
        f"{r['label']}: {r['count']:,} x {r['case']}" for r in cases) + "."


def load_datasets(datasets: Sequence[Any] | Any, *, limit: int | None = None, seed: int = 0,
                  by: Sequence[str] = (), fallback_by: Sequence[str] = (),
                  missing: Literal["cell", "drop"] = "cell",
                  order: Literal["original", "round-robin"] = "original",
                  shuffle: Literal["rows", "keys"] = "rows", whole_subjects: bool = False,
                  require: str | None = None, label_split: bool = True,
                  root: str | os.PathLike | None = None,
                  default_splits: Mapping[str, str] | None = None, strict: bool = False
                  ) -> tuple[dict[str, pd.DataFrame], DatasetNotes]:
    """Load datasets and cut each to a sample of at most ``limit`` images.

    Parameters
    ----------
    datasets : spec or sequence of specs
        Dataset specs (:mod:`facelab.data.resolve`): registered names with an optional
        split (``"fairface:val"``, ``"cfd"``), CSV paths, or mappings for your own CSV
        manifest (``{csv: faces.csv, columns: {person: subject}}``).
    limit : int or None
        Cap on images per dataset (``None``: all).
    seed : int
        Seed of every sample.
    by : sequence of str
        Columns balanced over (:func:`balanced_sample`) in datasets where at least one
        row carries every one of them the dataset has (*labelled* datasets).
    fallback_by : sequence of str
        Columns balanced over in the other datasets (e.g. ``["subject"]``: CelebA, which
        has identities but no demographic labels, keeps several images per identity).
    missing, order, shuffle
        Passed to :func:`balanced_sample` (``missing="drop"`` also drops the unlabelled
        rows when ``limit`` is ``None``).
    whole_subjects : bool
        Sample whole people (:func:`subject_sample`, spread over ``by``) from datasets
        with identities, so genuine pairs survive the cap.
    require : str or None
        A column every used row must carry (e.g. ``"expression"``); rows without it are
        left out before sampling and counted in the note.
    label_split : bool
        A dataset named without a split is labelled with the split chosen from
        ``default_splits`` (``"fairface:val"``); ``False``: as named (``"fairface"``).
    root : path or None
        Data root for registered datasets (default ``$FACELAB_DATA``).
    default_splits : mapping or None
        Split of a registered dataset named without one (``None``:
        :data:`DEFAULT_SPLITS`; ``{}``: the adapter's default, e.g. every split).
    strict : bool
        Every dataset must load (no built-in dataset is skipped when absent).

    Returns
    -------
    manifests : dict of str to pandas.DataFrame
        ``{dataset label: sample}`` in the order of ``datasets``, for the datasets that
        loaded. Each sample keeps the manifest's ``attrs`` plus ``images_available`` (int:
        usable rows before sampling), ``labelled`` (bool: some row carries every ``by``
        column the dataset has) and ``balanced_over`` (list of str: the columns balanced
        over, ``["people", ...]`` for whole-subject samples), ``dataset_key`` (str: the
        registered name or the CSV's label, without split) and ``spec`` (the spec as
        given).
    notes : DatasetNotes
        One row per requested dataset: found or skipped (and why), images, used, malformed
        entries, and the adapter's label report.

    Raises
    ------
    facelab.data.resolve.DatasetSpecError
        A dataset named explicitly (anything but a built-in dataset the suite looks for by
        default, or any dataset with ``strict=True``) cannot be loaded.
    KeyError
        ``require`` names a column a dataset does not have.
    """
    splits = dict(DEFAULT_SPLITS if default_splits is None else default_splits)
    loaded, table = resolve_datasets(datasets, root=root, default_splits=splits, strict=strict)
    out: dict[str, pd.DataFrame] = {}
    used_n: dict[str, int] = {}
    for req, split, df in loaded:
        full = req.label(split)
        label = full if label_split else req.label()
        unlabelled = ""
        if require is not None:
            if require not in df.columns:
                raise KeyError(f"dataset {label!r} has no column {require!r}")
            has = df[require].notna()
            if not has.all():
                unlabelled = f", {int((~has).sum()):,} without {require} left out"
                attrs = dict(df.attrs)
                df = df[has]
                df.attrs = attrs
        cols = [c for c in by if c in df.columns]
        labelled = bool(df[cols].notna().all(axis=1).any())  # no ``by``: every row is
        balance = cols if labelled else [c for c in fallback_by if c in df.columns]
        if whole_subjects and "subject" in df.columns and df["subject"].notna().any():
            used = subject_sample(df, limit, list(by), seed=seed)
            balance = ["people", *(cols if labelled else [])]
        else:
            used = balanced_sample(df, limit, balance, seed=seed, missing=missing,
                                   order=order, shuffle=shuffle)
        used = used.copy()
        used.attrs = {**dict(df.attrs), "images_available": int(len(df)),
                      "labelled": labelled, "balanced_over": list(balance),
                      "dataset_key": req.key, "spec": req.spec}
        out[label] = used
        used_n[label] = len(used)
        how = (f"balanced over {' x '.join(balance)}" if balance
               else "a seeded random sample")
        cut = (f" (limit {limit}, {how})" if limit is not None and len(used) < len(df)
               else "")
        row = table["dataset"] == full
        table.loc[row, "dataset"] = label
        table.loc[row, "note"] = (
            f"{label}: {len(used):,} of {len(df):,} images used{cut}{unlabelled}"
            f"{malformed_clause(df)}." + _label_notes(df))
    table.insert(3, "used", [used_n.get(d, 0) for d in table["dataset"]])
    return out, DatasetNotes(table[list(NOTE_COLUMNS)])
