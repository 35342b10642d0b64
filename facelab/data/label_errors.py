"""Identity label errors in a dataset: found, listed and counted, not silently scored.

Two kinds, as NIST cleans ground truth before it reports:

* **certain**: byte-identical image files under **different** identities (the same photo
  cannot be two people). A row without a subject is its own person (FairFace, UTKFace:
  every file a different person), so a duplicated file there is an error too. Every
  comparison involving such an image is suspect (one of the copies carries the wrong
  identity and it is not known which), so the default is to leave those images out.
* **likely**: impostor (non-mated) pairs whose similarity reaches a **near-duplicate
  level**, a score different photos of different people essentially never reach (the
  default levels are set far above every embedder's measured impostor scores: see
  :data:`NEAR_DUPLICATE`). They are listed for review and, by default, kept.

Policies (:data:`POLICIES`): ``"exclude certain"`` (default: drop images behind certain
errors, flag likely ones), ``"exclude all"`` (also drop the likely pairs), ``"keep"``
(flag both, drop nothing).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from facelab.core.provenance import digest_bytes

__all__ = ["POLICIES", "NEAR_DUPLICATE", "file_hashes", "identical_images",
           "certain_error_images", "near_duplicate_level", "flag_pairs", "apply_policy",
           "likely_errors", "summary"]

POLICIES: tuple[str, ...] = ("exclude certain", "exclude all", "keep")

#: Default near-duplicate similarity per embedder (facelab similarity: cosine for SFace,
#: 1 - Euclidean distance for dlib). Set well above the largest impostor score measured
#: on the 3,000 LFW View 2 impostor pairs and the CelebA impostor pairs (docs/models.md),
#: and below the score of byte-identical and resized copies (~1).
NEAR_DUPLICATE: dict[str, float] = {"sface": 0.85, "dlib_resnet": 0.75}


def file_hashes(paths: Sequence[str | os.PathLike], *, workers: int = 4) -> list[str | None]:
    """SHA-256 of each file's bytes (the pipeline's ``image_sha256``); ``None`` for a file
    that cannot be read.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Image files.
    workers : int
        Reader threads.

    Returns
    -------
    list of str or None
        64-hex SHA-256 per path, in order.
    """
    def one(p):
        try:
            with open(p, "rb") as fh:
                return digest_bytes(fh.read())
        except (OSError, TypeError):
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, list(paths)))


def _identity(manifest: pd.DataFrame) -> pd.Series:
    subj = manifest["subject"].astype("string") if "subject" in manifest else \
        pd.Series(pd.NA, index=manifest.index, dtype="string")
    own = pd.Series([f"__file_{i}" for i in manifest.index], index=manifest.index,
                    dtype="string")
    return subj.fillna(own)


def identical_images(manifest: pd.DataFrame, hashes: Sequence[str | None] | pd.Series | None
                     = None) -> pd.DataFrame:
    """Groups of byte-identical files, with whether they disagree on identity.

    Parameters
    ----------
    manifest
        Rows with ``path`` (hashed when ``hashes`` is not given), ``subject`` (missing = a
        distinct person) and optionally ``source``.
    hashes
        SHA-256 per row (e.g. the features table's ``image_sha256``).

    Returns
    -------
    DataFrame
        One row per image in a group of two or more identical files: ``sha256, index,
        file, subject, source, n_copies, n_identities, kind`` where ``kind`` is
        ``"certain"`` (the copies carry different identities) or ``"same identity"`` (a
        duplicated file of one person: not a label error, but a genuine pair of score 1).
        Sorted by group.
    """
    if hashes is None:
        hashes = file_hashes(manifest["path"].tolist())
    h = pd.Series(list(hashes), index=manifest.index, dtype="string")
    ident = _identity(manifest)
    df = pd.DataFrame({"sha256": h, "identity": ident})
    df = df[df["sha256"].notna()]
    size = df.groupby("sha256")["identity"].transform("size")
    df = df[size > 1]
    cols = ["sha256", "index", "file", "subject", "source", "n_copies", "n_identities", "kind"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df["n_copies"] = df.groupby("sha256")["identity"].transform("size")
    df["n_identities"] = df.groupby("sha256")["identity"].transform("nunique")
    df["kind"] = np.where(df["n_identities"] > 1, "certain", "same identity")
    df["index"] = df.index
    for c in ("file", "subject", "source"):
        df[c] = manifest.loc[df.index, c].to_numpy() if c in manifest else pd.NA
    return df.sort_values(["kind", "sha256", "index"])[cols].reset_index(drop=True)


def certain_error_images(identical: pd.DataFrame) -> list:
    """Manifest index labels of every image in a certain-error group.

    Parameters
    ----------
    identical : pandas.DataFrame
        :func:`identical_images` output.

    Returns
    -------
    list
        Manifest index labels.
    """
    return identical.loc[identical["kind"] == "certain", "index"].tolist()


def near_duplicate_level(model: str, level: float | None = None) -> float:
    """The near-duplicate similarity of ``model``: ``level`` when given, else
    :data:`NEAR_DUPLICATE`. Raises ``ValueError`` for an embedder without a default.

    Parameters
    ----------
    model : str
        Registered embedder name.
    level : float, optional
        A level given by the user (similarity, the model's scale).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For an embedder without a default level and no ``level``.
    """
    if level is not None:
        return float(level)
    if model not in NEAR_DUPLICATE:
        raise ValueError(f"no default near-duplicate level for {model!r} (known: "
                         f"{sorted(NEAR_DUPLICATE)}); pass one")
    return NEAR_DUPLICATE[model]


def flag_pairs(scored: pd.DataFrame, certain_images: Sequence, level: float) -> pd.DataFrame:
    """``scored`` pairs (``index_a``, ``index_b``, ``same``, ``score``) with a
    ``label_error`` column: ``"certain"`` when either image is behind a certain error,
    ``"likely"`` for an impostor pair scoring ``>= level``, else ``""``.

    Parameters
    ----------
    scored : pandas.DataFrame
        Scored pairs (``index_a``, ``index_b``, ``same``, ``score``).
    certain_images : sequence
        :func:`certain_error_images` output.
    level : float
        Near-duplicate similarity (:func:`near_duplicate_level`).

    Returns
    -------
    pandas.DataFrame
        ``scored`` with the ``label_error`` column.
    """
    bad = set(certain_images)
    certain = scored["index_a"].isin(bad) | scored["index_b"].isin(bad)
    likely = ~scored["same"].astype(bool) & (scored["score"] >= level) & ~certain
    flag = np.where(certain, "certain", np.where(likely, "likely", ""))
    return scored.assign(label_error=flag)


def apply_policy(flagged: pd.DataFrame, policy: str = "exclude certain"
                 ) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop the pairs the policy excludes; returns the kept pairs and the counts
    ``{"certain": flagged pairs, "likely": ..., "excluded": dropped pairs}``.

    Parameters
    ----------
    flagged : pandas.DataFrame
        :func:`flag_pairs` output.
    policy : {"exclude certain", "exclude all", "keep"}
        Which flagged pairs to drop (:data:`POLICIES`).

    Returns
    -------
    kept : pandas.DataFrame
        The pairs kept.
    counts : dict of str to int
        ``certain``, ``likely`` and ``excluded`` pair counts.

    Raises
    ------
    ValueError
        For an unknown policy.
    """
    if policy not in POLICIES:
        raise ValueError(f"label error policy must be one of {POLICIES}; got {policy!r}")
    drop = {"exclude certain": ["certain"], "exclude all": ["certain", "likely"],
            "keep": []}[policy]
    mask = flagged["label_error"].isin(drop).to_numpy()
    counts = {"certain": int((flagged["label_error"] == "certain").sum()),
              "likely": int((flagged["label_error"] == "likely").sum()),
              "excluded": int(mask.sum())}
    return flagged.loc[~mask].reset_index(drop=True), counts


def likely_errors(manifest: pd.DataFrame, embeddings, level: float, *,
                  block: int = 2048) -> pd.DataFrame:
    """Every pair of different identities of one ``source`` (or of the whole manifest)
    whose similarity reaches ``level``: the likely label errors, strongest first.

    ``embeddings`` is a :class:`facelab.studies.matching.Embeddings` of the manifest's
    rows. Comparisons are made block by block (all pairs, exactly).

    Parameters
    ----------
    manifest : pandas.DataFrame
        A manifest with ``subject`` (and optionally ``source``).
    embeddings : facelab.studies.matching.Embeddings
        Embeddings of the manifest's rows.
    level : float
        Near-duplicate similarity.
    block : int
        Rows per block of the exact all-pairs comparison.

    Returns
    -------
    DataFrame
        ``source, index_a, index_b, file_a, file_b, subject_a, subject_b, score``.
    """
    ident = _identity(manifest)
    sources = manifest["source"] if "source" in manifest else pd.Series(
        "all", index=manifest.index)
    rows = []
    for source, part in manifest.groupby(sources, sort=True):
        pos = embeddings.positions(part.index)
        keep = (pos >= 0) & embeddings.ok[np.clip(pos, 0, None)]
        labels = part.index[keep]
        pos = pos[keep]
        ids = ident.loc[labels].to_numpy()
        vectors = embeddings.matrix[pos]
        i, j, score = embeddings.pairs_at_least(vectors, vectors, level, block=block)
        sel = (j > i) & (ids[i] != ids[j])
        for a, b, v in zip(i[sel], j[sel], score[sel], strict=True):
            rows.append({"source": source, "index_a": labels[a], "index_b": labels[b],
                         "score": float(v)})
    out = pd.DataFrame(rows, columns=["source", "index_a", "index_b", "score"])
    for side in ("a", "b"):
        idx = out[f"index_{side}"]
        out[f"file_{side}"] = manifest.loc[idx, "file"].to_numpy() if len(out) else []
        out[f"subject_{side}"] = manifest.loc[idx, "subject"].to_numpy() if len(out) else []
    cols = ["source", "index_a", "index_b", "file_a", "file_b", "subject_a", "subject_b",
            "score"]
    return out[cols].sort_values("score", ascending=False).reset_index(drop=True)


def summary(identical: pd.DataFrame, likely: pd.DataFrame | None = None) -> dict[str, int]:
    """Counts for reports: certain-error groups and images, same-identity duplicate
    groups, likely-error pairs.

    Parameters
    ----------
    identical : pandas.DataFrame
        :func:`identical_images` output.
    likely : pandas.DataFrame, optional
        :func:`likely_errors` output.

    Returns
    -------
    dict of str to int
        Counts keyed by a plain-words description.
    """
    cert = identical[identical["kind"] == "certain"]
    dup = identical[identical["kind"] == "same identity"]
    out = {"certain error groups (byte-identical files, different identities)":
           int(cert["sha256"].nunique()),
           "images behind certain errors": int(len(cert)),
           "duplicate files of one identity": int(dup["sha256"].nunique())}
    if likely is not None:
        out["likely errors (impostor pairs at or above the near-duplicate level)"] = \
            int(len(likely))
    return out
