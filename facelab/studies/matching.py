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

from facelab.data.sampling import DEFAULT_SPLITS, DatasetNotes, load_datasets
from facelab.extraction.pipeline import extract, stack_embeddings
from facelab.face.skin import SKIN_GROUP_COLUMNS
from facelab.match.verification import get_embedder
from facelab.metrics.intervals import binomial_ci
from facelab.models.registry import resolve_model
from facelab.studies.skin_tone import add_skin_tone

__all__ = ["load_manifests", "group_labels", "Embeddings", "extract_embeddings",
           "failure_table", "UNLABELLED"]

#: Group label of rows without demographic labels (e.g. CelebA).
UNLABELLED = "unlabelled"


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

    The datasets are loaded and sampled by :func:`facelab.data.sampling.load_datasets`
    (rows with a missing ``by`` label form their own cell, the manifest's row order is
    kept); this function pools them for the matching studies.

    Parameters
    ----------
    datasets : sequence of specs
        Dataset specs (:mod:`facelab.data.resolve`): registered names with an optional
        split (``"fairface:val"``, ``"cfd"``, ``"celeba"``), CSV paths, or mappings for
        your own CSV manifest (``{csv: faces.csv, columns: {person: subject}}``).
    limit : int or None
        Cap on images per dataset (``None``: all). Datasets with identities are balanced
        over ``subject`` when they have no demographic labels (CelebA), which keeps
        several images per identity.
    seed : int
        Seed of the samples.
    by : sequence of str
        Group columns used for balancing and for the ``group`` label column.
    root : path or None
        Data root (default ``$FACELAB_DATA``).
    default_splits : dict or None
        Split used when a name has none (default
        :data:`facelab.data.sampling.DEFAULT_SPLITS`, ``{"fairface": "val"}``).
    whole_subjects : bool
        Under a ``limit``, sample whole people (:func:`facelab.data.sampling.subject_sample`,
        people with several images first, spread over ``by``) from datasets with
        identities, so genuine pairs survive the cap; for FNMR by group on datasets with
        identities and labels.

    Returns
    -------
    manifest : pandas.DataFrame
        Pooled manifest with index ``"<dataset>:<file>"`` and extra columns ``source``
        (str: the dataset's label) and ``group`` (str: :func:`group_labels`, or
        :data:`UNLABELLED` for datasets without ``by`` labels).
    notes : facelab.data.sampling.DatasetNotes
        Per dataset, whether it was found, how many images it holds and how many were used.

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
    skin_by = [c for c in by if c in SKIN_GROUP_COLUMNS]
    if skin_by:
        return _with_skin_groups(datasets, by=by, skin_by=skin_by, limit=limit, seed=seed,
                                 root=root, default_splits=default_splits,
                                 whole_subjects=whole_subjects)
    samples, notes = load_datasets(datasets, limit=limit, seed=seed, by=by,
                                   fallback_by=["subject"], whole_subjects=whole_subjects,
                                   root=root,
                                   default_splits={**DEFAULT_SPLITS, **(default_splits or {})})
    frames = []
    for label, used in samples.items():
        key = used.attrs["dataset_key"]
        used.index = pd.Index([f"{key}:{f}" for f in used["file"]], name="image")
        used["source"] = label
        labelled = used.attrs["labelled"] and set(by) <= set(used.columns)
        used["group"] = group_labels(used, by) if labelled else UNLABELLED
        frames.append(used)
    manifest = pd.concat(frames) if frames else pd.DataFrame(
        columns=["dataset", "file", "path", "subject", "source", "group"])
    return manifest, notes


def _with_skin_groups(datasets: Sequence, *, by: Sequence[str], skin_by: list[str],
                      **options) -> tuple[pd.DataFrame, DatasetNotes]:
    """:func:`load_manifests` grouped by measured skin tone (and the other ``by`` columns)."""
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
        note = str(row["note"])
        table.loc[i, "note"] = (
            f"{note} Skin tone measured on {len(part) - len(unmeasured):,} of "
            f"{len(part):,} images" + ("; not measured (unlabelled): "
                                       + "; ".join(f"{n} x {r}" for r, n in reasons.items())
                                       if len(unmeasured) else "") + ".")
    return manifest, DatasetNotes(table)


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

    def _rows64(self) -> np.ndarray:
        """``matrix`` in float64, L2-normalised per row for a cosine embedder: what
        :meth:`similarity` computes for every row it is given, done once (kept until
        ``model`` or ``matrix`` is replaced)."""
        key = (self.model, id(self.matrix))
        cached = self.__dict__.get("_rows64_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        rows = np.asarray(self.matrix, dtype=np.float64)
        if self.metric == "cosine":
            rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        self.__dict__["_rows64_cache"] = (key, rows)
        return rows

    def pair_scores(self, pa: np.ndarray, pb: np.ndarray, *, chunk: int = 8192
                    ) -> np.ndarray:
        """Similarity of matrix rows ``pa[i]`` and ``pb[i]`` for every ``i``: the same
        float32 numbers as ``similarity(matrix[pa], matrix[pb])`` (the rows are converted
        and normalised once per embedder, not once per pair; issue 16).

        Parameters
        ----------
        pa, pb : ndarray
            ``(k,)`` integer row positions (:meth:`positions`).
        chunk : int
            Pairs compared at once: small blocks keep the gathered float64 rows in the
            CPU cache (the result does not depend on it).

        Returns
        -------
        ndarray
            ``(k,)`` float32.
        """
        rows = self._rows64()
        cosine = self.metric == "cosine"
        out = np.empty(len(pa), dtype=np.float32)
        for start in range(0, len(pa), chunk):
            a, b = rows[pa[start:start + chunk]], rows[pb[start:start + chunk]]
            if cosine:
                sim = np.einsum("ij,ij->i", a, b)
            else:
                d = a - b
                sim = 1.0 - np.sqrt(np.einsum("ij,ij->i", d, d))
            out[start:start + chunk] = sim.astype(np.float32)
        return out

    def pairs_at_least(self, a: np.ndarray, b: np.ndarray, level: float, *,
                       block: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair of a row of ``a`` and a row of ``b`` whose similarity reaches
        ``level``, with the score :meth:`similarity` (``matrix=True``) gives it.

        Parameters
        ----------
        a, b : ndarray
            ``(n, dim)`` and ``(m, dim)`` embeddings (any float dtype).
        level : float
            The similarity a pair must reach (``>=``).
        block : int
            Rows of ``a`` compared at once.

        Returns
        -------
        i, j : ndarray
            ``(k,)`` int64 row positions in ``a`` and ``b``, sorted by ``i`` then ``j``.
        score : ndarray
            ``(k,)`` float32, bit-identical to the matrix path's.

        Notes
        -----
        The exact Euclidean matrix path forms every difference vector (float64), which
        costs ``n * m * dim`` subtractions. Here a BLAS screen
        ``sqrt(|a|^2 + |b|^2 - 2 a.b)`` (float64) first keeps the pairs within
        :data:`SCREEN_MARGIN` of ``level`` (its rounding error is below 1e-7 for these
        vectors, far inside the margin), then only those get the exact expression of the
        matrix path. Cosine scores come from one matrix product, which is already fast.
        """
        a = np.atleast_2d(np.asarray(a, dtype=np.float64))
        b = np.atleast_2d(np.asarray(b, dtype=np.float64))
        if self.metric == "cosine":
            i_all, j_all, s_all = [], [], []
            for s in range(0, len(a), block):
                sim = self.similarity(a[s:s + block], b, matrix=True)
                i, j = np.nonzero(sim >= level)
                i_all.append(i + s)
                j_all.append(j)
                s_all.append(sim[i, j])
            return _joined(i_all, j_all, s_all)
        b_sq = np.einsum("ij,ij->i", b, b)
        i_all, j_all, s_all = [], [], []
        for s in range(0, len(a), block):
            part = a[s:s + block]
            sq = np.einsum("ij,ij->i", part, part)[:, None] + b_sq[None, :] - 2.0 * part @ b.T
            screen = 1.0 - np.sqrt(np.maximum(sq, 0.0))
            i, j = np.nonzero(screen >= level - SCREEN_MARGIN)
            if len(i):
                d = part[i][:, None, :] - b[j][:, None, :]  # the matrix path's expression
                exact = (1.0 - np.sqrt(np.einsum("ijk,ijk->ij", d, d)[:, 0])).astype(
                    np.float32)
                hit = exact >= level
                i_all.append(i[hit] + s)
                j_all.append(j[hit])
                s_all.append(exact[hit])
        return _joined(i_all, j_all, s_all)


#: How far below the level the fast screen of :meth:`Embeddings.pairs_at_least` still keeps
#: a pair for the exact comparison (similarity units).
SCREEN_MARGIN = 1e-4


def _joined(i_all: list, j_all: list, s_all: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not i_all:
        return (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    return (np.concatenate(i_all).astype(np.int64), np.concatenate(j_all).astype(np.int64),
            np.concatenate(s_all).astype(np.float32))


def extract_embeddings(manifest: pd.DataFrame, model: str, *, detector: str = "yunet",
                       progress: bool = True, batch_size: int = 32) -> Embeddings:
    """Largest-face embeddings of every manifest row with :func:`facelab.extract` (cached
    on disk, so a rerun only reads them back). Failures stay rows (``ok`` False)."""

    model = resolve_model(model, "embedder")  # a model card path becomes its name
    feats = extract(manifest, detector=detector, heads=("embedding",),
                    models={"embedding": model}, progress=progress, batch_size=batch_size)
    matrix = stack_embeddings(feats)
    ok = (feats["status"] == "ok").to_numpy(dtype=bool) & np.isfinite(matrix).all(axis=1)
    return Embeddings(model=model, features=feats, matrix=matrix, ok=ok)


def failure_table(embeddings: dict[str, Embeddings], by: str = "source") -> pd.DataFrame:
    """Failures to acquire (no face, unreadable image) per embedder and ``by`` value, with
    a Wilson interval: these images take no part in any comparison."""

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
