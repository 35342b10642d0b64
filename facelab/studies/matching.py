"""Shared inputs of the matching studies (``02_verification_demographics`` and
``03_one_to_many_search``): dataset manifests with a cap per dataset, group labels, and
cached embeddings from :func:`facelab.extract`.

Manifests returned here carry a unique string index ``"<dataset>:<file>"`` so rows of
several datasets can be pooled and a features table lines up with its manifest.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["DatasetNotes", "parse_dataset", "balanced_sample", "subject_sample",
           "load_manifests",
           "group_labels", "Embeddings", "extract_embeddings", "failure_table",
           "UNLABELLED"]

#: Group label of rows without demographic labels (e.g. CelebA).
UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class DatasetNotes:
    """What :func:`load_manifests` found: one row per requested dataset."""

    table: pd.DataFrame

    @property
    def missing(self) -> list[str]:
        """Names of the requested datasets that were not found."""
        return self.table.loc[~self.table["found"], "dataset"].tolist()

    def sentences(self) -> list[str]:
        """Plain sentences, one per dataset, for the notebook."""
        return self.table["note"].tolist()


def parse_dataset(spec: str) -> tuple[str, str | None]:
    """``"fairface:val"`` -> ``("fairface", "val")``; ``"cfd"`` -> ``("cfd", None)``."""
    name, _, split = spec.partition(":")
    return name, (split or None)


def balanced_sample(df: pd.DataFrame, limit: int | None, by: Sequence[str],
                    seed: int = 0) -> pd.DataFrame:
    """At most ``limit`` rows, spread as evenly as possible over the cells of ``by``.

    Rows are shuffled with ``seed``; then cells contribute their first row, their second
    row, ... in turn (round robin), so small cells are kept whole and large cells are cut.
    Rows with a missing ``by`` value form their own cell. ``limit=None`` keeps every row.
    The original row order is kept.
    """
    if limit is None or limit >= len(df):
        return df
    if limit < 0:
        raise ValueError(f"limit must be >= 0 or None; got {limit}")
    rng = np.random.default_rng(seed)
    shuffled = df.iloc[rng.permutation(len(df))]
    cols = [c for c in by if c in shuffled.columns]
    if cols:
        keys = shuffled[cols].astype("string").fillna("<NA>").agg("|".join, axis=1)
        rank = keys.groupby(keys, sort=False).cumcount().to_numpy()
    else:
        rank = np.zeros(len(shuffled), dtype=int)
    order = np.lexsort((np.arange(len(shuffled)), rank))[:limit]
    keep = shuffled.index[order]
    return df.loc[df.index.isin(keep)]


def subject_sample(df: pd.DataFrame, limit: int | None, by: Sequence[str] = (),
                   seed: int = 0, subject: str = "subject") -> pd.DataFrame:
    """Whole people, at most ``limit`` images, spread over the cells of ``by``.

    For verification by group a sample must keep several images of each person (genuine
    pairs). People with two or more images come first; they are shuffled with ``seed``
    and taken in turn from each cell of ``by`` (a person's cell is the one of their first
    image; a missing value is its own cell), a whole person at a time, while the person
    still fits under ``limit``. People with one image fill what is left the same way.
    Rows without a subject are left out. ``limit=None`` keeps every row. The original
    row order is kept.
    """
    if limit is None or limit >= len(df):
        return df
    if limit < 0:
        raise ValueError(f"limit must be >= 0 or None; got {limit}")
    rng = np.random.default_rng(seed)
    people = df[subject].dropna().astype(str)
    sizes = people.value_counts()
    cols = [c for c in by if c in df.columns]
    first = df.loc[people.index].groupby(people.to_numpy(), sort=True).head(1)
    first_subj = people.loc[first.index].to_numpy()
    cell = (first[cols].astype("string").fillna("<NA>").agg("|".join, axis=1).to_numpy()
            if cols else np.full(len(first), ""))
    cell_of = dict(zip(first_subj, cell, strict=True))
    chosen: set[str] = set()
    room = limit
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


def group_labels(df: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    """One text label per row joining the ``by`` columns (``"Black female"``);
    :data:`UNLABELLED` where any of them is missing."""
    cols = list(by)
    values = df[cols].astype("string")
    out = values.fillna("").agg(" ".join, axis=1).str.strip()
    out[values.isna().any(axis=1)] = UNLABELLED
    return out.astype(str)


def load_manifests(datasets: Sequence, *, limit: int | None = None, seed: int = 0,
                   by: Sequence[str] = ("race", "gender"), root: str | os.PathLike | None = None,
                   default_splits: dict[str, str] | None = None,
                   whole_subjects: bool = False) -> tuple[pd.DataFrame, DatasetNotes]:
    """Load and pool datasets, at most ``limit`` images each, balanced over ``by``.

    Parameters
    ----------
    datasets
        Dataset specs (:mod:`facelab.data.resolve`): registered names with an optional
        split (``"fairface:val"``, ``"cfd"``, ``"celeba"``), CSV paths, or mappings for
        your own CSV manifest (``{csv: faces.csv, columns: {person: subject}}``).
    limit
        Cap on images per dataset (``None``: all). Datasets with identities are balanced
        over ``subject`` when they have no demographic labels (CelebA), which keeps
        several images per identity.
    by
        Group columns used for balancing and for the ``group`` label column.
    default_splits
        Split used when a name has none (default ``{"fairface": "val"}``).
    whole_subjects
        Under a ``limit``, sample whole people (:func:`subject_sample`, people with
        several images first, spread over ``by``) from datasets with identities, so genuine
        pairs survive the cap; for FNMR by group on datasets with identities and labels.

    Returns
    -------
    manifest, notes
        Pooled manifest with index ``"<dataset>:<file>"`` and extra columns ``source``
        (the dataset's label) and ``group``; notes say, per dataset, whether it was found,
        how many images it holds and how many were used.

    Raises
    ------
    facelab.data.resolve.DatasetSpecError
        A dataset named explicitly (anything but a built-in dataset the suite looks for
        by default) cannot be loaded.

    Notes
    -----
    ``by`` may name the skin-tone columns of :data:`facelab.face.skin.SKIN_GROUP_COLUMNS`
    (``["skin_tone", "gender"]``, as Gender Shades grouped faces). They are measured from
    the pixels after sampling (balancing uses the other ``by`` columns) on the largest
    YuNet face (:func:`facelab.face.skin.add_skin_tone`, cached); a face whose skin tone could
    not be measured is ``unlabelled`` and counted in the notes. With skin-tone columns
    alone every dataset gets groups, identity-labelled ones (CelebA) included.
    """
    from facelab.face.skin import SKIN_GROUP_COLUMNS

    skin_by = [c for c in by if c in SKIN_GROUP_COLUMNS]
    if skin_by:
        return _with_skin_groups(datasets, by=by, skin_by=skin_by, limit=limit, seed=seed,
                                 root=root, default_splits=default_splits,
                                 whole_subjects=whole_subjects)
    from facelab.data.resolve import malformed_clause, resolve_datasets

    splits = {"fairface": "val", **(default_splits or {})}
    loaded, table = resolve_datasets(datasets, root=root, default_splits=splits)
    frames, used_n = [], {}
    for req, split, df in loaded:
        label = req.label(split)
        labelled = df[list(by)].notna().all(axis=1).any() if set(by) <= set(df.columns) \
            else False
        balance = list(by) if labelled else ["subject"]
        if whole_subjects and df["subject"].notna().any():
            used = subject_sample(df, limit, list(by), seed)
            balance = ["people", *(list(by) if labelled else [])]
        else:
            used = balanced_sample(df, limit, balance, seed)
        used = used.copy()
        used.index = pd.Index([f"{req.key}:{f}" for f in used["file"]], name="image")
        used["source"] = label
        used["group"] = group_labels(used, by) if labelled else UNLABELLED
        frames.append(used)
        used_n[label] = len(used)
        cut = (f" (limit {limit}, balanced over {' x '.join(balance)})"
               if limit is not None and len(used) < len(df) else "")
        table.loc[table["dataset"] == label, "note"] = (
            f"{label}: {len(used):,} of {len(df):,} images used{cut}{malformed_clause(df)}."
            + _label_notes(df))
    table.insert(3, "used", [used_n.get(d, 0) for d in table["dataset"]])
    manifest = pd.concat(frames) if frames else pd.DataFrame(
        columns=["dataset", "file", "path", "subject", "source", "group"])
    return manifest, DatasetNotes(table)


def _with_skin_groups(datasets: Sequence, *, by: Sequence[str], skin_by: list[str],
                      **options) -> tuple[pd.DataFrame, DatasetNotes]:
    """:func:`load_manifests` grouped by measured skin tone (and the other ``by`` columns)."""
    from facelab.studies.skin_tone import add_skin_tone

    demo = [c for c in by if c not in skin_by]
    manifest, notes = load_manifests(datasets, by=demo, **options)
    if not len(manifest):
        return manifest, notes
    manifest = add_skin_tone(manifest)
    before = manifest["group"]
    labels = group_labels(manifest, by)
    manifest["group"] = labels.where(before != UNLABELLED, UNLABELLED) if demo else labels
    table = notes.table.copy()
    for i, row in table.iterrows():
        part = manifest[manifest["source"] == row["dataset"]]
        if not row["found"] or not len(part):
            continue
        unmeasured = part[part[skin_by].isna().any(axis=1)]
        reasons = unmeasured["skin_flag"].str.replace(r":.*", "", regex=True).value_counts()
        note = str(row["note"]).replace("balanced over )", "a seeded random sample)")
        table.loc[i, "note"] = (
            f"{note} Skin tone measured on {len(part) - len(unmeasured):,} of "
            f"{len(part):,} images" + ("; not measured (unlabelled): "
                                       + "; ".join(f"{n} x {r}" for r, n in reasons.items())
                                       if len(unmeasured) else "") + ".")
    return manifest, DatasetNotes(table)


def _label_notes(df: pd.DataFrame) -> str:
    """The adapter's label report (``attrs["label_report"]``, e.g. LFW's), as one clause."""
    cases = [r for r in df.attrs.get("label_report", []) if r.get("count")]
    if not cases:
        return ""
    return " Labels left out or merged by the adapter (whole dataset): " + "; ".join(
        f"{r['label']}: {r['count']:,} x {r['case']}" for r in cases) + "."


@dataclass
class Embeddings:
    """Embeddings of a manifest's rows by one embedder.

    Attributes
    ----------
    model : str
        Embedder name.
    features : DataFrame
        The :func:`facelab.extract` features table (same index as the manifest).
    matrix : ndarray
        ``(n_rows, dim)`` float32; NaN rows where no face was acquired.
    ok : ndarray
        ``(n_rows,)`` bool: an embedding exists.
    """

    model: str
    features: pd.DataFrame
    matrix: np.ndarray
    ok: np.ndarray

    @property
    def index(self) -> pd.Index:
        return self.features.index

    def positions(self, labels: Sequence) -> np.ndarray:
        """Row positions of manifest index labels."""
        return self.features.index.get_indexer(pd.Index(labels))

    @property
    def metric(self) -> str:
        """``"cosine"`` or ``"euclidean"`` (the embedder's)."""
        from facelab.match.verification import get_embedder

        return get_embedder(self.model).metric

    def similarity(self, a: np.ndarray, b: np.ndarray, *, matrix: bool = False) -> np.ndarray:
        """The embedder's similarity (higher = more alike) of matching rows of ``a`` and
        ``b``, or (``matrix=True``) of every row of ``a`` with every row of ``b``.

        Cosine (dot product of L2-normalised rows) or ``1 - Euclidean distance``, as in
        :mod:`facelab.models.embedders.base`, but computed in float64 from the differences
        (no ``|a|^2 + |b|^2 - 2ab`` shortcut) and rounded to float32, so the row-wise and
        the matrix path give the *same* number for the same pair: a threshold placed on one
        pair's score then counts that pair identically everywhere.
        """
        a = np.atleast_2d(np.asarray(a, dtype=np.float64))
        b = np.atleast_2d(np.asarray(b, dtype=np.float64))
        if self.metric == "cosine":
            a = a / np.linalg.norm(a, axis=1, keepdims=True)
            b = b / np.linalg.norm(b, axis=1, keepdims=True)
            out = a @ b.T if matrix else np.einsum("ij,ij->i", a, b)
        elif matrix:
            out = np.empty((len(a), len(b)))
            step = max(1, (8 << 20) // max(1, len(b) * a.shape[1]))
            for s in range(0, len(a), step):
                d = a[s:s + step, None, :] - b[None, :, :]
                out[s:s + step] = 1.0 - np.sqrt(np.einsum("ijk,ijk->ij", d, d))
        else:
            d = a - b
            out = 1.0 - np.sqrt(np.einsum("ij,ij->i", d, d))
        return out.astype(np.float32)


def extract_embeddings(manifest: pd.DataFrame, model: str, *, detector: str = "yunet",
                       progress: bool = True, batch_size: int = 32) -> Embeddings:
    """Largest-face embeddings of every manifest row with :func:`facelab.extract` (cached
    on disk, so a rerun only reads them back). Failures stay rows (``ok`` False)."""
    from facelab.extract.pipeline import extract, stack_embeddings
    from facelab.models.registry import resolve_model

    model = resolve_model(model, "embedder")  # a model card path becomes its name
    feats = extract(manifest, detector=detector, heads=("embedding",),
                    models={"embedding": model}, progress=progress, batch_size=batch_size)
    matrix = stack_embeddings(feats)
    ok = (feats["status"] == "ok").to_numpy(dtype=bool) & np.isfinite(matrix).all(axis=1)
    return Embeddings(model=model, features=feats, matrix=matrix, ok=ok)


def failure_table(embeddings: dict[str, Embeddings], by: str = "source") -> pd.DataFrame:
    """Failures to acquire (no face, unreadable image) per embedder and ``by`` value, with
    a Wilson interval: these images take no part in any comparison."""
    from facelab.metrics.intervals import binomial_ci

    rows = []
    for model, e in embeddings.items():
        f = e.features.assign(failed=~e.ok)
        for key, part in f.groupby(by, sort=True):
            k, n = int(part["failed"].sum()), len(part)
            low, high = binomial_ci(k, n)
            reasons = part.loc[part["failed"], "reason"].astype(str).value_counts()
            rows.append({"embedder": model, by: key, "images": n, "failed": k,
                         "fta": k / n if n else np.nan, "ci_low": low, "ci_high": high,
                         "reasons": "; ".join(f"{r} ({c})" for r, c in reasons.items())})
    return pd.DataFrame(rows)
