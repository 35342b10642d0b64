"""Evaluation protocols built from identity labels: 1:1 pairs and 1:N gallery/probe splits.

* :func:`make_pairs`: genuine (same subject) and impostor (different subjects) pairs, all
  of them or a seeded sample, optionally with impostors drawn only within the same
  demographic group (as NIST FRVT does: same sex, age group, region), so impostor scores
  are not inflated by trivially different faces.
* :func:`gallery_probe_split`: a gallery with one (or ``k``) enrolment image per enrolled
  subject, mated probes (other images of enrolled subjects) and non-mated probes (images
  of subjects kept out of the gallery; disjoint subjects), seeded.

Every function takes a manifest (:mod:`facelab.data.datasets`) and refers to its rows by index
label, so ``manifest.loc[pairs.index_a]`` or a features table with the same index lines up.
Same manifest, same arguments, same ``seed``: same result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["make_pairs", "genuine_pairs", "impostor_pairs", "gallery_probe_split",
           "subjects_of"]

#: Above this many candidate pairs, sampled impostors are drawn by rejection sampling
#: instead of enumerating every pair.
_ENUMERATE_LIMIT = 2_000_000


def subjects_of(manifest: pd.DataFrame, subject: str = "subject",
                missing: str = "drop") -> pd.Series:
    """Subject labels as strings; rows without one are dropped (``missing="drop"``) or
    become their own one-image subject (``missing="distinct"``, e.g. FairFace, whose
    different files are different people by construction).

    Parameters
    ----------
    manifest : pandas.DataFrame
        A manifest.
    subject : str
        The identity column.
    missing : {"drop", "distinct"}
        What to do with rows without a subject.

    Returns
    -------
    pandas.Series
        String dtype, indexed like the kept manifest rows.

    Raises
    ------
    ValueError
        For another ``missing`` value.
    """
    if missing not in ("drop", "distinct"):
        raise ValueError("missing must be 'drop' or 'distinct'")
    s = manifest[subject].astype("string")
    if missing == "distinct":
        s = s.fillna(pd.Series([f"__row_{i}" for i in manifest.index], index=manifest.index,
                               dtype="string"))
        return s
    return s.dropna()


def _group_keys(manifest: pd.DataFrame, within: Sequence[str] | str | None) -> pd.Series:
    if not within:
        return pd.Series("all", index=manifest.index)
    cols = [within] if isinstance(within, str) else list(within)
    missing = set(cols) - set(manifest.columns)
    if missing:
        raise ValueError(f"group columns {sorted(missing)} not in the manifest")
    keys = manifest[cols].astype("string")
    out = keys.fillna("<NA>").agg("|".join, axis=1)
    out[keys.isna().any(axis=1)] = pd.NA  # rows without a group label get no impostors
    return out


def _frame(manifest: pd.DataFrame, pa: np.ndarray, pb: np.ndarray, same: bool,
           group_cols: Sequence[str]) -> pd.DataFrame:
    """Pairs frame from row *positions* ``pa``, ``pb``."""
    def col(name: str) -> np.ndarray:
        return manifest[name].to_numpy() if name in manifest else np.full(len(manifest), None)

    index = manifest.index.to_numpy()
    path, subj = col("path"), col("subject")
    df = pd.DataFrame({
        "index_a": index[pa], "index_b": index[pb],
        "path_a": path[pa], "path_b": path[pb],
        "subject_a": subj[pa], "subject_b": subj[pb],
        "same": np.full(len(pa), same),
    })
    for c in group_cols:
        values = col(c)
        df[f"{c}_a"] = values[pa]
        df[f"{c}_b"] = values[pb]
    for c in ("path_a", "path_b", "subject_a", "subject_b"):
        df[c] = df[c].astype("string")
    return df


def _all_pairs(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.triu_indices(len(idx), k=1)
    return idx[a], idx[b]


def genuine_pairs(manifest: pd.DataFrame, *, n: int | None = None, seed: int = 0,
                  subject: str = "subject", group_cols: Sequence[str] = (),
                  max_per_subject: int | None = None) -> pd.DataFrame:
    """Every pair of different images of the same subject (or ``n`` of them, sampled
    without replacement with ``seed``). See :func:`make_pairs` for the columns.

    ``max_per_subject`` keeps at most that many pairs of each subject (a seeded sample),
    so that people with very many images (530 of one person in LFW) do not dominate a
    pair-weighted rate; applied before ``n``.

    Parameters
    ----------
    manifest : pandas.DataFrame
        A manifest with a ``subject`` column.
    n : int, optional
        How many pairs to sample (``None``: all).
    seed : int
        Seeds every random choice (the same seed gives the same pairs).
    subject : str
        The identity column.
    group_cols : sequence of str
        Columns copied for both images as ``<col>_a`` / ``<col>_b``.
    max_per_subject : int, optional
        Cap on pairs per subject.

    Returns
    -------
    pandas.DataFrame
        Columns as :func:`make_pairs`, ``same`` True.
    """
    subj = subjects_of(manifest, subject)
    pos = pd.Series(np.arange(len(manifest)), index=manifest.index)
    rng = np.random.default_rng(seed + 7)
    ia, ib = [], []
    for _, members in subj.groupby(subj, sort=True):
        if len(members) > 1:
            a, b = _all_pairs(pos.loc[members.index].to_numpy())
            if max_per_subject is not None and len(a) > max_per_subject:
                keep = np.sort(rng.choice(len(a), size=max_per_subject, replace=False))
                a, b = a[keep], b[keep]
            ia.append(a)
            ib.append(b)
    ia = np.concatenate(ia) if ia else np.zeros(0, int)
    ib = np.concatenate(ib) if ib else np.zeros(0, int)
    if n is not None and n < len(ia):
        keep = np.sort(np.random.default_rng(seed).choice(len(ia), size=n, replace=False))
        ia, ib = ia[keep], ib[keep]
    return _frame(manifest, ia, ib, True, group_cols)


def impostor_pairs(manifest: pd.DataFrame, *, n: int | None = None, seed: int = 0,
                   subject: str = "subject", within: Sequence[str] | str | None = None,
                   missing: str = "drop", group_cols: Sequence[str] = ()) -> pd.DataFrame:
    """Pairs of images of different subjects: all (``n=None``) or ``n`` sampled with
    ``seed``; with ``within`` (column name or names) only pairs whose two images share
    those group values (rows with a missing group value are left out). Sampled impostors
    are spread over groups in proportion to each group's number of impostor pairs.

    Parameters
    ----------
    manifest : pandas.DataFrame
        A manifest with a ``subject`` column.
    n : int, optional
        How many pairs to sample (``None``: all).
    seed : int
        Seeds every random choice (the same seed gives the same pairs).
    subject : str
        The identity column.
    within : str or sequence of str, optional
        Column(s) both images must share.
    missing : {"drop", "distinct"}
        Rows without a subject (see :func:`subjects_of`).
    group_cols : sequence of str
        Columns copied for both images as ``<col>_a`` / ``<col>_b``.

    Returns
    -------
    pandas.DataFrame
        Columns as :func:`make_pairs`, ``same`` False.

    Raises
    ------
    ValueError
        For ``within`` columns not in the manifest, or another ``missing`` value.
    """
    subj = subjects_of(manifest, subject, missing)
    groups = _group_keys(manifest.loc[subj.index], within)
    rng = np.random.default_rng(seed)
    pos_of = pd.Series(np.arange(len(manifest)), index=manifest.index)
    parts = []
    for _, members in groups.dropna().groupby(groups.dropna(), sort=True):
        p = pos_of.loc[members.index].to_numpy()
        codes = pd.factorize(subj.loc[members.index])[0]
        counts = np.bincount(codes)
        total = len(p) * (len(p) - 1) // 2 - int((counts * (counts - 1) // 2).sum())
        if total > 0:
            parts.append((p, codes, total))
    if not parts:
        empty = np.zeros(0, int)
        return _frame(manifest, empty, empty, False, group_cols)
    totals = np.array([t for *_, t in parts])
    if n is None:
        quotas = totals
    else:
        n = min(int(n), int(totals.sum()))
        quotas = _allocate(n, totals, rng)
    ia, ib = [], []
    for (p, codes, total), q in zip(parts, quotas, strict=True):
        if q == 0:
            continue
        if q == total or (n is not None and len(p) ** 2 <= _ENUMERATE_LIMIT):
            a, b = np.triu_indices(len(p), k=1)
            diff = codes[a] != codes[b]
            a, b = a[diff], b[diff]
            if q < len(a):
                keep = np.sort(rng.choice(len(a), size=q, replace=False))
                a, b = a[keep], b[keep]
        else:
            a, b = _reject_sample(codes, q, rng)
        ia.append(p[a])
        ib.append(p[b])
    ia, ib = np.concatenate(ia), np.concatenate(ib)
    order = np.lexsort((ib, ia))
    ia, ib = ia[order], ib[order]
    return _frame(manifest, ia, ib, False, group_cols)


def _allocate(n: int, totals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Split ``n`` over groups in proportion to ``totals`` (largest remainders, seeded ties)."""
    share = n * totals / totals.sum()
    quotas = np.minimum(np.floor(share).astype(int), totals)
    left = n - quotas.sum()
    if left:
        frac = share - np.floor(share) + rng.random(len(totals)) * 1e-9
        for g in np.argsort(-frac):
            if left == 0:
                break
            if quotas[g] < totals[g]:
                quotas[g] += 1
                left -= 1
    return quotas


def _reject_sample(codes: np.ndarray, q: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``q`` distinct unordered pairs of positions with different ``codes``, drawn
    uniformly by rejection: rounds of random pairs, each candidate kept in draw order when
    it is valid and new, until ``q`` are kept. Returned sorted by (a, b)."""
    m = len(codes)
    seen = np.zeros(0, np.int64)  # kept pairs as keys a * m + b, a < b
    while len(seen) < q:
        a = rng.integers(0, m, size=2 * (q - len(seen)) + 16)
        b = rng.integers(0, m, size=len(a))
        x, y = np.minimum(a, b), np.maximum(a, b)
        valid = (x != y) & (codes[x] != codes[y])
        keys = (x * m + y)[valid].astype(np.int64)
        # first occurrence of each key in draw order, minus those already kept
        uniq, first = np.unique(keys, return_index=True)
        new = ~np.isin(uniq, seen, assume_unique=True)
        fresh = keys[np.sort(first[new])][: q - len(seen)]
        seen = np.concatenate([seen, fresh])
    seen = np.sort(seen)
    return seen // m, seen % m


def make_pairs(manifest: pd.DataFrame, *, n_genuine: int | None = None,
               n_impostor: int | None = None, seed: int = 0, subject: str = "subject",
               impostors_within: Sequence[str] | str | None = None,
               group_cols: Sequence[str] | str = (), missing: str = "drop") -> pd.DataFrame:
    """Genuine and impostor pairs for 1:1 verification.

    Parameters
    ----------
    manifest
        A manifest with a ``subject`` column (and ``path``).
    n_genuine, n_impostor
        How many of each to sample (``None``: all of them).
    seed
        Seed of every random choice.
    impostors_within
        Column(s) whose values both images of an impostor pair must share (e.g.
        ``["gender", "race"]``, NIST's same-demographic impostors).
    group_cols
        Columns copied for both images as ``<col>_a`` / ``<col>_b`` (default: the
        ``impostors_within`` columns).
    missing
        Rows without a subject: ``"drop"``, or ``"distinct"`` (each its own person; they
        then only form impostor pairs).
    subject : str
        The identity column.

    Returns
    -------
    pandas.DataFrame
        ``index_a, index_b, path_a, path_b, subject_a, subject_b, same`` (+ group columns),
        genuine pairs first; ``index_a < index_b`` in manifest order within each pair.
    """
    if isinstance(group_cols, str):
        group_cols = [group_cols]
    if not group_cols and impostors_within:
        group_cols = [impostors_within] if isinstance(impostors_within, str) \
            else list(impostors_within)
    gen = genuine_pairs(manifest, n=n_genuine, seed=seed, subject=subject,
                        group_cols=group_cols)
    imp = impostor_pairs(manifest, n=n_impostor, seed=seed + 1, subject=subject,
                         within=impostors_within, missing=missing, group_cols=group_cols)
    out = pd.concat([gen, imp], ignore_index=True)
    out.attrs = {"seed": seed, "impostors_within": impostors_within,
                 "n_genuine": len(gen), "n_impostor": len(imp)}
    return out


def gallery_probe_split(manifest: pd.DataFrame, *, nonmated_fraction: float = 0.5,
                        gallery_per_subject: int = 1, probes_per_subject: int | None = None,
                        n_subjects: int | None = None, seed: int = 0,
                        subject: str = "subject", distractors: bool = True
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gallery and probes for 1:N identification (ISO/IEC 19795-1 FPIR / FNIR).

    Subjects with more than ``gallery_per_subject`` images are split, with ``seed``, into
    *enrolled* subjects (their first ``gallery_per_subject`` images, in a seeded order, go
    to the gallery; the rest are mated probes) and a disjoint ``nonmated_fraction`` of
    *non-mated* subjects (all their images are non-mated probes; none is in the gallery).
    With ``distractors``, subjects with too few images to be probed are enrolled as
    gallery-only distractors (a larger gallery, as in real searches).

    Parameters
    ----------
    n_subjects
        Use only this many eligible subjects (seeded sample); ``None`` = all.
    probes_per_subject
        Cap on probe images per subject (``None``: all).
    manifest : pandas.DataFrame
        A manifest with a ``subject`` column.
    nonmated_fraction : float
        Share of eligible subjects kept out of the gallery, in [0, 1).
    gallery_per_subject : int
        Gallery images per enrolled subject.
    seed : int
        Seeds every random choice (the same seed gives the same pairs).
    subject : str
        The identity column.
    distractors : bool
        Enrol subjects with too few images as gallery-only distractors.

    Returns
    -------
    gallery, probes
        Manifest rows (index kept). ``gallery`` gains ``role="gallery"``; ``probes`` gains
        ``role="probe"`` and ``mated`` (bool).

    Raises
    ------
    ValueError
        For ``nonmated_fraction`` outside [0, 1).
    """
    if not 0.0 <= nonmated_fraction < 1.0:
        raise ValueError("nonmated_fraction must be in [0, 1)")
    subj = subjects_of(manifest, subject)
    rng = np.random.default_rng(seed)
    counts = subj.value_counts().sort_index()
    eligible = counts.index[counts > gallery_per_subject].to_numpy()
    others = counts.index[counts <= gallery_per_subject].to_numpy()
    eligible = eligible[rng.permutation(len(eligible))]
    if n_subjects is not None:
        eligible = eligible[:n_subjects]
    n_non = int(round(nonmated_fraction * len(eligible)))
    nonmated, enrolled = set(eligible[:n_non]), set(eligible[n_non:])
    gallery_idx, mated_idx, non_idx = [], [], []
    for s, members in subj.groupby(subj, sort=True):
        rows = members.index.to_numpy()[rng.permutation(len(members))]
        if s in enrolled:
            gallery_idx += list(rows[:gallery_per_subject])
            mated_idx += list(rows[gallery_per_subject:][:probes_per_subject])
        elif s in nonmated:
            non_idx += list(rows[:probes_per_subject])
        elif distractors and s in set(others):
            gallery_idx += list(rows[:gallery_per_subject])
    order = {v: i for i, v in enumerate(manifest.index)}
    gallery = manifest.loc[sorted(gallery_idx, key=order.get)].assign(role="gallery")
    probes = manifest.loc[sorted(mated_idx + non_idx, key=order.get)].assign(role="probe")
    probes["mated"] = probes.index.isin(mated_idx)
    gallery.attrs = probes.attrs = {"seed": seed, "enrolled_subjects": len(enrolled),
                                    "nonmated_subjects": len(nonmated)}
    return gallery, probes
